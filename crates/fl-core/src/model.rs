//! The classifiers and their registry. An architecture is a burn module (any type
//! implementing [`Network`]) plus one line in [`ARCHITECTURES`]; it may also bring this
//! crate's CPU kernels ([`Kernels`]), which train and evaluate it on the flex device far
//! faster than burn's autodiff. One without kernels trains through burn on the same device
//! (see [`crate::train::Trainer`]). Every classifier has `K + 1` outputs: the extra one is the
//! "fake" class of the GAN reconstruction attack, which benign training never uses. The image
//! shape and the number of classes come from the dataset at run time ([`Dims`]).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
pub use fl_data::ImageShape;
use serde::{Deserialize, Serialize};

/// `cnn`: kernel side of both convolutions.
pub const KERNEL: usize = 5;
/// `cnn`: channels after the first convolution.
pub const CONV1: usize = 10;
/// `cnn`: channels after the second convolution.
pub const CONV2: usize = 20;
/// `cnn`: width of the hidden linear layer.
pub const HIDDEN: usize = 50;
/// `mlp`: width of both hidden layers.
pub const MLP_HIDDEN: usize = 200;
/// `mlp-wide`: width of both hidden layers.
pub const MLP_WIDE_HIDDEN: usize = 512;

/// What a classifier is built for: the shape of its input images and its number of logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dims {
    /// The images' shape (from the dataset).
    pub image: ImageShape,
    /// Number of logits (the dataset's classes + 1).
    pub outputs: usize,
}

impl Dims {
    /// `cnn`: side of a feature map after a valid [`KERNEL`] convolution and 2x2 pooling
    /// (`None` when the map would vanish).
    pub fn conv_pool_side(side: usize) -> Option<usize> {
        side.checked_sub(KERNEL - 1)
            .map(|c| c / 2)
            .filter(|&s| s > 0)
    }

    /// `cnn`: (side after the first convolution and pooling, features entering the first
    /// linear layer): (12, 320) for 28x28 images.
    pub fn cnn(&self) -> Option<(usize, usize)> {
        let side = self.image.side()?;
        let pooled1 = Self::conv_pool_side(side)?;
        let pooled2 = Self::conv_pool_side(pooled1)?;
        Some((pooled1, CONV2 * pooled2 * pooled2))
    }
}

/// A burn module that maps images `[batch, channels, height, width]` in [-1, 1] to logits
/// `[batch, outputs]`: what an architecture is.
pub trait Network: Module + 'static {
    /// The logits of a batch.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
}

/// A [`Network`] behind one object-safe face (every [`Network`] is one), so that a run holds
/// any architecture as a [`Classifier`].
pub trait Net: Send + std::fmt::Debug {
    /// The logits of a batch.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
    /// The parameters as one vector ([`crate::params::to_flat`]).
    fn flat(&self) -> Vec<f32>;
    /// The parameters' shapes in flat order.
    fn shapes(&self) -> Vec<Vec<usize>>;
    /// Number of parameters.
    fn num_params(&self) -> usize;
    /// The same module with these parameters ([`crate::params::load_flat`]).
    fn loaded(self: Box<Self>, values: &[f32]) -> Box<dyn Net>;
    /// The same module with gradients off for its parameters (a frozen discriminator).
    fn frozen(self: Box<Self>) -> Box<dyn Net>;
    /// A copy on the plain device of an autodiff module.
    fn valid(&self) -> Box<dyn Net>;
    /// One optimizer step on `loss` (a scalar of this module's forward pass).
    fn step(self: Box<Self>, optim: &mut ModuleOptimizer, lr: f64, loss: Tensor<1>)
    -> Box<dyn Net>;
}

impl<M: Network> Net for M {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Network::forward(self, images)
    }
    fn flat(&self) -> Vec<f32> {
        crate::params::to_flat(self)
    }
    fn shapes(&self) -> Vec<Vec<usize>> {
        crate::params::shapes(self)
    }
    fn num_params(&self) -> usize {
        Module::num_params(self)
    }
    fn loaded(self: Box<Self>, values: &[f32]) -> Box<dyn Net> {
        Box::new(crate::params::load_flat(*self, values))
    }
    fn frozen(self: Box<Self>) -> Box<dyn Net> {
        Box::new(Module::no_grad(*self))
    }
    fn valid(&self) -> Box<dyn Net> {
        Box::new(Module::valid(self))
    }
    fn step(
        self: Box<Self>,
        optim: &mut ModuleOptimizer,
        lr: f64,
        loss: Tensor<1>,
    ) -> Box<dyn Net> {
        let grads = GradientsParams::from_grads(loss.backward(), &*self);
        Box::new(optim.step(lr, *self, grads))
    }
}

/// A training step on flat parameters: (dimensions, parameters, images, labels, gradient out)
/// -> the batch's mean loss.
pub type GradientFn = fn(&Dims, &[f32], &[f32], &[u8], &mut [f32]) -> f32;

/// The gradient with respect to the images, parameters fixed: (dimensions, parameters, images,
/// labels, image gradient out) -> the batch's mean loss and its logits.
pub type InputGradientFn = fn(&Dims, &[f32], &[f32], &[u8], &mut [f32]) -> (f32, Vec<f32>);

/// This crate's CPU kernels for one architecture: the forward pass of evaluation
/// ([`crate::inference`]) and the training step ([`crate::backprop`]), on flat parameters.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// Whether the kernels handle these dimensions (otherwise the model trains through burn).
    pub supports: fn(&Dims) -> bool,
    /// Logits of a block of images (`images.len() / pixels` of them) into `dst`.
    pub forward: fn(&Dims, &[f32], &[f32], &mut [f32]),
    /// Gradient of the mean cross-entropy of a batch (params, images, labels -> grad);
    /// returns the loss.
    pub gradient: GradientFn,
    /// Gradient of that loss with respect to the images (a generator trained against the
    /// frozen model needs it), if the kernels have one.
    pub input_gradient: Option<InputGradientFn>,
}

/// One architecture: its name in configs, what it is, how to build it, and its CPU kernels
/// if it has some.
#[derive(Debug)]
pub struct Architecture {
    /// The name in configs (`model = "cnn"`).
    pub name: &'static str,
    /// One line for `--help` and docs.
    pub about: &'static str,
    /// A module for these dimensions on this device, parameters not yet seeded.
    pub build: fn(&Dims, &Device) -> Box<dyn Net>,
    /// The CPU kernels, if any.
    pub kernels: Option<Kernels>,
    /// Seeded initial parameters from the parameters' shapes in flat order:
    /// [`crate::params::seeded_init`] (PyTorch's default rule) for most.
    pub init: fn(&[Vec<usize>], u64) -> Vec<f32>,
    /// Whether it normalises by the statistics of the batch at hand, in evaluation too
    /// ([`BatchStatNorm`]): its logits for an image then depend on the batch, so evaluation
    /// runs fixed blocks ([`crate::inference::BLOCK`]) and a membership judgement runs its
    /// targets as one batch.
    pub batch_statistics: bool,
}

/// Every architecture a config can name: add a line here for a new one.
pub const ARCHITECTURES: &[&Architecture] =
    &[&CNN, &MLP, &MLP_WIDE, &MLP_BN, &FEDAVG_CNN, &RESNET20];

const CNN: Architecture = Architecture {
    name: "cnn",
    about: "Conv 1->10 k5, MaxPool 2, ReLU, Conv 10->20 k5, MaxPool 2, ReLU, Linear 320->50, \
            ReLU, Linear 50->K+1 (PyTorch's MNIST example without dropout; 21.9k parameters)",
    build: |d, device| Box::new(Cnn::new(d, device)),
    kernels: Some(Kernels {
        supports: |d| d.cnn().is_some(),
        forward: crate::inference::cnn_block,
        gradient: crate::backprop::cnn_gradient,
        input_gradient: Some(crate::backprop::cnn_input_gradient),
    }),
    init: crate::params::seeded_init,
    batch_statistics: false,
};

/// An MLP with two hidden layers of `H` units, on the CPU kernels.
const fn mlp<const H: usize>(name: &'static str, about: &'static str) -> Architecture {
    Architecture {
        name,
        about,
        build: |d, device| Box::new(Mlp::new(d, H, device)),
        kernels: Some(Kernels {
            supports: |_| true,
            forward: crate::inference::mlp_block::<H>,
            gradient: crate::backprop::mlp_gradient::<H>,
            input_gradient: Some(crate::backprop::mlp_input_gradient::<H>),
        }),
        init: crate::params::seeded_init,
        batch_statistics: false,
    }
}

const MLP: Architecture = mlp::<MLP_HIDDEN>(
    "mlp",
    "784 -> 200 -> 200 -> K+1 with ReLU (199k parameters)",
);

const MLP_WIDE: Architecture = mlp::<MLP_WIDE_HIDDEN>(
    "mlp-wide",
    "784 -> 512 -> 512 -> K+1 with ReLU (670k parameters): room to memorise a client's data, \
     as the FedPoisonMIA authors' ResNet20 does",
);

const MLP_BN: Architecture = Architecture {
    name: "mlp-bn",
    about: "784 -> 200 -> 200 -> K+1, each hidden layer a linear map without bias, batch \
            normalisation by the batch's own statistics and ReLU (200k parameters): the \
            FedPoisonMIA authors' models normalise so, never leaving PyTorch's training mode, \
            which lets them memorise their clients' data under stale Adam rounds",
    build: |d, device| Box::new(MlpBn::new(d, MLP_BN_HIDDEN, device)),
    kernels: Some(Kernels {
        supports: |_| true,
        forward: crate::inference::mlp_bn_block::<MLP_BN_HIDDEN>,
        gradient: crate::backprop::mlp_bn_gradient::<MLP_BN_HIDDEN>,
        input_gradient: None,
    }),
    init: mlp_bn_init,
    batch_statistics: true,
};

/// `mlp-bn`'s initial parameters: [`crate::params::seeded_init`], then each normalisation's
/// scale 1 and shift 0 (PyTorch's BatchNorm initialisation). In flat order the parameters are
/// fc1's weight, the first normalisation's scale and shift, fc2's weight, the second's scale
/// and shift, fc3's weight and bias.
fn mlp_bn_init(shapes: &[Vec<usize>], seed: u64) -> Vec<f32> {
    let mut p = crate::params::seeded_init(shapes, seed);
    let mut at = 0;
    for (i, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        match i {
            1 | 4 => p[at..at + n].fill(1.0),
            2 | 5 => p[at..at + n].fill(0.0),
            _ => {}
        }
        at += n;
    }
    p
}

const FEDAVG_CNN: Architecture = Architecture {
    name: "fedavg-cnn",
    about: "the CNN of the FedAvg paper (McMahan et al. 2017): Conv 32 k5 same, MaxPool 2, \
            ReLU, Conv 64 k5 same, MaxPool 2, ReLU, Linear 512, ReLU, Linear K+1 (1.66M \
            parameters on 28x28); no CPU kernels: trains through burn",
    build: |d, device| Box::new(FedAvgCnn::new(d, device)),
    kernels: None,
    init: crate::params::seeded_init,
    batch_statistics: false,
};

const RESNET20: Architecture = Architecture {
    name: "resnet20",
    about: "the FedPoisonMIA authors' ResNet20 (3 stages of 3 basic blocks, 16/32/64 channels, \
            each convolution followed by batch normalisation by the batch's own statistics, \
            global average pooling; 0.27M parameters); no CPU kernels: trains through burn",
    build: |d, device| Box::new(ResNet20::new(d, device)),
    kernels: None,
    init: resnet_init,
    batch_statistics: true,
};

/// Which architecture: a handle on one [`Architecture`], written in configs by its name.
#[derive(Clone, Copy)]
pub struct ModelKind(&'static Architecture);

impl ModelKind {
    /// `cnn` (the default).
    pub const CNN: ModelKind = ModelKind(&CNN);
    /// `mlp`.
    pub const MLP: ModelKind = ModelKind(&MLP);
    /// `mlp-wide`.
    pub const MLP_WIDE: ModelKind = ModelKind(&MLP_WIDE);
    /// `mlp-bn`.
    pub const MLP_BN: ModelKind = ModelKind(&MLP_BN);
    /// `fedavg-cnn`.
    pub const FEDAVG_CNN: ModelKind = ModelKind(&FEDAVG_CNN);
    /// `resnet20`.
    pub const RESNET20: ModelKind = ModelKind(&RESNET20);

    /// Any architecture, also one defined outside this crate (not nameable in configs unless
    /// it is in [`ARCHITECTURES`]).
    pub const fn new(arch: &'static Architecture) -> Self {
        Self(arch)
    }

    /// The architecture named `name` in [`ARCHITECTURES`].
    pub fn parse(name: &str) -> Result<Self, String> {
        ARCHITECTURES
            .iter()
            .find(|a| a.name == name)
            .map(|a| ModelKind(a))
            .ok_or_else(|| {
                let known: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
                format!("unknown model `{name}` (known: {})", known.join(", "))
            })
    }

    /// The name in configs.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The architecture.
    pub fn architecture(self) -> &'static Architecture {
        self.0
    }

    /// The CPU kernels when the architecture has some that handle `dims`.
    pub fn kernels(self, dims: &Dims) -> Option<&'static Kernels> {
        self.0.kernels.as_ref().filter(|k| (k.supports)(dims))
    }
}

impl Default for ModelKind {
    fn default() -> Self {
        Self::CNN
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ModelKind {}

impl std::hash::Hash for ModelKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state)
    }
}

impl std::fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelKind({})", self.0.name)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ModelKind::parse(&name).map_err(serde::de::Error::custom)
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
    /// # Panics
    /// When the images are too small for two convolutions and poolings (see [`Dims::cnn`]).
    fn new(d: &Dims, device: &Device) -> Self {
        let (_, flat) = d.cnn().expect("square images of side 16 or more for `cnn`");
        Self {
            conv1: Conv2dConfig::new([d.image.channels, CONV1], [KERNEL, KERNEL]).init(device),
            conv2: Conv2dConfig::new([CONV1, CONV2], [KERNEL, KERNEL]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(flat, HIDDEN).init(device),
            fc2: LinearConfig::new(HIDDEN, d.outputs).init(device),
        }
    }
}

impl Network for Cnn {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.pool.forward(self.conv1.forward(x)));
        let x = relu(self.pool.forward(self.conv2.forward(x)));
        let [b, c, h, w] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([b, c * h * w])));
        self.fc2.forward(x)
    }
}

/// A multi-layer perceptron pixels -> hidden -> hidden -> outputs.
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Mlp {
    fn new(d: &Dims, hidden: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(d.image.pixels(), hidden).init(device),
            fc2: LinearConfig::new(hidden, hidden).init(device),
            fc3: LinearConfig::new(hidden, d.outputs).init(device),
        }
    }
}

impl Network for Mlp {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([b, c * h * w])));
        let x = relu(self.fc2.forward(x));
        self.fc3.forward(x)
    }
}

/// `mlp-bn`: width of both hidden layers.
pub const MLP_BN_HIDDEN: usize = 200;

/// Batch normalisation that always normalises by the statistics of the batch at hand (each
/// feature's mean and biased variance over the batch, or over the batch and the plane for
/// images), in training and in evaluation alike, as PyTorch's BatchNorm does in training
/// mode; it keeps no running statistics, so the whole layer travels in the flat vectors the
/// protocol averages. Epsilon is [`crate::norm::EPSILON`].
#[derive(Module, Debug)]
pub struct BatchStatNorm {
    gamma: Param<Tensor<1>>,
    beta: Param<Tensor<1>>,
}

impl BatchStatNorm {
    /// Scale 1 and shift 0 for `features` features (channels).
    pub fn new(features: usize, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([features], device)),
            beta: Param::from_tensor(Tensor::zeros([features], device)),
        }
    }

    /// Normalises `[batch, features]` per feature.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [_, f] = x.dims();
        let mean = x.clone().mean_dim(0);
        let centered = x - mean;
        let var = centered.clone().powi_scalar(2).mean_dim(0);
        let xhat = centered / var.add_scalar(crate::norm::EPSILON as f64).sqrt();
        xhat * self.gamma.val().reshape([1, f]) + self.beta.val().reshape([1, f])
    }

    /// Normalises `[batch, channels, height, width]` per channel.
    pub fn forward_planes(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3);
        let centered = x - mean;
        let var = centered
            .clone()
            .powi_scalar(2)
            .mean_dim(0)
            .mean_dim(2)
            .mean_dim(3);
        let xhat = centered / var.add_scalar(crate::norm::EPSILON as f64).sqrt();
        xhat * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }
}

/// `mlp-bn`: pixels -> hidden -> hidden -> outputs, each hidden layer a linear map without
/// bias, a [`BatchStatNorm`] and ReLU.
#[derive(Module, Debug)]
pub struct MlpBn {
    fc1: Linear,
    bn1: BatchStatNorm,
    fc2: Linear,
    bn2: BatchStatNorm,
    fc3: Linear,
}

impl MlpBn {
    fn new(d: &Dims, hidden: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(d.image.pixels(), hidden)
                .with_bias(false)
                .init(device),
            bn1: BatchStatNorm::new(hidden, device),
            fc2: LinearConfig::new(hidden, hidden)
                .with_bias(false)
                .init(device),
            bn2: BatchStatNorm::new(hidden, device),
            fc3: LinearConfig::new(hidden, d.outputs).init(device),
        }
    }
}

impl Network for MlpBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let x = relu(
            self.bn1
                .forward(self.fc1.forward(x.reshape([b, c * h * w]))),
        );
        let x = relu(self.bn2.forward(self.fc2.forward(x)));
        self.fc3.forward(x)
    }
}

/// The CNN of the FedAvg paper (McMahan et al. 2017, "CNN" for MNIST): two 5x5 convolutions
/// with 32 and 64 channels, "same" padding, each followed by 2x2 max-pooling and ReLU, then
/// a 512-unit hidden layer. It has no CPU kernels.
#[derive(Module, Debug)]
pub struct FedAvgCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
}

impl FedAvgCnn {
    fn new(d: &Dims, device: &Device) -> Self {
        let same = || PaddingConfig2d::Explicit(2, 2, 2, 2);
        let flat = 64 * (d.image.height / 4) * (d.image.width / 4);
        Self {
            conv1: Conv2dConfig::new([d.image.channels, 32], [KERNEL, KERNEL])
                .with_padding(same())
                .init(device),
            conv2: Conv2dConfig::new([32, 64], [KERNEL, KERNEL])
                .with_padding(same())
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(flat, 512).init(device),
            fc2: LinearConfig::new(512, d.outputs).init(device),
        }
    }
}

impl Network for FedAvgCnn {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.pool.forward(self.conv1.forward(x)));
        let x = relu(self.pool.forward(self.conv2.forward(x)));
        let [b, c, h, w] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([b, c * h * w])));
        self.fc2.forward(x)
    }
}

/// A 3x3 convolution without bias, "same" padding, of `stride`.
fn conv3(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// A strided 1x1 convolution and its normalisation: a residual block's shortcut where the
/// shape changes.
#[derive(Module, Debug)]
pub struct Projection {
    conv: Conv2d,
    bn: BatchStatNorm,
}

/// A basic residual block: conv3 -> norm -> ReLU -> conv3 -> norm, plus the input (through a
/// [`Projection`] where the shape changes), then ReLU; every norm a [`BatchStatNorm`].
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchStatNorm,
    conv2: Conv2d,
    bn2: BatchStatNorm,
    shortcut: Option<Projection>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || cin != cout).then(|| Projection {
            conv: Conv2dConfig::new([cin, cout], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            bn: BatchStatNorm::new(cout, device),
        });
        Self {
            conv1: conv3(cin, cout, stride, device),
            bn1: BatchStatNorm::new(cout, device),
            conv2: conv3(cout, cout, 1, device),
            bn2: BatchStatNorm::new(cout, device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward_planes(self.conv1.forward(x.clone())));
        let out = self.bn2.forward_planes(self.conv2.forward(out));
        let skip = match &self.shortcut {
            Some(p) => p.bn.forward_planes(p.conv.forward(x)),
            None => x,
        };
        relu(out + skip)
    }
}

/// ResNet20 as the FedPoisonMIA authors' `models.py` builds it (conv 16 and its norm, three
/// stages of three basic blocks with 16, 32 and 64 channels, strides 1, 2, 2, 1x1 projection
/// shortcuts where the shape changes, average pooling to 1x1, a linear layer), with their
/// default `bn = True`. Their code never leaves PyTorch's training mode, so its BatchNorm
/// layers always normalise by the batch's statistics: here [`BatchStatNorm`], which keeps no
/// running statistics and so travels whole in the averaged vectors.
#[derive(Module, Debug)]
pub struct ResNet20 {
    conv1: Conv2d,
    bn1: BatchStatNorm,
    blocks: Vec<BasicBlock>,
    pool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl ResNet20 {
    fn new(d: &Dims, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut cin = 16;
        for (cout, stride) in [(16, 1), (32, 2), (64, 2)] {
            for b in 0..3 {
                blocks.push(BasicBlock::new(
                    cin,
                    cout,
                    if b == 0 { stride } else { 1 },
                    device,
                ));
                cin = cout;
            }
        }
        Self {
            conv1: conv3(d.image.channels, 16, 1, device),
            bn1: BatchStatNorm::new(16, device),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(64, d.outputs).init(device),
        }
    }
}

impl Network for ResNet20 {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward_planes(self.conv1.forward(x)));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let [n, c, _, _] = x.dims();
        self.fc.forward(self.pool.forward(x).reshape([n, c]))
    }
}

/// `resnet20`'s initial parameters: [`crate::params::seeded_init`], then each normalisation's
/// scale 1 and shift 0. Its convolutions have no bias, so the two 1-D parameters after each
/// 4-D weight are a normalisation's scale and shift; the last 1-D one is the linear layer's
/// bias.
fn resnet_init(shapes: &[Vec<usize>], seed: u64) -> Vec<f32> {
    let mut p = crate::params::seeded_init(shapes, seed);
    let mut at = 0;
    let mut since_conv = None;
    for shape in shapes {
        let n: usize = shape.iter().product();
        since_conv = match (shape.len(), since_conv) {
            (4, _) => Some(0),
            (1, Some(0)) => {
                p[at..at + n].fill(1.0);
                Some(1)
            }
            (1, Some(1)) => {
                p[at..at + n].fill(0.0);
                None
            }
            _ => None,
        };
        at += n;
    }
    p
}

/// The classifier shared by all participants: any architecture's module, on some device.
#[derive(Debug)]
pub struct Classifier(Box<dyn Net>);

impl Classifier {
    /// A classifier of architecture `kind` for `dims`, parameters not yet seeded (see
    /// [`crate::params::seeded_init`]).
    pub fn new(kind: ModelKind, dims: &Dims, device: &Device) -> Self {
        Self((kind.0.build)(dims, device))
    }

    /// Logits `[batch, outputs]` of images `[batch, channels, height, width]` in [-1, 1].
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.0.forward(images)
    }

    /// The parameters as one vector, in burn's visiting order.
    pub fn to_flat(&self) -> Vec<f32> {
        self.0.flat()
    }

    /// The parameters' shapes in flat order.
    pub fn shapes(&self) -> Vec<Vec<usize>> {
        self.0.shapes()
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.0.num_params()
    }

    /// This classifier with the parameters `values` (as [`Classifier::to_flat`] gives them).
    ///
    /// # Panics
    /// When `values` does not have exactly the model's number of parameters.
    pub fn with_params(self, values: &[f32]) -> Self {
        Self(self.0.loaded(values))
    }

    /// This classifier with gradients off for its parameters.
    pub fn no_grad(self) -> Self {
        Self(self.0.frozen())
    }

    /// A copy on the plain device of a classifier on the autodiff device.
    pub fn valid(&self) -> Self {
        Self(self.0.valid())
    }

    /// One step of `optim` on `loss`, a scalar computed from this classifier's forward pass.
    pub fn step(self, optim: &mut ModuleOptimizer, lr: f64, loss: Tensor<1>) -> Self {
        Self(self.0.step(optim, lr, loss))
    }
}
