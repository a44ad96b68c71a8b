//! Local training: SGD over a participant's data for some epochs, seeded shuffles.

use crate::backprop::{Optimizer, gradient};
use crate::data::LocalData;
use crate::error::{CoreError, Result};
use crate::model::{Classifier, Dims, ImageShape, Kernels, ModelKind};
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use fl_data::rng::Stream;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Unchecked local-training parameters (the `[train]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum (PyTorch semantics: no dampening, not Nesterov); 0 = plain SGD.
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
    /// Mini-batch size; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Local epochs per round.
    pub epochs: usize,
    /// `sgd` (the default; `momentum` applies) or `adam` (`[train.adam]` applies).
    #[serde(skip_serializing_if = "OptimizerKind::is_sgd")]
    pub optimizer: OptimizerKind,
    /// Adam's betas and epsilon.
    #[serde(skip_serializing_if = "AdamParams::is_default")]
    pub adam: AdamParams,
    /// Keep each client's optimizer state (SGD's momentum buffer, Adam's moments and step
    /// count) from one round to the next, as the FedPoisonMIA authors' clients do; `false`
    /// (the default) starts every round afresh. Needs the CPU kernels (the flex device).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keep_optimizer_state: bool,
    /// Shuffle a client's samples before each epoch (the default); `false` keeps them in the
    /// order the partition gave (itself seeded and random), so every epoch steps through the
    /// same batches in the same order, as the FedPoisonMIA authors' clients do.
    #[serde(skip_serializing_if = "is_true")]
    pub shuffle: bool,
}

fn is_true(v: &bool) -> bool {
    *v
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 0.05,
            momentum: 0.0,
            weight_decay: 0.0,
            batch_size: 32,
            epochs: 1,
            optimizer: OptimizerKind::Sgd,
            adam: AdamParams::default(),
            keep_optimizer_state: false,
            shuffle: true,
        }
    }
}

/// The local optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent.
    #[default]
    Sgd,
    /// Adam (Kingma and Ba).
    Adam,
}

impl OptimizerKind {
    fn is_sgd(&self) -> bool {
        *self == Self::Sgd
    }
}

/// Adam's parameters: PyTorch's defaults (burn's own epsilon is 1e-5, so it is set
/// explicitly on every path).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamParams {
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

impl AdamParams {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl TrainConfig {
    /// Checks every value once; code past this point does not re-check.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("train.lr must be positive, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!(
                "train.momentum must be in [0, 1), got {}",
                self.momentum
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "train.weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.batch_size == 0 {
            return bad("train.batch_size cannot be zero".into());
        }
        if self.epochs == 0 {
            return bad("train.epochs cannot be zero".into());
        }
        if self.optimizer == OptimizerKind::Adam {
            if self.momentum > 0.0 {
                return bad(
                    "train.momentum applies to sgd; adam's moments are train.adam.beta1 and beta2"
                        .into(),
                );
            }
            for (name, b) in [("beta1", self.adam.beta1), ("beta2", self.adam.beta2)] {
                if !(0.0..1.0).contains(&b) {
                    return bad(format!("train.adam.{name} must be in [0, 1), got {b}"));
                }
            }
            if !(self.adam.epsilon > 0.0 && self.adam.epsilon.is_finite()) {
                return bad(format!(
                    "train.adam.epsilon must be positive, got {}",
                    self.adam.epsilon
                ));
            }
        }
        Ok(())
    }

    fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        if self.optimizer == OptimizerKind::Adam {
            let mut cfg = AdamConfig::new()
                .with_beta_1(self.adam.beta1 as f32)
                .with_beta_2(self.adam.beta2 as f32)
                .with_epsilon(self.adam.epsilon as f32);
            if self.weight_decay > 0.0 {
                cfg = cfg.with_weight_decay(Some(WeightDecayConfig::new(self.weight_decay as f32)));
            }
            return cfg.init();
        }
        let mut cfg = SgdConfig::new();
        if self.momentum > 0.0 {
            // Burn's default dampening is 0.1; PyTorch's (and the literature's) is 0.
            cfg = cfg.with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(self.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(false),
            ));
        }
        if self.weight_decay > 0.0 {
            cfg = cfg.with_weight_decay(Some(WeightDecayConfig::new(self.weight_decay as f32)));
        }
        cfg.init()
    }
}

/// What local training reports.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainStats {
    /// Mean training loss over the steps.
    pub loss: f64,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Samples seen (epochs x local samples).
    pub samples: usize,
}

impl TrainStats {
    fn new(loss_sum: f64, steps: usize, data: &LocalData, cfg: &TrainConfig) -> Self {
        Self {
            loss: if steps > 0 {
                loss_sum / steps as f64
            } else {
                0.0
            },
            steps,
            samples: data.len() * cfg.epochs,
        }
    }
}

/// The model a run trains: architecture, image shape, outputs and device; turns flat vectors
/// into modules and picks the [`Trainer`].
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Architecture.
    pub kind: ModelKind,
    /// The shape of the images (the dataset's).
    pub shape: ImageShape,
    /// Number of logits (the dataset's classes + 1).
    pub outputs: usize,
    /// Device without autodiff (evaluation); training through burn uses `device.autodiff()`.
    pub device: Device,
    /// The device is the CPU (flex), where this crate's kernels may do the work, on this many
    /// threads for evaluation; `None` keeps all work on `device` through burn.
    pub cpu_kernels: Option<usize>,
}

/// Who trains and evaluates a model: this crate's CPU kernels, or burn (its autodiff for
/// training) on the spec's device. An architecture without kernels, or dimensions its kernels
/// do not handle, falls back to burn on the CPU device: slower, still correct.
#[derive(Debug, Clone, Copy)]
pub enum Trainer {
    /// [`crate::backprop`] and [`crate::inference`]; evaluation on `threads` threads.
    Kernels {
        /// The architecture's kernels.
        kernels: &'static Kernels,
        /// Threads of evaluation.
        threads: usize,
    },
    /// burn's modules, autodiff and optimizers.
    Burn,
}

impl Trainer {
    /// The name in logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Trainer::Kernels { .. } => "cpu-kernels",
            Trainer::Burn => "burn",
        }
    }
}

impl ModelSpec {
    /// What the architecture is built for.
    pub fn dims(&self) -> Dims {
        Dims {
            image: self.shape,
            outputs: self.outputs,
        }
    }

    /// Number of classes of the data (the logits less the "fake" one).
    pub fn classes(&self) -> usize {
        self.outputs - 1
    }

    /// Who does the work: the kernels on the CPU device when the architecture has kernels for
    /// these dimensions, burn otherwise.
    pub fn trainer(&self) -> Trainer {
        match (self.cpu_kernels, self.kind.kernels(&self.dims())) {
            (Some(threads), Some(kernels)) => Trainer::Kernels { kernels, threads },
            _ => Trainer::Burn,
        }
    }

    /// A module with these parameters, on the plain device (inference).
    pub fn inference_model(&self, params: &[f32]) -> Classifier {
        Classifier::new(self.kind, &self.dims(), &self.device).with_params(params)
    }

    /// A module with these parameters on the autodiff device (training).
    pub fn training_model(&self, params: &[f32]) -> Classifier {
        Classifier::new(self.kind, &self.dims(), &self.device.clone().autodiff())
            .with_params(params)
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        Classifier::new(self.kind, &self.dims(), &self.device).num_params()
    }

    /// Seeded initial parameters.
    pub fn initial_params(&self, seed: u64) -> Vec<f32> {
        (self.kind.architecture().init)(
            &Classifier::new(self.kind, &self.dims(), &self.device).shapes(),
            seed,
        )
    }

    /// Images `[n, channels, height, width]` of `pixels` (n images of this spec's shape).
    pub fn images(&self, pixels: Vec<f32>, device: &Device) -> Tensor<4> {
        let n = pixels.len() / self.shape.pixels();
        let s = self.shape;
        Tensor::from_data(
            TensorData::new(pixels, [n, s.channels, s.height, s.width]),
            device,
        )
    }
}

/// Images `[n, channels, height, width]` and labels of the samples at `idx`.
pub(crate) fn batch(
    data: &LocalData,
    idx: &[usize],
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>) {
    let mut px = Vec::with_capacity(idx.len() * data.pixels());
    for &i in idx {
        px.extend_from_slice(data.image(i));
    }
    let labels: Vec<i64> = idx.iter().map(|&i| data.labels[i] as i64).collect();
    let s = data.shape;
    (
        Tensor::from_data(
            TensorData::new(px, [idx.len(), s.channels, s.height, s.width]),
            device,
        ),
        Tensor::from_data(TensorData::new(labels, [idx.len()]), device),
    )
}

/// A client's optimizer between rounds: empty until its first training, and kept there
/// only when `train.keep_optimizer_state` (on the CPU kernels).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OptimizerState(Option<Optimizer>);

impl OptimizerState {
    /// The optimizer kept, if any.
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.0.as_ref()
    }
}

/// Trains a copy of `params` on `data` with the configured optimizer, fresh; returns the new
/// parameters and statistics.
///
/// `rng` decides the order of samples in each epoch; the same stream gives the same result.
pub fn train_local(
    spec: &ModelSpec,
    params: &[f32],
    data: &LocalData,
    cfg: &TrainConfig,
    rng: &mut Stream,
) -> (Vec<f32>, TrainStats) {
    train_local_with(spec, params, data, cfg, rng, &mut OptimizerState::default())
}

/// [`train_local`] continuing from the optimizer in `state` (when there is one), which keeps
/// the optimizer afterwards when `cfg.keep_optimizer_state`. Outside the CPU kernels the
/// optimizer is burn's, always fresh ([`Federation`](crate::Federation) refuses
/// `keep_optimizer_state` there).
pub fn train_local_with(
    spec: &ModelSpec,
    params: &[f32],
    data: &LocalData,
    cfg: &TrainConfig,
    rng: &mut Stream,
    state: &mut OptimizerState,
) -> (Vec<f32>, TrainStats) {
    if let Trainer::Kernels { kernels, .. } = spec.trainer() {
        let mut optim = state.0.take().unwrap_or_else(|| Optimizer::new(cfg));
        let out = train_local_cpu(spec, kernels, params, data, cfg, rng, &mut optim);
        if cfg.keep_optimizer_state {
            state.0 = Some(optim);
        }
        return out;
    }
    let device = spec.device.clone().autodiff();
    // In an Option so each step can move the model into the optimizer and put the result back.
    let mut model = Some(spec.training_model(params));
    let mut optim = cfg.optimizer();
    let loss_fn = CrossEntropyLoss::new(None, &device);
    let stats = for_each_batch(data, cfg, rng, |chunk| {
        let m = model
            .take()
            .expect("the model is put back after every step");
        let (x, y) = batch(data, chunk, &device);
        let loss = loss_fn.forward(m.forward(x), y);
        let value = loss.clone().into_scalar::<f32>();
        model = Some(m.step(&mut optim, cfg.lr, loss));
        value
    });
    let model = model.expect("the model is put back after every step");
    (model.valid().to_flat(), stats)
}

/// Runs `step` on every mini-batch (sample indices) of `cfg.epochs` epochs, each shuffled by
/// `rng` when `cfg.shuffle` (else in the data's order); `step` returns the batch's loss.
fn for_each_batch(
    data: &LocalData,
    cfg: &TrainConfig,
    rng: &mut Stream,
    mut step: impl FnMut(&[usize]) -> f32,
) -> TrainStats {
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut loss_sum = 0.0f64;
    let mut steps = 0usize;
    for _ in 0..cfg.epochs {
        if cfg.shuffle {
            order.shuffle(rng);
        }
        for chunk in order.chunks(cfg.batch_size) {
            loss_sum += step(chunk) as f64;
            steps += 1;
        }
    }
    TrainStats::new(loss_sum, steps, data, cfg)
}

/// [`train_local`] with this crate's CPU kernels: the same shuffles and batches, the same
/// optimizer semantics, stepping `optim`.
fn train_local_cpu(
    spec: &ModelSpec,
    kernels: &Kernels,
    params: &[f32],
    data: &LocalData,
    cfg: &TrainConfig,
    rng: &mut Stream,
    optim: &mut Optimizer,
) -> (Vec<f32>, TrainStats) {
    let dims = spec.dims();
    let mut p = params.to_vec();
    let mut grad = vec![0.0f32; p.len()];
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let stats = for_each_batch(data, cfg, rng, |chunk| {
        images.clear();
        labels.clear();
        for &i in chunk {
            images.extend_from_slice(data.image(i));
            labels.push(data.labels[i]);
        }
        let loss = gradient(kernels, &dims, &p, &images, &labels, &mut grad);
        optim.step(&mut p, &mut grad);
        loss
    });
    (p, stats)
}
