//! The generator and its training against a frozen discriminator.

use fl_core::DeviceKind;
use fl_core::data::LocalData;
use fl_core::model::ModelKind;
use fl_core::train::{ModelSpec, TrainConfig, train_local};
use fl_data::rng::stream;
use fl_data::{DatasetKind, Split};
use fl_gan::{Gan, GanConfig};

fn spec() -> ModelSpec {
    ModelSpec {
        kind: ModelKind::CNN,
        shape: fl_data::ImageShape::grey(28, 28),
        outputs: 11,
        device: DeviceKind::Flex.device().unwrap(),
        cpu_kernels: Some(1),
    }
}

fn small() -> GanConfig {
    GanConfig {
        steps: 25,
        batch_size: 16,
        ..Default::default()
    }
}

/// A classifier trained for one epoch on the bundled MNIST subset (the frozen discriminator).
fn trained_classifier(s: &ModelSpec) -> Vec<f32> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
    let train = fl_data::Dataset::load(root.as_ref(), DatasetKind::Mnist, Split::Train).unwrap();
    let data = LocalData::all(&train);
    let cfg = TrainConfig {
        lr: 0.05,
        momentum: 0.5,
        ..Default::default()
    };
    train_local(
        s,
        &s.initial_params(11),
        &data,
        &cfg,
        &mut stream(11, "t", &[]),
    )
    .0
}

#[test]
fn samples_are_28x28_in_tanh_range() {
    let gan = Gan::new(small(), &spec(), 3);
    let images = gan.sample(21, &mut stream(1, "test", &[]));
    assert_eq!(images.len(), 21 * 28 * 28);
    assert!(images.iter().all(|v| (-1.0..=1.0).contains(v)));
    // Not a constant picture.
    let (lo, hi) = images
        .iter()
        .fold((1.0f32, -1.0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(hi - lo > 0.1, "range {lo}..{hi}");
}

#[test]
fn seeded_generators_agree_and_differ_by_seed() {
    let s = spec();
    let a = Gan::new(small(), &s, 5).params();
    assert_eq!(a, Gan::new(small(), &s, 5).params());
    assert_ne!(a, Gan::new(small(), &s, 6).params());
}

#[test]
fn a_gan_step_lowers_the_loss_and_moves_only_the_generator() {
    let s = spec();
    let disc = trained_classifier(&s);
    let mut gan = Gan::new(small(), &s, 7);
    let before = gan.params();
    let stats = gan.train_steps(&s, &disc, 4, 1, 60).unwrap();
    assert_eq!(stats.steps, 60);
    assert!(
        stats.last_loss < 0.8 * stats.first_loss,
        "generator loss {} -> {}",
        stats.first_loss,
        stats.last_loss
    );
    assert!(
        stats.last_hit_rate > 0.5,
        "hit rate {} loss {:?}",
        stats.last_hit_rate,
        stats
    );
    assert_ne!(gan.params(), before);
    // The discriminator's parameters are a slice the GAN cannot touch; the same call from the
    // same state gives the same numbers.
    let mut again = Gan::new(small(), &s, 7);
    assert_eq!(again.train_steps(&s, &disc, 4, 1, 60).unwrap(), stats);
    assert_eq!(again.params(), gan.params());
}

#[test]
fn invalid_configs_are_refused() {
    let bad = GanConfig {
        batch_size: 1,
        ..Default::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("batch_size")
    );
    let bad = GanConfig {
        lr: -1.0,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("gan.lr"));
}
