//! wgpu smoke test (build feature `wgpu`): a few training steps on the GPU path, or on Mesa's
//! software Vulkan driver where there is no GPU, lower the loss and land where flex lands.
//!
//! Run with `cargo test --workspace --features fl-core/wgpu --test wgpu`. Without a Vulkan (or
//! Metal/DX12) adapter the test fails: the feature was asked for, so a missing adapter is an error.
#![cfg(feature = "wgpu")]

use fl_core::eval::{cross_entropy, logits};
use fl_core::experiment::Prepared;
use fl_core::model::ModelKind;
use fl_core::train::{ModelSpec, TrainConfig, train_local};
use fl_core::{DeviceKind, FedConfig};
use fl_data::partition::PartitionConfig;
use fl_data::rng::stream;
use std::path::Path;

fn spec(device: DeviceKind) -> ModelSpec {
    ModelSpec {
        kind: ModelKind::CNN,
        shape: fl_data::ImageShape::grey(28, 28),
        outputs: 11,
        device: device.device().expect("the build has the device"),
        cpu_kernels: None,
    }
}

/// Mean cross-entropy of `params` on `data`, computed on `spec`'s device.
fn mean_loss(spec: &ModelSpec, params: &[f32], data: &fl_core::data::LocalData) -> f64 {
    let z = logits(spec, params, data);
    let k = spec.outputs;
    let total: f64 = (0..data.len())
        .map(|i| cross_entropy(&z[i * k..(i + 1) * k], data.labels[i] as usize))
        .sum();
    total / data.len() as f64
}

#[test]
fn wgpu_training_lowers_the_loss_and_matches_flex() {
    let config = FedConfig {
        name: "wgpu-smoke".into(),
        data_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
        clients: 2,
        rounds: 1,
        test_samples: Some(100),
        partition: PartitionConfig {
            samples_per_client: Some(128),
            ..Default::default()
        },
        seed: 5,
        ..Default::default()
    };
    let data = Prepared::load(&config).unwrap().client_data(0);
    let tc = TrainConfig {
        lr: 0.1,
        batch_size: 32,
        epochs: 4,
        ..Default::default()
    };
    let (gpu, cpu) = (spec(DeviceKind::Wgpu), spec(DeviceKind::Flex));
    let init = cpu.initial_params(7);

    let (after_gpu, stats_gpu) = train_local(&gpu, &init, &data, &tc, &mut stream(1, "t", &[]));
    let (after_cpu, stats_cpu) = train_local(&cpu, &init, &data, &tc, &mut stream(1, "t", &[]));
    assert_eq!(stats_gpu.steps, 16, "4 epochs of 4 batches");

    let (before, after) = (
        mean_loss(&gpu, &init, &data),
        mean_loss(&gpu, &after_gpu, &data),
    );
    println!(
        "wgpu: loss {before:.4} -> {after:.4}; mean training loss {:.5} (flex {:.5})",
        stats_gpu.loss, stats_cpu.loss
    );
    assert!(after < before - 0.1, "the loss falls: {before} -> {after}");

    // Same data, same shuffles, same steps: the two devices differ only in rounding.
    assert!(
        (stats_gpu.loss - stats_cpu.loss).abs() < 1e-3,
        "training loss {} (wgpu) vs {} (flex)",
        stats_gpu.loss,
        stats_cpu.loss
    );
    let worst = after_gpu
        .iter()
        .zip(&after_cpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("wgpu vs flex: largest parameter difference {worst:.2e}");
    assert!(worst < 1e-3, "parameters differ by {worst}");
    let flex_after = mean_loss(&cpu, &after_cpu, &data);
    assert!(
        (after - flex_after).abs() < 1e-3,
        "evaluated loss {after} (wgpu) vs {flex_after} (flex)"
    );
}
