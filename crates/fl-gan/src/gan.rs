//! Training the generator against a frozen discriminator, and sampling it.
//!
//! The discriminator is a copy of the shared classifier with the round's global parameters.
//! Its parameters take no gradient; only the generator moves. The loss of a step is the
//! cross-entropy of D(G(z)) towards the chosen class, so the generator learns to draw images
//! the shared model calls that class.
//!
//! On the CPU device the generator runs on [`crate::kernels`] and the discriminator's
//! gradient with respect to its images comes from the classifier's kernels (or from burn's
//! autodiff for an architecture without them); on other devices everything runs through
//! burn's autodiff on the device.

use crate::generator::Generator;
use crate::kernels::{self, Layout};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use fl_core::backprop::Adam;
use fl_core::error::{CoreError, Result};
use fl_core::train::{ModelSpec, Trainer};
use fl_data::rng::{Stream, stream};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

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

/// What a checkpoint keeps of a generator on the CPU kernels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GanState {
    /// The flat parameters (burn's visit order).
    pub params: Vec<f32>,
    /// Adam's moments and step count.
    pub adam: Adam,
}

/// A generator with its optimizer state, kept across attack rounds.
pub struct Gan {
    cfg: GanConfig,
    engine: Engine,
    seed: u64,
}

/// Where the generator lives and trains (one per attack: the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// Flat parameters on [`crate::kernels`] with Adam of PyTorch's semantics (the CPU).
    Kernels { params: Vec<f32>, adam: Adam },
    /// A burn module on the autodiff form of the device, with burn's Adam.
    Burn {
        /// Always `Some` between calls (taken and put back around an optimizer step).
        generator: Option<Generator>,
        optim: ModuleOptimizer,
        device: Device,
    },
}

impl Gan {
    /// A seeded generator for attacks on `spec`'s model: on this crate's kernels when the
    /// device is the CPU, else a burn module on the device's autodiff form. Both start from
    /// the same parameters.
    pub fn new(cfg: GanConfig, spec: &ModelSpec, seed: u64) -> Self {
        let engine = if spec.cpu_kernels.is_some() {
            let generator = Generator::seeded(cfg.latent, &spec.device, seed);
            Engine::Kernels {
                params: fl_core::params::to_flat(&generator),
                adam: Adam::new(cfg.lr, cfg.beta1, cfg.beta2, cfg.epsilon, 0.0),
            }
        } else {
            let device = spec.device.clone().autodiff();
            let optim = AdamConfig::new()
                .with_beta_1(cfg.beta1 as f32)
                .with_beta_2(cfg.beta2 as f32)
                .with_epsilon(cfg.epsilon as f32)
                .init();
            Engine::Burn {
                generator: Some(Generator::seeded(cfg.latent, &device, seed)),
                optim,
                device,
            }
        };
        Self { cfg, engine, seed }
    }

    /// The configuration.
    pub fn config(&self) -> &GanConfig {
        &self.cfg
    }

    /// The generator's parameters and Adam state, for a checkpoint: `None` on the burn engine
    /// (its optimizer's state is burn's record, not saved here).
    pub fn state(&self) -> Option<GanState> {
        match &self.engine {
            Engine::Kernels { params, adam } => Some(GanState {
                params: params.clone(),
                adam: adam.clone(),
            }),
            Engine::Burn { .. } => None,
        }
    }

    /// Restores what [`Gan::state`] saved, into a generator built from the same config.
    pub fn set_state(&mut self, state: GanState) -> Result<()> {
        let len = self.layout().len();
        match &mut self.engine {
            Engine::Kernels { params, adam } if state.params.len() == len => {
                *params = state.params;
                *adam = state.adam;
                Ok(())
            }
            Engine::Kernels { .. } => Err(CoreError::Config(format!(
                "the checkpoint's generator has {} parameters, this one {len}",
                state.params.len()
            ))),
            Engine::Burn { .. } => Err(CoreError::Config(
                "a generator on burn's engine cannot be restored from a checkpoint".into(),
            )),
        }
    }

    /// Whether the generator runs on this crate's CPU kernels (else through burn).
    pub fn on_kernels(&self) -> bool {
        matches!(self.engine, Engine::Kernels { .. })
    }

    fn layout(&self) -> Layout {
        Layout {
            latent: self.cfg.latent,
        }
    }

    /// The generator's parameters (flat, in burn's visit order, BatchNorm's running statistics
    /// included).
    pub fn params(&self) -> Vec<f32> {
        match &self.engine {
            Engine::Kernels { params, .. } => params.clone(),
            Engine::Burn { generator, .. } => fl_core::params::to_flat(
                &generator
                    .as_ref()
                    .expect("generator present between steps")
                    .valid(),
            ),
        }
    }

    fn noise(&self, n: usize, rng: &mut Stream) -> Vec<f32> {
        (0..n * self.cfg.latent)
            .map(|_| rng.sample(StandardNormal))
            .collect()
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
        let b = self.cfg.batch_size;
        let judge = Judge::new(spec, global);
        let layout = self.layout();
        let mut stats = GanStats {
            steps,
            ..Default::default()
        };
        let mut dimages = Vec::new();
        let mut grad = Vec::new();
        let mut pass = kernels::Pass::default();
        for step in 0..steps {
            let mut rng = stream(self.seed, "generator-noise", &[round as u64, step as u64]);
            let z = self.noise(b, &mut rng);
            let (value, hits) = match &mut self.engine {
                Engine::Kernels { params, adam } => {
                    kernels::forward(layout, params, &z, &mut pass);
                    dimages.resize(pass.images().len(), 0.0);
                    let (loss, hits) = judge.input_gradient(pass.images(), class, &mut dimages);
                    grad.resize(params.len(), 0.0);
                    kernels::backward(layout, params, &mut pass, &dimages, &mut grad);
                    kernels::update_running(layout, params, &pass);
                    if loss.is_finite() {
                        adam.step(params, &mut grad);
                    }
                    (loss as f64, hits)
                }
                Engine::Burn {
                    generator,
                    optim,
                    device,
                } => {
                    let g = generator.take().expect("generator present between steps");
                    let z = Tensor::from_data(TensorData::new(z, [b, self.cfg.latent]), &*device);
                    let logits = judge.module().forward(g.forward(z));
                    let targets = Tensor::<1, Int>::from_data(
                        TensorData::new(vec![class as i64; b], [b]),
                        &*device,
                    );
                    let loss = CrossEntropyLoss::new(None, device)
                        .forward(logits.clone(), targets.clone());
                    let value = loss.clone().into_scalar::<f32>() as f64;
                    let hits = if step + 1 == steps {
                        logits
                            .argmax(1)
                            .equal(targets.reshape([b, 1]))
                            .int()
                            .sum()
                            .into_scalar::<i64>() as usize
                    } else {
                        0
                    };
                    let grads = GradientsParams::from_grads(loss.backward(), &g);
                    *generator = Some(optim.step(self.cfg.lr, g, grads));
                    (value, hits)
                }
            };
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
                stats.last_hit_rate = hits as f64 / b as f64;
            }
        }
        Ok(stats)
    }

    /// `n` generated images ([`crate::generator::IMAGE`], values in [-1, 1]) from noise drawn
    /// from `rng`, made in batches of the configured size (the generator's BatchNorm uses
    /// batch statistics, as during training).
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * crate::generator::IMAGE.pixels());
        let mut pass = kernels::Pass::default();
        let mut left = n;
        while left > 0 {
            let b = left.min(self.cfg.batch_size);
            let z = self.noise(b, rng);
            match &self.engine {
                Engine::Kernels { params, .. } => {
                    kernels::forward(self.layout(), params, &z, &mut pass);
                    out.extend_from_slice(pass.images());
                }
                Engine::Burn {
                    generator, device, ..
                } => {
                    let z = Tensor::from_data(TensorData::new(z, [b, self.cfg.latent]), device);
                    let g = generator.as_ref().expect("generator present between steps");
                    out.extend(g.forward(z).into_data().iter::<f32>());
                }
            }
            left -= b;
        }
        out
    }
}

/// The frozen discriminator's judgement of a batch of images towards a class: the loss, how
/// many it assigns to the class, and the gradient with respect to the images.
enum Judge<'a> {
    /// The classifier's CPU kernels.
    Kernels {
        kernels: &'static fl_core::model::Kernels,
        spec: &'a ModelSpec,
        global: &'a [f32],
    },
    /// burn's autodiff of the classifier on the CPU device (an architecture without input
    /// gradient kernels), or the module the burn engine builds on its device.
    Burn {
        model: fl_core::model::Classifier,
        spec: &'a ModelSpec,
    },
}

impl<'a> Judge<'a> {
    fn new(spec: &'a ModelSpec, global: &'a [f32]) -> Self {
        match spec.trainer() {
            Trainer::Kernels { kernels, .. } if kernels.input_gradient.is_some() => {
                Judge::Kernels {
                    kernels,
                    spec,
                    global,
                }
            }
            _ => Judge::Burn {
                model: spec.training_model(global).no_grad(),
                spec,
            },
        }
    }

    /// The frozen module: the burn engine's discriminator (that engine runs where the
    /// trainer is burn, so its judge is always a module).
    fn module(&self) -> &fl_core::model::Classifier {
        match self {
            Judge::Burn { model, .. } => model,
            Judge::Kernels { .. } => unreachable!("the burn engine runs off the CPU kernels"),
        }
    }

    /// Loss and hits of `images` towards `class`, their gradient written into `dimages`.
    fn input_gradient(&self, images: &[f32], class: usize, dimages: &mut [f32]) -> (f32, usize) {
        match self {
            Judge::Kernels {
                kernels,
                spec,
                global,
            } => {
                let b = images.len() / spec.shape.pixels();
                let labels = vec![class as u8; b];
                let (loss, logits) = fl_core::backprop::input_gradient(
                    kernels,
                    &spec.dims(),
                    global,
                    images,
                    &labels,
                    dimages,
                )
                .expect("kernels with an input gradient");
                (loss, hits(&logits, spec.outputs, class))
            }
            Judge::Burn { model, spec } => {
                let device = spec.device.clone().autodiff();
                let b = images.len() / spec.shape.pixels();
                let x = spec.images(images.to_vec(), &device).require_grad();
                let logits = model.forward(x.clone());
                let targets = Tensor::<1, Int>::from_data(
                    TensorData::new(vec![class as i64; b], [b]),
                    &device,
                );
                let loss = CrossEntropyLoss::new(None, &device).forward(logits.clone(), targets);
                let value = loss.clone().into_scalar::<f32>();
                let grads = loss.backward();
                let gx = x.grad(&grads).expect("the images take a gradient");
                dimages
                    .iter_mut()
                    .zip(gx.into_data().iter::<f32>())
                    .for_each(|(d, v)| *d = v);
                let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
                (value, hits(&logits, spec.outputs, class))
            }
        }
    }
}

/// How many rows of `logits` (`outputs` wide) have their largest value at `class` (the first
/// largest on ties).
fn hits(logits: &[f32], outputs: usize, class: usize) -> usize {
    logits
        .chunks_exact(outputs)
        .filter(|row| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
            best == class
        })
        .count()
}
