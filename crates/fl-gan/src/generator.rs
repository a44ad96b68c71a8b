//! The generator: z in R^latent -> Linear -> 64x7x7 -> BatchNorm -> ReLU -> ConvTranspose
//! 64->32 (k4, s2, p1) -> BatchNorm -> ReLU -> ConvTranspose 32->1 (k4, s2, p1) -> tanh.

use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, tanh};
use burn::tensor::{Device, Tensor};
use fl_core::model::ImageShape;
use fl_core::params::{load_flat, shapes};
use rand::RngExt;

/// Channels of the 7x7 map the linear layer produces.
pub const BASE_CHANNELS: usize = 64;
/// Channels after the first transposed convolution (14x14).
pub const MID_CHANNELS: usize = 32;
/// The images the generator makes: grey 28x28 (two 2x up-samplings of a 7x7 map). The GAN
/// attack refuses data of another shape.
pub const IMAGE: ImageShape = ImageShape::grey(28, 28);
/// Side of the first feature map.
pub const BASE_SIDE: usize = IMAGE.height / 4;
const UP_KERNEL: usize = 4;

/// The generator of the reconstruction attack.
#[derive(Module, Debug)]
pub struct Generator {
    fc: Linear,
    bn1: BatchNorm,
    up1: ConvTranspose2d,
    bn2: BatchNorm,
    up2: ConvTranspose2d,
}

impl Generator {
    /// A generator for `latent`-dimensional noise with seeded parameters (PyTorch's default
    /// rule: weights and biases uniform in +-1/sqrt(fan_in); BatchNorm scale 1, shift 0).
    pub fn seeded(latent: usize, device: &Device, seed: u64) -> Self {
        let up = |c: [usize; 2]| {
            ConvTranspose2dConfig::new(c, [UP_KERNEL, UP_KERNEL])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .init(device)
        };
        let g = Self {
            fc: LinearConfig::new(latent, BASE_CHANNELS * BASE_SIDE * BASE_SIDE).init(device),
            bn1: BatchNormConfig::new(BASE_CHANNELS).init(device),
            up1: up([BASE_CHANNELS, MID_CHANNELS]),
            bn2: BatchNormConfig::new(MID_CHANNELS).init(device),
            up2: up([MID_CHANNELS, 1]),
        };
        let values = seeded_values(&g, seed);
        load_flat(g, &values)
    }

    /// Images `[batch, 1, 28, 28]` in [-1, 1] from noise `[batch, latent]`.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let [b, _] = z.dims();
        let x = self
            .fc
            .forward(z)
            .reshape([b, BASE_CHANNELS, BASE_SIDE, BASE_SIDE]);
        let x = relu(self.bn1.forward(x));
        let x = relu(self.bn2.forward(self.up1.forward(x)));
        tanh(self.up2.forward(x))
    }
}

/// Seeded values for every float the generator visits, in visit order: a weight (2-D linear
/// `[in, out]` or 4-D transposed convolution `[in, out, k, k]`) is followed by its bias and,
/// where a BatchNorm comes next, its scale, shift, running mean and running variance.
fn seeded_values(g: &Generator, seed: u64) -> Vec<f32> {
    let mut rng = fl_data::rng::stream(seed, "generator-init", &[]);
    let mut out = Vec::new();
    let mut bound = 1.0f32;
    let mut after_weight = 0usize;
    for shape in shapes(g) {
        let n: usize = shape.iter().product();
        let fan_in = match shape.len() {
            // PyTorch's fan-in of a transposed convolution weight is its dim 1 times the kernel.
            4 => Some(shape[1] * shape[2] * shape[3]),
            2 => Some(shape[0]),
            _ => None,
        };
        if let Some(f) = fan_in {
            bound = 1.0 / (f as f32).sqrt();
            after_weight = 0;
            out.extend((0..n).map(|_| rng.random_range(-bound..bound)));
            continue;
        }
        let value = match after_weight {
            0 => None,      // bias
            1 => Some(1.0), // BatchNorm scale
            2 => Some(0.0), // BatchNorm shift
            3 => Some(0.0), // running mean
            _ => Some(1.0), // running variance
        };
        after_weight += 1;
        match value {
            None => out.extend((0..n).map(|_| rng.random_range(-bound..bound))),
            Some(v) => out.extend(std::iter::repeat_n(v, n)),
        }
    }
    out
}
