//! The generator on the CPU kernels, held to burn's module and autodiff.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use fl_core::DeviceKind;
use fl_core::model::ModelKind;
use fl_core::params::{load_flat, to_flat};
use fl_core::train::ModelSpec;
use fl_data::rng::stream;
use fl_gan::generator::Generator;
use fl_gan::kernels::{self, Layout};
use fl_gan::{Gan, GanConfig};
use rand::RngExt;
use rand_distr::StandardNormal;

const LATENT: usize = 100;

fn spec(kind: ModelKind, kernels: bool) -> ModelSpec {
    ModelSpec {
        kind,
        shape: fl_data::ImageShape::grey(28, 28),
        outputs: 11,
        device: DeviceKind::Flex.device().unwrap(),
        cpu_kernels: kernels.then_some(1),
    }
}

fn noise(b: usize, seed: u64) -> Vec<f32> {
    let mut rng = stream(seed, "test-noise", &[]);
    (0..b * LATENT)
        .map(|_| rng.sample(StandardNormal))
        .collect()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Spans of the running statistics in the flat vector (BatchNorm's 3rd and 4th tensors).
fn running_spans(layout: Layout) -> Vec<std::ops::Range<usize>> {
    let fc = layout.latent * 3136 + 3136;
    let up1 = fc + 4 * 64 + 64 * 32 * 16 + 32;
    vec![fc + 128..fc + 256, up1 + 64..up1 + 128]
}

/// A generator part-way through training, so that BatchNorm's scale and shift are not 1, 0.
fn trained_params(b: usize) -> Vec<f32> {
    let s = spec(ModelKind::CNN, true);
    let mut gan = Gan::new(
        GanConfig {
            batch_size: b,
            lr: 1e-2,
            ..Default::default()
        },
        &s,
        3,
    );
    gan.train_steps(&s, &s.initial_params(2), 4, 1, 5).unwrap();
    gan.params()
}

#[test]
fn forward_matches_burns_generator_in_training_mode() {
    let layout = Layout { latent: LATENT };
    let b = 12;
    let params = trained_params(b);
    let z = noise(b, 1);
    let device = DeviceKind::Flex.device().unwrap().autodiff();
    let g = load_flat(Generator::seeded(LATENT, &device, 0), &params);
    let want: Vec<f32> = g
        .forward(Tensor::from_data(
            TensorData::new(z.clone(), [b, LATENT]),
            &device,
        ))
        .into_data()
        .iter::<f32>()
        .collect();
    let mut pass = kernels::Pass::default();
    kernels::forward(layout, &params, &z, &mut pass);
    assert_eq!(pass.images().len(), b * 784);
    let w = worst(&want, pass.images());
    assert!(w < 1e-5, "images differ by {w}");
    // The running statistics move as burn's do.
    let mut mine = params.clone();
    kernels::update_running(layout, &mut mine, &pass);
    // burn's running statistics are read back once the module is synced (`valid`).
    let theirs = to_flat(&g.valid());
    for r in running_spans(layout) {
        assert_ne!(mine[r.clone()], params[r.clone()], "the statistics moved");
        let w = worst(&mine[r.clone()], &theirs[r]);
        assert!(w < 1e-5, "running statistics differ by {w}");
    }
}

#[test]
fn generator_gradient_through_a_frozen_classifier_matches_burn_autodiff() {
    let layout = Layout { latent: LATENT };
    let b = 16;
    let params = trained_params(b);
    let z = noise(b, 2);
    let class = 4usize;
    for kind in [ModelKind::CNN, ModelKind::MLP] {
        let s = spec(kind, true);
        let global = s.initial_params(5);
        // burn: one SGD step with lr 1, so before - after = gradient.
        let device = s.device.clone().autodiff();
        let g = load_flat(Generator::seeded(LATENT, &device, 0), &params);
        let logits = s
            .training_model(&global)
            .no_grad()
            .forward(g.forward(Tensor::from_data(
                TensorData::new(z.clone(), [b, LATENT]),
                &device,
            )));
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![class as i64; b], [b]), &device);
        let loss = CrossEntropyLoss::new(None, &device).forward(logits, targets);
        let burn_loss = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        let after = to_flat(&SgdConfig::new().init().step(1.0, g, grads).valid());
        let mut want: Vec<f32> = params.iter().zip(&after).map(|(p, a)| p - a).collect();

        // The kernels.
        let mut pass = kernels::Pass::default();
        kernels::forward(layout, &params, &z, &mut pass);
        let mut dimages = vec![0.0f32; pass.images().len()];
        let labels = vec![class as u8; b];
        let kern = kind.kernels(&s.dims()).unwrap();
        let (loss, _) = fl_core::backprop::input_gradient(
            kern,
            &s.dims(),
            &global,
            pass.images(),
            &labels,
            &mut dimages,
        )
        .unwrap();
        let mut got = vec![0.0f32; layout.len()];
        kernels::backward(layout, &params, &mut pass, &dimages, &mut got);
        assert!(
            (loss - burn_loss).abs() < 1e-5,
            "{kind:?}: loss {loss} vs {burn_loss}"
        );
        for r in running_spans(layout) {
            assert!(got[r.clone()].iter().all(|&v| v == 0.0));
            want[r].fill(0.0);
        }
        let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(
            scale > 1e-4,
            "{kind:?}: the gradient is not trivially zero ({scale})"
        );
        let w = worst(&want, &got);
        assert!(
            w <= 1e-3 * scale,
            "{kind:?}: gradients differ by {w} (scale {scale})"
        );
    }
}

/// `steps` generator steps on the kernels and through burn (the same seeded generator, noise
/// and discriminator): both engines' stats, the mean distance each parameter moved on the
/// kernels, and the mean distance between the two engines' parameters.
fn both_engines(kind: ModelKind, steps: usize) -> (fl_gan::GanStats, fl_gan::GanStats, f64, f64) {
    let cfg = GanConfig {
        batch_size: 16,
        ..Default::default()
    };
    let (kern, burn) = (spec(kind, true), spec(kind, false));
    let global = kern.initial_params(6);
    let mut a = Gan::new(cfg.clone(), &kern, 9);
    let mut b = Gan::new(cfg, &burn, 9);
    assert!(a.on_kernels() && !b.on_kernels());
    let start = a.params();
    assert_eq!(
        start,
        b.params(),
        "both engines start from the same generator"
    );
    let sa = a.train_steps(&kern, &global, 2, 3, steps).unwrap();
    let sb = b.train_steps(&burn, &global, 2, 3, steps).unwrap();
    let (pa, pb) = (a.params(), b.params());
    let mean_abs = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / x.len() as f64
    };
    (sa, sb, mean_abs(&pa, &start), mean_abs(&pa, &pb))
}

#[test]
fn training_on_the_kernels_follows_burns_engine() {
    let (k, b, moved, apart) = both_engines(ModelKind::CNN, 12);
    assert!((k.first_loss - b.first_loss).abs() < 1e-5, "{k:?} vs {b:?}");
    assert!((k.last_loss - b.last_loss).abs() < 1e-4, "{k:?} vs {b:?}");
    assert!(k.last_loss < k.first_loss, "the generator learns: {k:?}");
    // Adam moves a parameter by about lr a step whatever its gradient's size, so the few
    // whose gradient is nearly zero may step apart by up to 2 lr; on average the engines
    // stay within a thousandth of the distance travelled (4.5e-5 of it measured).
    assert!(apart < 1e-3 * moved, "engines {apart} apart, moved {moved}");
}

#[test]
fn a_classifier_without_kernels_judges_through_burn() {
    // fedavg-cnn has no kernels: the generator still runs on the kernels, its images'
    // gradient comes from burn's autodiff, and the losses follow the all-burn engine.
    let (k, b, moved, apart) = both_engines(ModelKind::FEDAVG_CNN, 4);
    assert!((k.first_loss - b.first_loss).abs() < 1e-5, "{k:?} vs {b:?}");
    assert!((k.last_loss - b.last_loss).abs() < 1e-3, "{k:?} vs {b:?}");
    // 5e-3 of the distance travelled measured (1.1e-5 after one step).
    assert!(apart < 2e-2 * moved, "engines {apart} apart, moved {moved}");
}

#[test]
fn kernel_steps_repeat_bit_for_bit() {
    let s = spec(ModelKind::CNN, true);
    let global = s.initial_params(6);
    let run = || {
        let mut g = Gan::new(
            GanConfig {
                batch_size: 8,
                ..Default::default()
            },
            &s,
            4,
        );
        let stats = g.train_steps(&s, &global, 1, 2, 3).unwrap();
        (stats, g.params(), g.sample(10, &mut stream(1, "s", &[])))
    };
    assert_eq!(run(), run());
}
