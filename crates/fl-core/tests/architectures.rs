//! The trainer seam and run-time shapes: an architecture defined here (a burn module and an
//! `Architecture` value, no crate edited) trains through burn on the CPU device where it has
//! no kernels; the kernels follow the image shape and class count they are given; configs
//! name architectures from the registry.

mod common;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use common::worst_difference;
use fl_core::data::LocalData;
use fl_core::model::{ARCHITECTURES, Architecture, Dims, ImageShape, ModelKind, Net, Network};
use fl_core::train::{ModelSpec, TrainConfig, Trainer, train_local};
use fl_core::{DeviceKind, FedAvg, FedConfig, Federation, Participant};
use fl_data::rng::stream;
use rand::RngExt;

/// A network written for this test only: one hidden layer of 16 units over the pixels.
#[derive(Module, Debug)]
struct Tiny {
    fc1: Linear,
    fc2: Linear,
}

impl Network for Tiny {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        self.fc2
            .forward(relu(self.fc1.forward(x.reshape([b, c * h * w]))))
    }
}

fn build_tiny(d: &Dims, device: &Device) -> Box<dyn Net> {
    Box::new(Tiny {
        fc1: LinearConfig::new(d.image.pixels(), 16).init(device),
        fc2: LinearConfig::new(16, d.outputs).init(device),
    })
}

static TINY: Architecture = Architecture {
    name: "tiny-test",
    about: "pixels -> 16 -> K+1, defined in a test",
    build: build_tiny,
    kernels: None,
    init: fl_core::params::seeded_init,
    batch_statistics: false,
};

/// A colour shape none of the bundled datasets has.
const COLOUR: ImageShape = ImageShape {
    channels: 3,
    height: 20,
    width: 20,
};

/// `n` seeded images of `shape` whose label (of `classes`) is written into their brightness,
/// so that a model can learn them.
fn synthetic(shape: ImageShape, classes: usize, n: usize, seed: u64) -> LocalData {
    let mut rng = stream(seed, "synthetic-images", &[]);
    let mut images = Vec::with_capacity(n * shape.pixels());
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let y = i % classes;
        let level = -0.8 + 1.6 * y as f32 / (classes - 1) as f32;
        images.extend((0..shape.pixels()).map(|_| level + rng.random_range(-0.3f32..0.3)));
        labels.push(y as u8);
    }
    LocalData::new(images, labels, shape)
}

fn flex_spec(kind: ModelKind, shape: ImageShape, classes: usize) -> ModelSpec {
    ModelSpec {
        kind,
        shape,
        outputs: classes + 1,
        device: DeviceKind::Flex.device().unwrap(),
        cpu_kernels: Some(1),
    }
}

/// Why `Federation::new` refuses one client holding `client` with the model `spec` and the
/// test set `test`, under `config` (one client).
fn refusal(config: FedConfig, spec: ModelSpec, client: LocalData, test: LocalData) -> String {
    Federation::new(
        config,
        spec,
        vec![Box::new(fl_core::BenignClient::new(0, client))],
        Box::new(FedAvg),
        test,
    )
    .err()
    .expect("refused")
    .to_string()
}

#[test]
fn an_architecture_without_kernels_trains_through_burn_on_the_cpu_device() {
    let spec = flex_spec(ModelKind::new(&TINY), COLOUR, 4);
    assert!(matches!(spec.trainer(), Trainer::Burn));
    // 1200*16+16, 16*5+5
    assert_eq!(spec.num_params(), 19_216 + 85);
    let data = synthetic(COLOUR, 4, 64, 1);
    let init = spec.initial_params(2);
    let tc = TrainConfig {
        lr: 0.05,
        epochs: 3,
        batch_size: 16,
        ..Default::default()
    };
    let (a, first) = train_local(&spec, &init, &data, &tc, &mut stream(3, "t", &[]));
    let (b, _) = train_local(&spec, &init, &data, &tc, &mut stream(3, "t", &[]));
    assert_eq!(a, b, "same seed, same parameters");
    let (c, later) = train_local(&spec, &a, &data, &tc, &mut stream(4, "t", &[]));
    assert!(
        later.loss < first.loss * 0.8,
        "the loss falls: {} then {}",
        first.loss,
        later.loss
    );
    let acc = |p: &[f32]| fl_core::eval::evaluate(&spec, p, &data, 4).accuracy;
    assert!(
        acc(&c) > acc(&init) && acc(&c) >= 0.5,
        "it learns the brightness classes: {} -> {}",
        acc(&init),
        acc(&c)
    );
}

#[test]
fn a_federation_runs_any_architecture_on_images_of_any_shape() {
    let classes = 4;
    let config = FedConfig {
        name: "shapes".into(),
        clients: 3,
        rounds: 3,
        seed: 5,
        train: TrainConfig {
            lr: 0.1,
            batch_size: 8,
            ..Default::default()
        },
        ..Default::default()
    };
    for kind in [ModelKind::new(&TINY), ModelKind::MLP, ModelKind::CNN] {
        let spec = flex_spec(kind, COLOUR, classes);
        let participants: Vec<Box<dyn Participant>> = (0..3)
            .map(|k| {
                Box::new(fl_core::BenignClient::new(
                    k,
                    synthetic(COLOUR, classes, 40, 10 + k as u64),
                )) as Box<dyn Participant>
            })
            .collect();
        let mut fed = Federation::new(
            config.clone(),
            spec,
            participants,
            Box::new(FedAvg),
            synthetic(COLOUR, classes, 40, 99),
        )
        .unwrap();
        let before = fed.evaluate();
        for _ in 0..3 {
            fed.run_round().unwrap();
        }
        let after = fed.evaluate();
        assert_eq!(after.confusion.len(), classes, "{kind}: one row per class");
        assert_eq!(
            after.confusion[0].len(),
            classes + 1,
            "{kind}: K + 1 outputs"
        );
        assert!(
            after.loss < before.loss,
            "{kind}: test loss {} -> {}",
            before.loss,
            after.loss
        );
    }
}

#[test]
fn the_cnn_kernels_follow_the_shape_they_are_given() {
    // Colour 20x20 images and 4 classes: conv1 takes 3 channels, the maps are 8x8 then 2x2.
    let dims = Dims {
        image: COLOUR,
        outputs: 5,
    };
    assert_eq!(dims.cnn(), Some((8, 20 * 2 * 2)));
    let native = flex_spec(ModelKind::CNN, COLOUR, 4);
    assert!(matches!(native.trainer(), Trainer::Kernels { .. }));
    let burn = ModelSpec {
        cpu_kernels: None,
        ..native.clone()
    };
    // 3*10*25+10, 10*20*25+20, 80*50+50, 50*5+5
    assert_eq!(native.num_params(), 760 + 5020 + 4050 + 255);
    let data = synthetic(COLOUR, 4, 48, 7);
    let init = native.initial_params(8);
    let tc = TrainConfig {
        lr: 0.05,
        momentum: 0.9,
        batch_size: 16,
        epochs: 2,
        ..Default::default()
    };
    let (a, sa) = train_local(&burn, &init, &data, &tc, &mut stream(1, "t", &[]));
    let (b, sb) = train_local(&native, &init, &data, &tc, &mut stream(1, "t", &[]));
    assert!(worst_difference(&a, &init) > 1e-3, "training moved them");
    let worst = worst_difference(&a, &b);
    assert!(
        worst < 1e-4,
        "kernels and burn differ by {worst} after 6 steps"
    );
    assert!((sa.loss - sb.loss).abs() < 1e-4);
    let lb = fl_core::eval::logits(&burn, &b, &data);
    let ln = fl_core::eval::logits(&native, &b, &data);
    assert!(worst_difference(&lb, &ln) < 1e-4, "forward passes agree");
}

#[test]
fn images_too_small_for_the_cnn_kernels_fall_back_or_are_refused() {
    let small = ImageShape::grey(11, 11);
    let d = Dims {
        image: small,
        outputs: 3,
    };
    assert_eq!(
        d.cnn(),
        None,
        "11 -> 7 -> 3 -> nothing after the second convolution"
    );
    assert!(ModelKind::CNN.kernels(&d).is_none());
    // A non-square image has no CNN kernels either, but the MLP's handle any shape.
    let wide = Dims {
        image: ImageShape::grey(28, 32),
        outputs: 3,
    };
    assert!(ModelKind::CNN.kernels(&wide).is_none());
    assert!(ModelKind::MLP.kernels(&wide).is_some());
    assert!(ModelKind::FEDAVG_CNN.kernels(&wide).is_none());
}

#[test]
fn the_fedavg_cnn_has_the_papers_size_and_trains_through_burn() {
    let spec = flex_spec(ModelKind::FEDAVG_CNN, ImageShape::grey(28, 28), 10);
    assert!(matches!(spec.trainer(), Trainer::Burn));
    // conv 1*32*25+32, conv 32*64*25+64, fc 3136*512+512, fc 512*11+11
    assert_eq!(spec.num_params(), 832 + 51_264 + 1_606_144 + 5_643);
    let data = synthetic(ImageShape::grey(28, 28), 10, 20, 3);
    let init = spec.initial_params(1);
    let tc = TrainConfig {
        batch_size: 10,
        ..Default::default()
    };
    let (a, stats) = train_local(&spec, &init, &data, &tc, &mut stream(0, "t", &[]));
    assert_eq!(stats.steps, 2);
    assert!(worst_difference(&a, &init) > 0.0);
    assert!(stats.loss.is_finite());
}

#[test]
fn resnet20_has_the_authors_size_and_learns_through_burn() {
    let spec = flex_spec(ModelKind::RESNET20, ImageShape::grey(28, 28), 10);
    assert!(matches!(spec.trainer(), Trainer::Burn));
    // conv1 1*16*9; stage 1: 3 x 2 x 16*16*9; stage 2: 16*32*9 + 32*32*9 + 16*32 (shortcut),
    // then 2 x 2 x 32*32*9; stage 3 likewise with 64; fc 64*11 + 11.
    let stage1 = 3 * 2 * 16 * 16 * 9;
    let stage2 = 16 * 32 * 9 + 32 * 32 * 9 + 16 * 32 + 2 * 2 * 32 * 32 * 9;
    let stage3 = 32 * 64 * 9 + 64 * 64 * 9 + 32 * 64 + 2 * 2 * 64 * 64 * 9;
    // Every convolution but the shortcuts' is followed by a normalisation (scale and shift
    // per channel), and so is each of the two shortcuts: 2 x (16 + 6 x 16 + 6 x 32 + 32 +
    // 6 x 64 + 64).
    let norms = 2 * (16 + 6 * 16 + 6 * 32 + 32 + 6 * 64 + 64);
    assert_eq!(norms, 1_568);
    assert_eq!(
        spec.num_params(),
        144 + stage1 + stage2 + stage3 + 64 * 11 + 11 + norms
    );
    assert_eq!(spec.num_params(), 272_251);
    // The normalisations start at scale 1 and shift 0: 1,568 values, half of them 1.
    let init = spec.initial_params(3);
    let ones = init.iter().filter(|&&v| v == 1.0).count();
    let zeros = init.iter().filter(|&&v| v == 0.0).count();
    assert_eq!((ones, zeros), (784, 784));
    // Two brightness classes: a few Adam steps fit them.
    let data = synthetic(ImageShape::grey(28, 28), 2, 16, 4);
    let tc = TrainConfig {
        lr: 1e-3,
        optimizer: fl_core::train::OptimizerKind::Adam,
        batch_size: 8,
        epochs: 4,
        ..Default::default()
    };
    let (a, first) = train_local(&spec, &init, &data, &tc, &mut stream(0, "t", &[]));
    let (_, later) = train_local(&spec, &a, &data, &tc, &mut stream(1, "t", &[]));
    assert!(
        later.loss < first.loss,
        "{} then {}",
        first.loss,
        later.loss
    );
}

#[test]
fn keeping_optimizer_state_needs_kernels_and_says_why() {
    let config = FedConfig {
        clients: 1,
        train: TrainConfig {
            keep_optimizer_state: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let spec = flex_spec(ModelKind::new(&TINY), COLOUR, 4);
    let m = refusal(
        config,
        spec,
        synthetic(COLOUR, 4, 8, 1),
        synthetic(COLOUR, 4, 8, 2),
    );
    assert!(m.contains("tiny-test") && m.contains("through burn"), "{m}");
}

#[test]
fn a_test_set_of_another_shape_is_refused() {
    let config = FedConfig {
        clients: 1,
        ..Default::default()
    };
    let spec = flex_spec(ModelKind::MLP, COLOUR, 4);
    let e = refusal(
        config,
        spec,
        synthetic(COLOUR, 4, 8, 1),
        synthetic(ImageShape::grey(28, 28), 4, 8, 2),
    );
    assert!(e.contains("1x28x28"), "{e}");
}

#[test]
fn configs_name_architectures_from_the_registry() {
    let names: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        ["cnn", "mlp", "mlp-wide", "mlp-bn", "fedavg-cnn", "resnet20"]
    );
    for a in ARCHITECTURES {
        let k = ModelKind::parse(a.name).unwrap();
        let toml = format!("model = \"{}\"\n", a.name);
        let cfg: FedConfig = toml::from_str(&toml).unwrap();
        assert_eq!(cfg.model, k);
        assert!(toml::to_string(&cfg).unwrap().contains(&toml));
    }
    let e = toml::from_str::<FedConfig>("model = \"resnet\"\n").unwrap_err();
    assert!(
        e.to_string().contains(
            "unknown model `resnet` (known: cnn, mlp, mlp-wide, mlp-bn, fedavg-cnn, resnet20)"
        ),
        "{e}"
    );
}
