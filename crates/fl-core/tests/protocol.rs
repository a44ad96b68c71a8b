//! The core on the bundled fixtures: parameters, training, the round protocol, determinism.

mod common;

use common::worst_difference;
use fl_core::backprop::Optimizer;
use fl_core::experiment::{Experiment, Prepared, aggregator};
use fl_core::model::{Classifier, Dims, ImageShape, ModelKind};
use fl_core::params::seeded_init;
use fl_core::train::{
    ModelSpec, OptimizerKind, OptimizerState, TrainConfig, train_local, train_local_with,
};
use fl_core::{
    Aggregate, Aggregator, CoreError, DeviceKind, FedConfig, Participant, RoundContext,
    ServerRound, Update,
};
use fl_data::partition::PartitionConfig;
use fl_data::rng::stream;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn small_config() -> FedConfig {
    FedConfig {
        name: "test".into(),
        data_dir: fixtures(),
        clients: 4,
        rounds: 2,
        test_samples: Some(200),
        partition: PartitionConfig {
            samples_per_client: Some(100),
            ..Default::default()
        },
        seed: 3,
        ..Default::default()
    }
}

const MNIST: ImageShape = ImageShape::grey(28, 28);
const DIMS: Dims = Dims {
    image: MNIST,
    outputs: 11,
};

fn spec(kind: ModelKind) -> ModelSpec {
    ModelSpec {
        kind,
        shape: MNIST,
        outputs: 11,
        device: DeviceKind::Flex.device().unwrap(),
        cpu_kernels: None,
    }
}

#[test]
fn parameter_counts_by_hand() {
    // conv1 1*10*25+10, conv2 10*20*25+20, fc1 320*50+50, fc2 50*11+11
    assert_eq!(spec(ModelKind::CNN).num_params(), 260 + 5020 + 16050 + 561);
    // 784*200+200, 200*200+200, 200*11+11
    assert_eq!(spec(ModelKind::MLP).num_params(), 157_000 + 40_200 + 2_211);
    // 784*512+512, 512*512+512, 512*11+11
    assert_eq!(
        spec(ModelKind::MLP_WIDE).num_params(),
        401_920 + 262_656 + 5_643
    );
    // 784*200 (no bias), scale and shift 2*200, 200*200 (no bias), 2*200, 200*11+11
    assert_eq!(
        spec(ModelKind::MLP_BN).num_params(),
        156_800 + 400 + 40_000 + 400 + 2_211
    );
}

#[test]
fn batch_normalised_mlp_starts_at_scale_one_and_shift_zero() {
    let p = spec(ModelKind::MLP_BN).initial_params(7);
    let (scale1, shift1) = (&p[156_800..157_000], &p[157_000..157_200]);
    let (scale2, shift2) = (&p[197_200..197_400], &p[197_400..197_600]);
    assert!(scale1.iter().chain(scale2).all(|&v| v == 1.0));
    assert!(shift1.iter().chain(shift2).all(|&v| v == 0.0));
    // The weights follow PyTorch's rule: uniform in +-1/sqrt(784) for fc1.
    let bound = 1.0 / 784f32.sqrt();
    assert!(p[..156_800].iter().all(|v| v.abs() <= bound));
    assert!(p[..156_800].iter().any(|v| v.abs() > bound / 2.0));
}

#[test]
fn batch_normalised_mlp_judges_an_image_with_its_batch() {
    // Normalised by the batch, an image's logits change with its companions; the blocks of
    // evaluation are fixed, so a thread count never changes them, and one batch differs from
    // blocks of 64.
    let p = Prepared::load(&small_config()).unwrap();
    let data = fl_core::data::LocalData::all(&p.test);
    let s = spec(ModelKind::MLP_BN);
    let params = s.initial_params(2);
    let kernels = ModelKind::MLP_BN.kernels(&DIMS).expect("kernels");
    let blocks = fl_core::inference::logits(kernels, &DIMS, &params, &data.images, 1);
    let one = fl_core::eval::logits_one_batch(&s, &params, &data);
    assert_eq!(one.len(), blocks.len());
    assert!(worst_difference(&one, &blocks) > 1e-3);
    let first_block = &data.images[..64 * 784];
    let mut alone = vec![0.0f32; 64 * 11];
    (kernels.forward)(&DIMS, &params, first_block, &mut alone);
    assert_eq!(&blocks[..64 * 11], &alone[..]);
    // Through burn (no kernels) the same blocks of 64.
    let burn = fl_core::eval::logits(&s, &params, &data);
    assert!(worst_difference(&burn, &blocks) < 1e-4);
    let burn_one = fl_core::eval::logits_one_batch(&s, &params, &data);
    assert!(worst_difference(&burn_one, &one) < 1e-4);
}

#[test]
fn flat_parameters_round_trip() {
    for kind in [
        ModelKind::CNN,
        ModelKind::MLP,
        ModelKind::MLP_WIDE,
        ModelKind::MLP_BN,
    ] {
        let s = spec(kind);
        let v: Vec<f32> = (0..s.num_params())
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let m = Classifier::new(kind, &DIMS, &s.device).with_params(&v);
        assert_eq!(m.to_flat(), v);
        assert_eq!(s.training_model(&v).to_flat(), v, "autodiff model");
    }
}

#[test]
fn cpu_kernels_inference_matches_burn_forward_whatever_the_threads() {
    let p = Prepared::load(&small_config()).unwrap();
    let data = fl_core::data::LocalData::all(&p.test);
    for kind in [
        ModelKind::CNN,
        ModelKind::MLP,
        ModelKind::MLP_WIDE,
        ModelKind::MLP_BN,
    ] {
        let s = spec(kind);
        // Trained a little, so activations are not all tiny.
        let init = s.initial_params(5);
        let tc = TrainConfig::default();
        let (params, _) = train_local(&s, &init, &p.client_data(1), &tc, &mut stream(0, "t", &[]));
        let burn = fl_core::eval::logits(&s, &params, &data);
        let kernels = kind.kernels(&DIMS).expect("kernels for 28x28");
        let native = fl_core::inference::logits(kernels, &DIMS, &params, &data.images, 1);
        assert_eq!(burn.len(), native.len());
        let worst = burn
            .iter()
            .zip(&native)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{kind:?}: largest difference {worst}");
        for threads in [2, 3, 7] {
            let t = fl_core::inference::logits(kernels, &DIMS, &params, &data.images, threads);
            assert_eq!(t, native, "{kind:?} with {threads} threads");
        }
    }
}

#[test]
fn cpu_kernels_gradient_matches_burn_autodiff() {
    let p = Prepared::load(&small_config()).unwrap();
    let data = p.client_data(2);
    for kind in [
        ModelKind::CNN,
        ModelKind::MLP,
        ModelKind::MLP_WIDE,
        ModelKind::MLP_BN,
    ] {
        let burn = spec(kind);
        let native = ModelSpec {
            cpu_kernels: Some(1),
            ..spec(kind)
        };
        // One full-batch step with lr 1 from a partly trained model: init - result = gradient.
        let (start, _) = train_local(
            &burn,
            &burn.initial_params(4),
            &data,
            &TrainConfig::default(),
            &mut stream(0, "t", &[]),
        );
        let tc = TrainConfig {
            lr: 1.0,
            batch_size: data.len(),
            ..Default::default()
        };
        let (after_burn, stats_burn) =
            train_local(&burn, &start, &data, &tc, &mut stream(1, "t", &[]));
        let (after_native, stats_native) =
            train_local(&native, &start, &data, &tc, &mut stream(1, "t", &[]));
        let grad =
            |after: &[f32]| -> Vec<f32> { start.iter().zip(after).map(|(s, a)| s - a).collect() };
        let (gb, gn) = (grad(&after_burn), grad(&after_native));
        let scale = gb.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(scale > 1e-3, "{kind:?}: the gradient is not trivially zero");
        let worst = worst_difference(&gb, &gn);
        assert!(
            worst <= 1e-4 * scale.max(1.0),
            "{kind:?}: gradients differ by {worst} (scale {scale})"
        );
        assert!(
            (stats_burn.loss - stats_native.loss).abs() < 1e-5,
            "{kind:?}: loss"
        );
        assert_eq!(stats_native.steps, 1);
    }
}

#[test]
fn cpu_kernels_input_gradient_matches_burn_autodiff() {
    use burn::nn::loss::CrossEntropyLoss;
    use burn::tensor::{Int, Tensor, TensorData};
    let p = Prepared::load(&small_config()).unwrap();
    let data = p.client_data(1);
    let b = 24;
    let images = &data.images[..b * MNIST.pixels()];
    let labels: Vec<u8> = (0..b).map(|i| (i % 11) as u8).collect();
    for kind in [ModelKind::CNN, ModelKind::MLP, ModelKind::MLP_WIDE] {
        let s = spec(kind);
        // A partly trained model, so that the gradient is not that of a uniform softmax.
        let (params, _) = train_local(
            &s,
            &s.initial_params(4),
            &data,
            &TrainConfig::default(),
            &mut stream(0, "t", &[]),
        );
        let device = s.device.clone().autodiff();
        let x = s.images(images.to_vec(), &device).require_grad();
        let logits = s.training_model(&params).no_grad().forward(x.clone());
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new(labels.iter().map(|&l| l as i64).collect(), [b]),
            &device,
        );
        let loss = CrossEntropyLoss::new(None, &device).forward(logits.clone(), targets);
        let burn_loss = loss.clone().into_scalar::<f32>();
        let want: Vec<f32> = x
            .grad(&loss.backward())
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        let kernels = kind.kernels(&DIMS).unwrap();
        let mut got = vec![0.0f32; images.len()];
        let (native_loss, native_logits) =
            fl_core::backprop::input_gradient(kernels, &DIMS, &params, images, &labels, &mut got)
                .unwrap();
        let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert!(scale > 1e-4, "{kind:?}: the gradient is not trivially zero");
        let worst = worst_difference(&want, &got);
        assert!(
            worst <= 1e-4 * scale,
            "{kind:?}: input gradients differ by {worst} (scale {scale})"
        );
        assert!((burn_loss - native_loss).abs() < 1e-5, "{kind:?}: loss");
        let burn_logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
        assert!(worst_difference(&burn_logits, &native_logits) < 1e-4);
    }
}

/// 14 steps of `tc` (100 samples, batches of 16, 2 epochs) on the CPU kernels and through
/// burn's autodiff and optimizer, for both models: the parameters move by more than `moved`
/// and the two agree within `tolerance`; the kernels repeat bit for bit.
fn kernels_follow_burn(tc: &TrainConfig, moved: f32, tolerance: f32) {
    tc.validate().unwrap();
    let p = Prepared::load(&small_config()).unwrap();
    let data = p.client_data(0);
    for kind in [ModelKind::CNN, ModelKind::MLP, ModelKind::MLP_WIDE] {
        let burn = spec(kind);
        let native = ModelSpec {
            cpu_kernels: Some(1),
            ..spec(kind)
        };
        let init = burn.initial_params(9);
        let (a, sa) = train_local(&burn, &init, &data, tc, &mut stream(2, "t", &[]));
        let (b, sb) = train_local(&native, &init, &data, tc, &mut stream(2, "t", &[]));
        let went = worst_difference(&a, &init);
        let worst = worst_difference(&a, &b);
        assert!(
            went > moved,
            "{kind:?} {tc:?}: training moved the parameters by {went}"
        );
        assert!(
            worst < tolerance,
            "{kind:?} {tc:?}: after 14 steps the parameters differ by {worst}"
        );
        assert!(
            (sa.loss - sb.loss).abs() < 1e-3,
            "{kind:?}: {} vs {}",
            sa.loss,
            sb.loss
        );
        assert_eq!(sa.steps, sb.steps);
        let (again, _) = train_local(&native, &init, &data, tc, &mut stream(2, "t", &[]));
        assert_eq!(again, b, "{kind:?}: same inputs, same bits");
    }
}

#[test]
fn cpu_kernels_training_with_momentum_and_decay_follows_burn() {
    let tc = TrainConfig {
        lr: 0.03,
        momentum: 0.9,
        weight_decay: 1e-3,
        batch_size: 16,
        epochs: 2,
        ..Default::default()
    };
    kernels_follow_burn(&tc, 0.05, 2e-3);
}

#[test]
fn cpu_kernels_adam_follows_burn_adam() {
    for weight_decay in [0.0, 1e-3] {
        let tc = TrainConfig {
            lr: 2e-3,
            weight_decay,
            batch_size: 16,
            epochs: 2,
            optimizer: OptimizerKind::Adam,
            ..Default::default()
        };
        kernels_follow_burn(&tc, 0.01, 1e-3);
    }
}

#[test]
fn a_kept_optimizer_state_continues_where_the_last_round_stopped() {
    let p = Prepared::load(&small_config()).unwrap();
    let data = p.client_data(1);
    let native = ModelSpec {
        cpu_kernels: Some(1),
        ..spec(ModelKind::CNN)
    };
    let init = native.initial_params(4);
    for (optimizer, momentum) in [(OptimizerKind::Adam, 0.0), (OptimizerKind::Sgd, 0.9)] {
        let tc = TrainConfig {
            lr: if optimizer == OptimizerKind::Adam {
                1e-3
            } else {
                0.02
            },
            momentum,
            batch_size: 16,
            epochs: 1,
            optimizer,
            keep_optimizer_state: true,
            ..Default::default()
        };
        let fresh = TrainConfig {
            keep_optimizer_state: false,
            ..tc.clone()
        };
        // Round 1 is the same with or without keeping; round 2 continues the kept state.
        let mut state = OptimizerState::default();
        let rng = |r: u64| stream(5, "t", &[r]);
        let (p1, _) = train_local_with(&native, &init, &data, &tc, &mut rng(1), &mut state);
        let (q1, _) = train_local(&native, &init, &data, &fresh, &mut rng(1));
        assert_eq!(
            p1, q1,
            "{optimizer:?}: the first round starts fresh either way"
        );
        assert!(state.optimizer().is_some(), "{optimizer:?}: kept");
        let (p2, _) = train_local_with(&native, &p1, &data, &tc, &mut rng(2), &mut state);
        let (q2, _) = train_local(&native, &q1, &data, &fresh, &mut rng(2));
        assert_ne!(p2, q2, "{optimizer:?}: the kept state changes round 2");
        if let Some(Optimizer::Adam(a)) = state.optimizer() {
            assert_eq!(
                a.steps(),
                14,
                "7 steps a round (100 samples, batches of 16), twice"
            );
        }
        // Replaying both rounds from a copy of the state after round 1 gives the same bits.
        let mut again = OptimizerState::default();
        train_local_with(&native, &init, &data, &tc, &mut rng(1), &mut again);
        let (r2, _) = train_local_with(&native, &p1, &data, &tc, &mut rng(2), &mut again);
        assert_eq!(r2, p2, "{optimizer:?}: same state, same bits");
    }
}

#[test]
fn benign_clients_keep_their_optimizer_across_rounds_only_on_the_kernels() {
    let cfg = FedConfig {
        train: TrainConfig {
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            keep_optimizer_state: true,
            ..Default::default()
        },
        ..small_config()
    };
    let kept = Experiment::build(&cfg)
        .unwrap()
        .federation
        .run(&mut |_| {})
        .unwrap();
    let fresh_cfg = FedConfig {
        train: TrainConfig {
            keep_optimizer_state: false,
            ..cfg.train.clone()
        },
        ..cfg.clone()
    };
    let fresh = Experiment::build(&fresh_cfg)
        .unwrap()
        .federation
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(
        kept[0].train_loss, fresh[0].train_loss,
        "round 1 is the same"
    );
    assert_ne!(
        kept[1].train_loss, fresh[1].train_loss,
        "round 2 continues the moments"
    );
    let mut p = Prepared::load(&cfg).unwrap();
    p.spec.cpu_kernels = None;
    let e = p
        .federation(p.benign_participants(), aggregator("fedavg").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("keep_optimizer_state needs the CPU kernels"),
        "{e}"
    );
}

#[test]
fn seeded_init_is_reproducible_and_bounded() {
    let s = spec(ModelKind::CNN);
    let a = s.initial_params(1);
    assert_eq!(a, s.initial_params(1));
    assert_ne!(a, s.initial_params(2));
    // conv1 weights: fan_in 25 -> bound 0.2; fc1 weights: fan_in 320.
    assert!(a[..250].iter().all(|x| x.abs() <= 0.2));
    assert!(a[..250].iter().any(|x| x.abs() > 0.15));
    let m = Classifier::new(ModelKind::CNN, &DIMS, &s.device);
    assert_eq!(seeded_init(&m.shapes(), 1), a);
}

#[test]
fn without_shuffling_every_epoch_steps_through_the_same_batches() {
    // shuffle = false: the stream is not read, and an epoch is the data's consecutive batches
    // in their stored order: training by hand over them gives the same bits.
    let p = Prepared::load(&small_config()).unwrap();
    let data = p.client_data(1);
    let s = ModelSpec {
        cpu_kernels: Some(1),
        ..spec(ModelKind::MLP_BN)
    };
    let init = s.initial_params(3);
    let tc = TrainConfig {
        shuffle: false,
        batch_size: 16,
        ..Default::default()
    };
    let (a, _) = train_local(&s, &init, &data, &tc, &mut stream(1, "t", &[]));
    let (b, _) = train_local(&s, &init, &data, &tc, &mut stream(2, "t", &[]));
    assert_eq!(a, b, "the order does not depend on the stream");
    let shuffled = TrainConfig {
        shuffle: true,
        ..tc.clone()
    };
    let (c, _) = train_local(&s, &init, &data, &shuffled, &mut stream(1, "t", &[]));
    assert_ne!(a, c, "shuffling changes the batches");
    // By hand: SGD over batches [0..16), [16..32), ... of the data as stored.
    let kernels = ModelKind::MLP_BN.kernels(&DIMS).unwrap();
    let mut w = init.clone();
    let mut g = vec![0.0f32; w.len()];
    for start in (0..data.len()).step_by(16) {
        let end = (start + 16).min(data.len());
        let images = &data.images[start * 784..end * 784];
        fl_core::backprop::gradient(kernels, &DIMS, &w, images, &data.labels[start..end], &mut g);
        w.iter_mut()
            .zip(&g)
            .for_each(|(w, g)| *w -= tc.lr as f32 * g);
    }
    assert_eq!(a, w);
}

#[test]
fn local_training_is_deterministic_and_lowers_the_loss() {
    let cfg = small_config();
    let p = Prepared::load(&cfg).unwrap();
    let data = p.client_data(0);
    let s = &p.spec;
    let init = s.initial_params(0);
    let tc = TrainConfig {
        epochs: 10,
        lr: 0.1,
        momentum: 0.5,
        ..Default::default()
    };
    let (a, sa) = train_local(s, &init, &data, &tc, &mut stream(1, "t", &[]));
    let (b, _) = train_local(s, &init, &data, &tc, &mut stream(1, "t", &[]));
    let (c, _) = train_local(s, &init, &data, &tc, &mut stream(2, "t", &[]));
    assert_eq!(a, b, "same stream, same parameters");
    assert_ne!(a, c, "the shuffle depends on the stream");
    assert_eq!(
        sa.steps,
        10 * 4,
        "100 samples, batch 32 -> 4 steps per epoch"
    );
    let before = fl_core::eval::evaluate(s, &init, &data, 10).loss;
    let after = fl_core::eval::evaluate(s, &a, &data, 10).loss;
    assert!(after < before * 0.8, "loss {before} -> {after}");
}

#[test]
fn same_seed_same_run_whatever_the_thread_count() {
    let run = |threads| {
        let mut cfg = small_config();
        cfg.threads = threads;
        let mut e = Experiment::build(&cfg).unwrap();
        let m = e.federation.run(&mut |_| {}).unwrap();
        (
            e.federation.global().to_vec(),
            m.last().unwrap().test.clone(),
        )
    };
    let (a, ea) = run(1);
    let (b, eb) = run(2);
    assert_eq!(a, b);
    assert_eq!(ea, eb);
}

/// A participant that records what the server showed it and sends a fixed update.
struct Spy {
    client: usize,
    observes: bool,
    adversarial: bool,
    seen: Arc<Mutex<Vec<usize>>>,
    delta: f32,
}

impl Participant for Spy {
    fn client(&self) -> usize {
        self.client
    }
    fn num_samples(&self) -> usize {
        1
    }
    fn is_adversarial(&self) -> bool {
        self.adversarial
    }
    fn observes_benign_updates(&self) -> bool {
        self.observes
    }
    fn update(&mut self, ctx: &RoundContext<'_>) -> fl_core::Result<Update> {
        self.seen
            .lock()
            .unwrap()
            .extend(ctx.benign_updates.iter().map(|u| u.client));
        Ok(Update {
            client: self.client,
            delta: vec![self.delta; ctx.global.len()],
            num_samples: 1,
            train_loss: 0.0,
        })
    }
}

type Log = Arc<Mutex<Vec<usize>>>;

fn spies(specs: &[(bool, bool, f32)]) -> (Vec<Box<dyn Participant>>, Vec<Log>) {
    let mut logs = Vec::new();
    let ps = specs
        .iter()
        .enumerate()
        .map(|(k, &(observes, adversarial, delta))| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            logs.push(seen.clone());
            Box::new(Spy {
                client: k,
                observes,
                adversarial,
                seen,
                delta,
            }) as Box<dyn Participant>
        })
        .collect();
    (ps, logs)
}

#[test]
fn observers_see_exactly_the_benign_updates_of_the_round() {
    let cfg = small_config();
    let p = Prepared::load(&cfg).unwrap();
    // client 3 observes; client 2 is a non-observing attacker (not benign).
    let (ps, logs) = spies(&[
        (false, false, 1.0),
        (false, false, 1.0),
        (false, true, 1.0),
        (true, true, 1.0),
    ]);
    let mut fed = p.federation(ps, aggregator("fedavg").unwrap()).unwrap();
    let g0 = fed.global().to_vec();
    let m = fed.run_round().unwrap();
    assert_eq!(*logs[3].lock().unwrap(), vec![0, 1]);
    assert!(
        logs[0].lock().unwrap().is_empty(),
        "non-observers see nothing"
    );
    assert_eq!(m.kept, vec![0, 1, 2, 3]);
    // FedAvg of four updates of +1 moves every parameter by +1.
    assert!(
        fed.global()
            .iter()
            .zip(&g0)
            .all(|(g, o)| (g - o - 1.0).abs() < 1e-6)
    );
}

/// A server rule defined outside the crates, with state across rounds: server momentum
/// (FedAvgM, Hsu et al. 2019), `v = beta v + mean(updates)`, the step is `v`. It records the
/// rounds and global parameters it was shown.
struct ServerMomentum {
    beta: f32,
    velocity: Vec<f32>,
    seen: Arc<Mutex<Vec<(usize, u64, f32)>>>,
}

impl Aggregator for ServerMomentum {
    fn aggregate(
        &mut self,
        round: &ServerRound<'_>,
        updates: &[Update],
    ) -> fl_core::Result<Aggregate> {
        self.seen
            .lock()
            .unwrap()
            .push((round.round, round.seed, round.global[0]));
        self.velocity.resize(round.global.len(), 0.0);
        let n = updates.len() as f32;
        for (i, v) in self.velocity.iter_mut().enumerate() {
            let mean: f32 = updates.iter().map(|u| u.delta[i]).sum::<f32>() / n;
            *v = self.beta * *v + mean;
        }
        let speed = self.velocity.iter().map(|v| v * v).sum::<f32>().sqrt();
        Ok(Aggregate::new(
            self.velocity.clone(),
            updates.iter().map(|u| u.client).collect(),
        )
        .with_metric("velocity_norm", speed as f64))
    }
}

#[test]
fn a_stateful_rule_defined_outside_sees_each_round_and_keeps_its_state() {
    let cfg = small_config();
    let p = Prepared::load(&cfg).unwrap();
    let (ps, _) = spies(&[(false, false, 1.0); 4]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = ServerMomentum {
        beta: 0.5,
        velocity: Vec::new(),
        seen: seen.clone(),
    };
    let mut fed = p.federation(ps, Box::new(rule)).unwrap();
    let g0 = fed.global()[0];
    let dim = fed.global().len() as f64;
    let m = fed.run(&mut |_| {}).unwrap();
    // Every client sends +1: the steps are 1, then 0.5 * 1 + 1 = 1.5.
    assert!((fed.global()[0] - (g0 + 2.5)).abs() < 1e-6);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].0, seen[0].1), (1, cfg.seed));
    assert_eq!(seen[1].0, 2);
    assert_eq!(seen[0].2, g0, "round 1 starts from the initial model");
    assert!(
        (seen[1].2 - (g0 + 1.0)).abs() < 1e-6,
        "round 2 from round 1's"
    );
    // The rule's own figures reach the round's metrics, and metrics.jsonl.
    assert!((m[1].server["velocity_norm"] - 1.5 * dim.sqrt()).abs() < 1e-3 * dim.sqrt());
    let line = serde_json::to_string(&m[1]).unwrap();
    assert!(line.contains("\"server\":{\"velocity_norm\""), "{line}");
}

/// (round, first parameter of the model a client started the round from).
type Starts = Arc<Mutex<Vec<(usize, f32)>>>;

/// A client that records the model it starts each round from and sends +1 everywhere.
struct Recorder {
    client: usize,
    starts: Starts,
}

impl Participant for Recorder {
    fn client(&self) -> usize {
        self.client
    }
    fn num_samples(&self) -> usize {
        1
    }
    fn update(&mut self, ctx: &RoundContext<'_>) -> fl_core::Result<Update> {
        self.starts.lock().unwrap().push((ctx.round, ctx.global[0]));
        Ok(Update {
            client: self.client,
            delta: vec![1.0; ctx.global.len()],
            num_samples: 1,
            train_loss: 0.0,
        })
    }
}

#[test]
fn stale_clients_start_from_the_drawn_round_and_their_steps_land_on_the_current_model() {
    use rand::RngExt;
    let cfg = FedConfig {
        max_delay: 3,
        rounds: 8,
        ..small_config()
    };
    let p = Prepared::load(&cfg).unwrap();
    let logs: Vec<Starts> = (0..4).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let ps = logs
        .iter()
        .enumerate()
        .map(|(k, l)| {
            Box::new(Recorder {
                client: k,
                starts: l.clone(),
            }) as Box<dyn Participant>
        })
        .collect();
    let mut fed = p.federation(ps, aggregator("fedavg").unwrap()).unwrap();
    let g0 = fed.global()[0];
    let m = fed.run(&mut |_| {}).unwrap();
    // Every step is +1 whatever the staleness, so round r starts from g0 + (r - 1), and a
    // client d rounds stale from g0 + (r - 1 - d).
    assert!((fed.global()[0] - (g0 + 8.0)).abs() < 1e-5);
    let mut stale = 0;
    for row in &m {
        let r = row.round;
        assert_eq!(row.delays.len(), 4);
        for (&k, &d) in row.clients.iter().zip(&row.delays) {
            // The draw by hand: uniform in 0..=3 from the client's stream, capped by the
            // rounds run before.
            let mut rng = stream(cfg.seed, "staleness", &[k as u64, r as u64]);
            let want = rng.random_range(0..=3usize).min(r - 1);
            assert_eq!(d, want, "client {k}, round {r}");
            let seen = logs[k].lock().unwrap()[r - 1];
            assert_eq!(seen.0, r);
            assert!(
                (seen.1 - (g0 + (r - 1 - d) as f32)).abs() < 1e-5,
                "{seen:?}, d {d}"
            );
            stale += usize::from(d > 0);
        }
    }
    assert!(
        stale > 8,
        "the draws do reach back: {stale} stale starts of 32"
    );
    // Round 1 has nothing older than the initial model.
    assert!(m[0].delays.iter().all(|&d| d == 0));
    let line = serde_json::to_string(&m[3]).unwrap();
    assert!(line.contains("\"delays\":["), "{line}");
}

#[test]
fn rules_without_figures_leave_metrics_lines_as_they_were() {
    let mut e = Experiment::build(&small_config()).unwrap();
    let m = e.federation.run_round().unwrap();
    assert!(m.server.is_empty() && m.delays.is_empty());
    let line = serde_json::to_string(&m).unwrap();
    assert!(
        !line.contains("server") && !line.contains("delays"),
        "{line}"
    );
}

#[test]
fn a_non_finite_update_stops_the_run() {
    let p = Prepared::load(&small_config()).unwrap();
    let (ps, _) = spies(&[
        (false, false, 0.0),
        (false, false, f32::NAN),
        (false, false, 0.0),
        (false, false, 0.0),
    ]);
    let mut fed = p.federation(ps, aggregator("fedavg").unwrap()).unwrap();
    let e = fed.run_round().unwrap_err();
    assert!(matches!(e, CoreError::Divergent { round: 1, .. }), "{e}");
}

#[test]
fn client_sampling_is_seeded_and_sized() {
    let mut cfg = small_config();
    cfg.fraction = 0.5;
    let e = Experiment::build(&cfg).unwrap();
    let r1 = e.federation.sample_clients(1);
    assert_eq!(r1.len(), 2);
    assert_eq!(r1, e.federation.sample_clients(1));
    let differs = (2..20).any(|r| e.federation.sample_clients(r) != r1);
    assert!(differs, "rounds sample different clients");
}

#[test]
fn unknown_aggregator_and_missing_data_are_clear_errors() {
    let e = aggregator("krumm").err().unwrap().to_string();
    assert!(e.contains("unknown aggregator `krumm`"), "{e}");
    let mut cfg = small_config();
    cfg.data_dir = "/nonexistent".into();
    let e = Prepared::load(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("train-images") && e.contains("xtask download"),
        "{e}"
    );
}

#[test]
fn the_server_holds_samples_no_client_holds_and_the_rule_sees_them() {
    use fl_core::experiment::Prepared;
    let cfg = FedConfig {
        server_samples: 50,
        ..small_config()
    };
    let p = Prepared::load(&cfg).unwrap();
    let server = p.server.as_ref().unwrap();
    assert_eq!(server.len(), 50);
    // None of them is a client's: compare images byte for byte against every client's.
    let held: std::collections::HashSet<&[u8]> = p
        .parts
        .iter()
        .flatten()
        .map(|&i| &p.train.images[i * 784..(i + 1) * 784])
        .collect();
    for k in 0..server.len() {
        assert!(!held.contains(&server.images[k * 784..(k + 1) * 784]));
    }
    // Seeded: the same samples again; another seed, others.
    let again = Prepared::load(&cfg).unwrap();
    assert_eq!(again.server.as_ref().unwrap().images, server.images);
    let other = Prepared::load(&FedConfig {
        seed: 4,
        ..cfg.clone()
    })
    .unwrap();
    assert_ne!(other.server.as_ref().unwrap().images, server.images);
    // The rule of the run gets them every round.
    struct Sees(Arc<Mutex<Vec<usize>>>);
    impl Aggregator for Sees {
        fn aggregate(
            &mut self,
            round: &ServerRound<'_>,
            updates: &[Update],
        ) -> fl_core::Result<Aggregate> {
            self.0
                .lock()
                .unwrap()
                .push(round.server.map_or(0, |s| s.data.len()));
            fl_core::FedAvg.aggregate(round, updates)
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut fed = p
        .federation(p.benign_participants(), Box::new(Sees(seen.clone())))
        .unwrap();
    fed.run_round().unwrap();
    fed.run_round().unwrap();
    assert_eq!(*seen.lock().unwrap(), [50, 50]);
    // Too many asked: refused with the count there is.
    let err = Prepared::load(&FedConfig {
        server_samples: 100_000,
        ..small_config()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("server_samples = 100000"), "{err}");
    // Not written to configs that do not ask for it (so their hashes do not change).
    assert!(
        !serde_json::to_string(&small_config())
            .unwrap()
            .contains("server_samples")
    );
    assert!(
        serde_json::to_string(&cfg)
            .unwrap()
            .contains("\"server_samples\":50")
    );
}
