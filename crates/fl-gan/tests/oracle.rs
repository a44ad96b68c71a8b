//! The fidelity oracle: trained once, cached, and right about real images.

use fl_core::DeviceKind;
use fl_core::data::LocalData;
use fl_core::model::ModelKind;
use fl_core::train::{ModelSpec, TrainConfig};
use fl_data::scratch::ScratchDir;
use fl_data::{Dataset, DatasetKind, Split};
use fl_gan::oracle::{Oracle, OracleRecipe};

#[test]
fn trained_once_then_read_from_the_cache_and_right_about_real_images() {
    // A private copy of the MNIST fixtures: the cache is written next to the data.
    let scratch = ScratchDir::new("oracle").unwrap();
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mnist"));
    let dst = scratch.path().join("mnist");
    std::fs::create_dir(&dst).unwrap();
    for f in std::fs::read_dir(src).unwrap() {
        let f = f.unwrap();
        // The IDX files only, never an oracle cached beside them.
        if f.file_name().to_string_lossy().ends_with(".gz") {
            std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
        }
    }
    let recipe = OracleRecipe {
        model: ModelKind::CNN,
        train: TrainConfig {
            lr: 0.05,
            momentum: 0.9,
            batch_size: 64,
            epochs: 1,
            ..Default::default()
        },
    };
    let spec = ModelSpec {
        kind: ModelKind::CNN,
        shape: fl_data::ImageShape::grey(28, 28),
        outputs: 11,
        device: DeviceKind::Flex.device().unwrap(),
        cpu_kernels: Some(2),
    };
    let first = Oracle::load_or_train(scratch.path(), DatasetKind::Mnist, &recipe, &spec).unwrap();
    assert!(!first.cached);
    assert!(first.path.starts_with(&dst) && first.path.exists());
    assert!(
        first.test_accuracy > 0.85,
        "oracle accuracy {}",
        first.test_accuracy
    );
    let second = Oracle::load_or_train(scratch.path(), DatasetKind::Mnist, &recipe, &spec).unwrap();
    assert!(second.cached);
    assert_eq!(second.test_accuracy, first.test_accuracy);

    // Real test images of a class are mostly called that class; a blank image is not a 3.
    let test = Dataset::load(scratch.path(), DatasetKind::Mnist, Split::Test).unwrap();
    let threes: Vec<usize> = (0..test.len()).filter(|&i| test.labels[i] == 3).collect();
    let data = LocalData::from_dataset(&test, &threes);
    assert!(first.fidelity(&data.images, 3) > 0.8);
    assert!(first.fidelity(&data.images, 5) < 0.1);
    assert_eq!(first.classify(&data.images).len(), threes.len());

    // Another recipe is another cache file.
    let other = OracleRecipe {
        train: TrainConfig {
            lr: 0.04,
            ..recipe.train.clone()
        },
        ..recipe.clone()
    };
    let third = Oracle::load_or_train(scratch.path(), DatasetKind::Mnist, &other, &spec).unwrap();
    assert!(!third.cached);
    assert_ne!(third.path, first.path);

    // A damaged cache file is retrained, not trusted.
    std::fs::write(&first.path, b"FLORACL1garbage").unwrap();
    let again = Oracle::load_or_train(scratch.path(), DatasetKind::Mnist, &recipe, &spec).unwrap();
    assert!(!again.cached);
    assert_eq!(again.test_accuracy, first.test_accuracy);
}
