//! The fidelity oracle: a classifier trained centrally on the real training set, independent of
//! the federation, that judges whether generated images look like their class.
//!
//! Trained once per dataset (same recipe, same training set) and cached under the data folder
//! as `<data_dir>/<dataset>/oracle-<model>-<fingerprint>.bin`; the fingerprint covers the
//! recipe, the trainer (CPU kernels or burn's autodiff) and the training set, so a different
//! set, recipe or trainer trains a new one.

use fl_core::data::LocalData;
use fl_core::error::{CoreError, Result};
use fl_core::eval::{argmax, evaluate, logits};
use fl_core::model::ModelKind;
use fl_core::train::{ModelSpec, TrainConfig, Trainer, train_local};
use fl_data::rng::stream;
use fl_data::{Dataset, DatasetKind, Split};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FLORACL1";
/// The oracle's own seed: it does not depend on any run's seed, so all runs share it.
const ORACLE_SEED: u64 = 0x0AC1E;

/// How the oracle is trained.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleRecipe {
    /// Architecture.
    pub model: ModelKind,
    /// Central SGD over the whole training set.
    pub train: TrainConfig,
}

impl Default for OracleRecipe {
    fn default() -> Self {
        Self {
            model: ModelKind::CNN,
            train: TrainConfig {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.0,
                batch_size: 64,
                epochs: 3,
                ..Default::default()
            },
        }
    }
}

impl OracleRecipe {
    fn tag(&self) -> String {
        let t = &self.train;
        format!(
            "{} lr={} m={} wd={} b={} e={} seed={ORACLE_SEED}",
            self.model.name(),
            t.lr,
            t.momentum,
            t.weight_decay,
            t.batch_size,
            t.epochs
        )
    }
}

/// A centrally trained classifier that scores reconstructions.
pub struct Oracle {
    spec: ModelSpec,
    params: Vec<f32>,
    /// Its accuracy on the test split.
    pub test_accuracy: f64,
    /// Where it is cached.
    pub path: PathBuf,
    /// True when it was read from the cache rather than trained now.
    pub cached: bool,
}

impl Oracle {
    /// Loads the cached oracle of `dataset` under `data_dir`, or trains it on the whole
    /// training split (and caches it). `device` is the compute device of the run.
    pub fn load_or_train(
        data_dir: &Path,
        dataset: DatasetKind,
        recipe: &OracleRecipe,
        spec_like: &ModelSpec,
    ) -> Result<Self> {
        let train = Dataset::load(data_dir, dataset, Split::Train)?;
        let test = LocalData::all(&Dataset::load(data_dir, dataset, Split::Test)?);
        let spec = ModelSpec {
            kind: recipe.model,
            shape: train.shape,
            outputs: train.classes() + 1,
            ..spec_like.clone()
        };
        let mut fp = recipe.tag().into_bytes();
        // The CPU kernels and burn's autodiff round differently, so each trains its own oracle,
        // and so do two revisions of the kernels' arithmetic.
        let trainer = match spec.trainer() {
            Trainer::Kernels { .. } => format!(
                "trainer:cpu-kernels-r{}",
                fl_core::backprop::KERNEL_REVISION
            ),
            Trainer::Burn => "trainer:burn-autodiff".into(),
        };
        fp.extend_from_slice(trainer.as_bytes());
        fp.extend_from_slice(&train.labels);
        fp.extend_from_slice(&train.images);
        let fingerprint = &fl_data::checksum::sha256_hex(&fp)[..16];
        let path = data_dir
            .join(dataset.name())
            .join(format!("oracle-{}-{fingerprint}.bin", recipe.model.name()));
        let n = spec.num_params();
        let (params, cached) = match read_cache(&path, n) {
            Some(p) => (p, true),
            None => {
                tracing::info!(
                    "training the fidelity oracle on {} images of {} (cached at {})",
                    train.len(),
                    dataset.name(),
                    path.display()
                );
                let init = spec.initial_params(ORACLE_SEED);
                let data = LocalData::all(&train);
                let mut rng = stream(ORACLE_SEED, "oracle-shuffle", &[]);
                let (p, _) = train_local(&spec, &init, &data, &recipe.train, &mut rng);
                write_cache(&path, &p)?;
                (p, false)
            }
        };
        let test_accuracy = evaluate(&spec, &params, &test, spec.classes()).accuracy;
        Ok(Self {
            spec,
            params,
            test_accuracy,
            path,
            cached,
        })
    }

    /// The class (0..K, or K for none of them) the oracle assigns to each image.
    pub fn classify(&self, images: &[f32]) -> Vec<usize> {
        let n = images.len() / self.spec.shape.pixels();
        let data = LocalData::new(images.to_vec(), vec![0; n], self.spec.shape);
        logits(&self.spec, &self.params, &data)
            .chunks_exact(self.spec.outputs)
            .map(argmax)
            .collect()
    }

    /// Share of `images` the oracle classifies as `class` (the reconstruction fidelity).
    pub fn fidelity(&self, images: &[f32], class: usize) -> f64 {
        let c = self.classify(images);
        if c.is_empty() {
            return 0.0;
        }
        c.iter().filter(|&&k| k == class).count() as f64 / c.len() as f64
    }
}

fn read_cache(path: &Path, n: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    let (count, values) = body.split_at_checked(8)?;
    let count = u64::from_le_bytes(count.try_into().ok()?) as usize;
    if count != n || values.len() != n * 4 {
        tracing::warn!("ignoring {}: wrong size", path.display());
        return None;
    }
    let p: Vec<f32> = values
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    p.iter().all(|v| v.is_finite()).then_some(p)
}

fn write_cache(path: &Path, params: &[f32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(16 + params.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(params.len() as u64).to_le_bytes());
    for v in params {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    fl_data::atomic::write_atomic(path, &bytes).map_err(|source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}
