//! Training the generator against a frozen discriminator, and sampling it.
//!
//! The discriminator is a copy of the shared classifier with the round's global parameters.
//! Its parameters take no gradient; only the generator moves. The loss of a step is the
//! cross-entropy of D(G(z)) towards the chosen class, so the generator learns to draw images
//! the shared model calls that class.

use crate::generator::Generator;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use fl_core::error::{CoreError, Result};
use fl_core::train::ModelSpec;
use fl_data::rng::{Stream, stream};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// The largest generator batch: the generator trains through burn-flex, whose matrix products
/// follow gemm's cache-sized blocking once their depth (here the batch) passes 512.
pub const MAX_BATCH: usize = 512;

/// Unchecked GAN parameters (the `[attack.gan]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// Dimension of the noise z.
    pub latent: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Adam beta1.
    pub beta1: f64,
    /// Adam beta2.
    pub beta2: f64,
    /// Adam epsilon (PyTorch's 1e-8; burn's own default is 1e-5).
    pub epsilon: f64,
    /// Generator steps per attack round.
    pub steps: usize,
    /// Noise samples per step.
    pub batch_size: usize,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            latent: 100,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 50,
            batch_size: 64,
        }
    }
}

impl GanConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(m));
        if self.latent == 0 {
            return bad("gan.latent cannot be zero".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("gan.lr must be positive, got {}", self.lr));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("gan.{name} must be in [0, 1), got {b}"));
            }
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return bad(format!(
                "gan.epsilon must be positive, got {}",
                self.epsilon
            ));
        }
        if self.batch_size < 2 {
            return bad(format!(
                "gan.batch_size must be at least 2 (BatchNorm needs a batch), got {}",
                self.batch_size
            ));
        }
        if self.batch_size > MAX_BATCH {
            return bad(format!(
                "gan.batch_size must be at most {MAX_BATCH}, got {}: the generator's weight \
                 gradient is a product over the batch, and burn-flex blocks longer products by \
                 the machine's cache sizes, so seeded runs would differ between CPUs",
                self.batch_size
            ));
        }
        Ok(())
    }
}

/// What one call of [`Gan::train_against`] did.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GanStats {
    /// Steps taken.
    pub steps: usize,
    /// Generator loss of the first step.
    pub first_loss: f64,
    /// Generator loss of the last step.
    pub last_loss: f64,
    /// Share of the last step's images the discriminator assigned to the class.
    pub last_hit_rate: f64,
}

/// A generator with its optimizer state, kept across attack rounds.
pub struct Gan {
    cfg: GanConfig,
    /// Always `Some` between calls (taken and put back around an optimizer step).
    generator: Option<Generator>,
    optim: ModuleOptimizer,
    device: Device,
    seed: u64,
}

impl Gan {
    /// A seeded generator on `device` (its autodiff form is used).
    pub fn new(cfg: GanConfig, device: &Device, seed: u64) -> Self {
        let device = device.clone().autodiff();
        let optim = AdamConfig::new()
            .with_beta_1(cfg.beta1 as f32)
            .with_beta_2(cfg.beta2 as f32)
            .with_epsilon(cfg.epsilon as f32)
            .init();
        Self {
            generator: Some(Generator::seeded(cfg.latent, &device, seed)),
            cfg,
            optim,
            device,
            seed,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GanConfig {
        &self.cfg
    }

    fn generator(&self) -> &Generator {
        self.generator
            .as_ref()
            .expect("generator present between steps")
    }

    /// The generator's parameters (flat, in burn's visit order).
    pub fn params(&self) -> Vec<f32> {
        fl_core::params::to_flat(&self.generator().valid())
    }

    fn noise(&self, n: usize, rng: &mut Stream) -> Tensor<2> {
        let z: Vec<f32> = (0..n * self.cfg.latent)
            .map(|_| rng.sample(StandardNormal))
            .collect();
        Tensor::from_data(TensorData::new(z, [n, self.cfg.latent]), &self.device)
    }

    /// Trains the generator for the configured number of steps so that the classifier with
    /// parameters `global` (frozen) calls its images `class`. `round` selects the noise stream.
    pub fn train_against(
        &mut self,
        spec: &ModelSpec,
        global: &[f32],
        class: usize,
        round: usize,
    ) -> Result<GanStats> {
        self.train_steps(spec, global, class, round, self.cfg.steps)
    }

    /// [`Gan::train_against`] with an explicit number of steps.
    pub fn train_steps(
        &mut self,
        spec: &ModelSpec,
        global: &[f32],
        class: usize,
        round: usize,
        steps: usize,
    ) -> Result<GanStats> {
        let disc = spec.training_model(global).no_grad();
        let loss_fn = CrossEntropyLoss::new(None, &self.device);
        let b = self.cfg.batch_size;
        let targets = || {
            Tensor::<1, Int>::from_data(TensorData::new(vec![class as i64; b], [b]), &self.device)
        };
        let mut stats = GanStats {
            steps,
            ..Default::default()
        };
        for step in 0..steps {
            let mut rng = stream(self.seed, "generator-noise", &[round as u64, step as u64]);
            let logits = disc.forward(self.generator().forward(self.noise(b, &mut rng)));
            let loss = loss_fn.forward(logits.clone(), targets());
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(CoreError::Divergent {
                    round,
                    what: format!("generator loss at step {step}"),
                });
            }
            if step == 0 {
                stats.first_loss = value;
            }
            stats.last_loss = value;
            if step + 1 == steps {
                let hits = logits
                    .argmax(1)
                    .equal(targets().reshape([b, 1]))
                    .int()
                    .sum()
                    .into_scalar::<i64>();
                stats.last_hit_rate = hits as f64 / b as f64;
            }
            let grads = GradientsParams::from_grads(loss.backward(), self.generator());
            let generator = self
                .generator
                .take()
                .expect("generator present between steps");
            self.generator = Some(self.optim.step(self.cfg.lr, generator, grads));
        }
        Ok(stats)
    }

    /// `n` generated images ([`crate::generator::IMAGE`], values in [-1, 1]) from noise drawn from `rng`, made in
    /// batches of the configured size (the generator's BatchNorm uses batch statistics, as
    /// during training).
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * crate::generator::IMAGE.pixels());
        let mut left = n;
        while left > 0 {
            let b = left.min(self.cfg.batch_size);
            let images = self.generator().forward(self.noise(b, rng));
            out.extend(images.into_data().iter::<f32>());
            left -= b;
        }
        out
    }
}
