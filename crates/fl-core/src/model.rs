//! The shared classifiers. Both have `K + 1` outputs: the extra one is the "fake" class of the
//! GAN reconstruction attack, which benign training never uses.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Image side of both datasets.
pub const SIDE: usize = 28;

/// `cnn`: kernel side of both convolutions.
pub const KERNEL: usize = 5;
/// `cnn`: channels after the first convolution.
pub const CONV1: usize = 10;
/// `cnn`: channels after the second convolution.
pub const CONV2: usize = 20;
/// `cnn`: side of a feature map after a valid KERNEL convolution and 2x2 pooling.
const fn conv_pool_side(side: usize) -> usize {
    let conv = side - KERNEL + 1;
    conv / 2
}
/// `cnn`: side after the first convolution and pooling (28 -> 24 -> 12).
pub const POOLED1: usize = conv_pool_side(SIDE);
/// `cnn`: features entering the first linear layer (20 x 4 x 4 = 320).
pub const FLAT: usize = CONV2 * conv_pool_side(POOLED1).pow(2);
/// `cnn`: width of the hidden linear layer.
pub const HIDDEN: usize = 50;
/// `mlp`: width of both hidden layers.
pub const MLP_HIDDEN: usize = 200;
/// `mlp-wide`: width of both hidden layers.
pub const MLP_WIDE_HIDDEN: usize = 512;

/// Which architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Conv 1->10 k5, MaxPool 2, ReLU, Conv 10->20 k5, MaxPool 2, ReLU, Linear 320->50, ReLU,
    /// Linear 50->K+1.
    #[default]
    Cnn,
    /// 784 -> 200 -> 200 -> K+1 with ReLU (199k parameters).
    Mlp,
    /// 784 -> 512 -> 512 -> K+1 with ReLU (670k parameters): room to memorise a client's
    /// data, as the FedPoisonMIA authors' ResNet20 does.
    MlpWide,
}

impl ModelKind {
    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cnn => "cnn",
            ModelKind::Mlp => "mlp",
            ModelKind::MlpWide => "mlp-wide",
        }
    }

    /// The width of both hidden layers of an MLP (`None` for the CNN).
    pub fn mlp_hidden(self) -> Option<usize> {
        match self {
            ModelKind::Cnn => None,
            ModelKind::Mlp => Some(MLP_HIDDEN),
            ModelKind::MlpWide => Some(MLP_WIDE_HIDDEN),
        }
    }
}

/// The small CNN of the FL literature (as in PyTorch's MNIST example, without dropout).
#[derive(Module, Debug)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
}

impl Cnn {
    fn new(outputs: usize, device: &Device) -> Self {
        Self {
            conv1: Conv2dConfig::new([1, CONV1], [KERNEL, KERNEL]).init(device),
            conv2: Conv2dConfig::new([CONV1, CONV2], [KERNEL, KERNEL]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(FLAT, HIDDEN).init(device),
            fc2: LinearConfig::new(HIDDEN, outputs).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.pool.forward(self.conv1.forward(x)));
        let x = relu(self.pool.forward(self.conv2.forward(x)));
        let [b, ..] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([b, FLAT])));
        self.fc2.forward(x)
    }
}

/// A multi-layer perceptron 784 -> hidden -> hidden -> outputs.
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Mlp {
    fn new(hidden: usize, outputs: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(SIDE * SIDE, hidden).init(device),
            fc2: LinearConfig::new(hidden, hidden).init(device),
            fc3: LinearConfig::new(hidden, outputs).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, ..] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([b, SIDE * SIDE])));
        let x = relu(self.fc2.forward(x));
        self.fc3.forward(x)
    }
}

/// The classifier shared by all participants.
#[allow(clippy::large_enum_variant)] // one per participant and round; boxing buys nothing
#[derive(Module, Debug)]
pub enum Classifier {
    /// See [`ModelKind::Cnn`].
    Cnn(Cnn),
    /// See [`ModelKind::Mlp`] and [`ModelKind::MlpWide`].
    Mlp(Mlp),
}

impl Classifier {
    /// A classifier with `outputs` logits (K + 1), parameters not yet seeded (see
    /// [`crate::params::seeded_init`]).
    pub fn new(kind: ModelKind, outputs: usize, device: &Device) -> Self {
        match kind {
            ModelKind::Cnn => Classifier::Cnn(Cnn::new(outputs, device)),
            ModelKind::Mlp | ModelKind::MlpWide => Classifier::Mlp(Mlp::new(
                kind.mlp_hidden().expect("an MLP"),
                outputs,
                device,
            )),
        }
    }

    /// Logits `[batch, outputs]` of images `[batch, 1, 28, 28]` in [-1, 1].
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Classifier::Cnn(m) => m.forward(images),
            Classifier::Mlp(m) => m.forward(images),
        }
    }
}
