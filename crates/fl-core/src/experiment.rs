//! A whole run assembled from a [`FedConfig`]: data loaded, split, clients built.

use crate::attack::Seat;
use crate::config::FedConfig;
use crate::data::LocalData;
use crate::error::{CoreError, Result};
use crate::federation::Federation;
use crate::participant::{BenignClient, Participant};
use crate::train::ModelSpec;
use crate::update::{Aggregator, FedAvg, Mean};
use fl_data::{Dataset, Split};

/// The aggregation rules this crate knows by name: FedAvg and the plain mean. The robust rules live in
/// fl-defense (`fl_defense::aggregator`); pass one to [`Experiment::with_aggregator`].
pub fn aggregator(name: &str) -> Result<Box<dyn Aggregator>> {
    match name {
        "fedavg" => Ok(Box::new(FedAvg)),
        "mean" => Ok(Box::new(Mean)),
        other => Err(CoreError::Config(format!(
            "unknown aggregator `{other}` (fl-core knows fedavg and mean; the robust rules are \
             fl_defense::aggregator's)"
        ))),
    }
}

/// Data and split of a run, before the participants are chosen.
#[derive(Clone)]
pub struct Prepared {
    /// The checked configuration.
    pub config: FedConfig,
    /// The training split.
    pub train: Dataset,
    /// The test split (possibly cut to `test_samples`).
    pub test: Dataset,
    /// Training-set indices of each client.
    pub parts: Vec<Vec<usize>>,
    /// Architecture and device.
    pub spec: ModelSpec,
    /// With `[pool]`: the reserve held out of the clients and the test set.
    pub reserve: Option<Dataset>,
    /// The server's samples (`server_samples`), if any.
    pub server: Option<Dataset>,
}

impl Prepared {
    /// Loads the data named by `config`, checks the config and splits the training set.
    pub fn load(config: &FedConfig) -> Result<Self> {
        config.validate()?;
        let train = Dataset::load(&config.data_dir, config.dataset, Split::Train)?;
        let test = Dataset::load(&config.data_dir, config.dataset, Split::Test)?;
        let (train, mut test, parts, reserve) = match &config.pool {
            None => {
                let parts = config
                    .partition
                    .validate(config.clients, train.classes())?
                    .split(&train.labels, config.seed)?;
                (train, test, parts, None)
            }
            Some(pool) => {
                // The authors' order: the test split first.
                let pooled = test.concat(&train)?;
                let s = pool.split(pooled.len(), config.clients, config.seed)?;
                (
                    pooled.subset(&s.train),
                    pooled.subset(&s.test),
                    s.parts,
                    Some(pooled.subset(&s.reserve)),
                )
            }
        };
        if let Some(n) = config.test_samples
            && n < test.len()
        {
            test = test.subset(&(0..n).collect::<Vec<_>>());
        }
        let spec = Self::spec_of(config)?;
        let server = match config.server_samples {
            0 => None,
            n => Some(server_samples(
                n,
                &train,
                &parts,
                reserve.as_ref(),
                config.seed,
            )?),
        };
        Ok(Self {
            config: config.clone(),
            train,
            test,
            parts,
            spec,
            reserve,
            server,
        })
    }

    /// The model of a run of `config`: architecture, outputs, device, and whether the CPU
    /// kernels do the work (on the flex device).
    pub fn spec_of(config: &FedConfig) -> Result<ModelSpec> {
        Ok(ModelSpec {
            kind: config.model,
            shape: config.dataset.shape(),
            outputs: config.dataset.classes() + 1,
            device: config.device.device()?,
            cpu_kernels: (config.device == crate::DeviceKind::Flex)
                .then(|| config.worker_threads()),
        })
    }

    /// Client `k`'s local data.
    pub fn client_data(&self, k: usize) -> LocalData {
        LocalData::from_dataset(&self.train, &self.parts[k])
    }

    /// One honest participant per client.
    pub fn benign_participants(&self) -> Vec<Box<dyn Participant>> {
        (0..self.config.clients)
            .map(|k| Box::new(BenignClient::new(k, self.client_data(k))) as Box<dyn Participant>)
            .collect()
    }

    /// One honest participant per client, except that each of `attacked` (the clients an
    /// attack plays: [`crate::MaliciousClients::clients`]) sits as a [`Seat`].
    pub fn seated(&self, attacked: &[usize]) -> Vec<Box<dyn Participant>> {
        let mut all = self.benign_participants();
        for &k in attacked {
            if k < all.len() {
                all[k] = Box::new(Seat::new(k, self.parts[k].len()));
            }
        }
        all
    }

    /// The run with these participants and this aggregator.
    pub fn federation(
        &self,
        participants: Vec<Box<dyn Participant>>,
        aggregator: Box<dyn Aggregator>,
    ) -> Result<Federation> {
        let f = Federation::new(
            self.config.clone(),
            self.spec.clone(),
            participants,
            aggregator,
            LocalData::all(&self.test),
        )?;
        Ok(match &self.server {
            Some(d) => f.with_server_data(LocalData::all(d)),
            None => f,
        })
    }
}

/// `n` samples for the server: from `reserve` when there is one, else from the training
/// samples no client holds, in the order of `stream(seed, "server-data")`.
fn server_samples(
    n: usize,
    train: &Dataset,
    parts: &[Vec<usize>],
    reserve: Option<&Dataset>,
    seed: u64,
) -> Result<Dataset> {
    use rand::seq::SliceRandom;
    let (source, mut free): (&Dataset, Vec<usize>) = match reserve {
        Some(r) => (r, (0..r.len()).collect()),
        None => {
            let mut held = vec![false; train.len()];
            parts.iter().flatten().for_each(|&i| held[i] = true);
            (train, (0..train.len()).filter(|&i| !held[i]).collect())
        }
    };
    if free.len() < n {
        return Err(crate::CoreError::Config(format!(
            "server_samples = {n}, but only {} samples are outside the clients' shares",
            free.len()
        )));
    }
    free.shuffle(&mut fl_data::rng::stream(seed, "server-data", &[]));
    free.truncate(n);
    free.sort_unstable();
    Ok(source.subset(&free))
}

/// A plain federated run: every client honest, the configured aggregator.
pub struct Experiment {
    /// Data and split.
    pub prepared: Prepared,
    /// The run.
    pub federation: Federation,
}

impl Experiment {
    /// Builds the run described by `config` (whose aggregator must be fl-core's `fedavg`).
    pub fn build(config: &FedConfig) -> Result<Self> {
        Self::with_aggregator(config, aggregator(&config.aggregator)?)
    }

    /// Builds the run described by `config` with `rule` as its aggregator (which should be the
    /// one `config.aggregator` names).
    pub fn with_aggregator(config: &FedConfig, rule: Box<dyn Aggregator>) -> Result<Self> {
        let prepared = Prepared::load(config)?;
        let federation = prepared.federation(prepared.benign_participants(), rule)?;
        Ok(Self {
            prepared,
            federation,
        })
    }
}
