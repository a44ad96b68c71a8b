//! Flat parameters: a model <-> one `Vec<f32>` in a fixed order (the order in which burn visits
//! the module's float parameters). Aggregators and attacks work on these vectors.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use rand::RngExt;

struct Flatten<'a>(&'a mut Vec<f32>);

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        self.0.extend(data.iter::<f32>());
    }
}

/// The model's parameters as one vector.
pub fn to_flat<M: Module>(model: &M) -> Vec<f32> {
    let mut out = Vec::with_capacity(model.num_params());
    model.visit(&mut Flatten(&mut out));
    out
}

struct Load<'a> {
    values: &'a [f32],
    at: usize,
}

impl ModuleMapper for Load<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.lazy_shape();
        let n = shape.num_elements();
        let slice = &self.values[self.at..self.at + n];
        self.at += n;
        param.map(|t| {
            let device = t.device();
            let require_grad = t.is_require_grad();
            let fresh = Tensor::<D>::from_data(TensorData::new(slice.to_vec(), shape), &device);
            if require_grad {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// Replaces the model's parameters with `values` (as produced by [`to_flat`]).
///
/// # Panics
/// When `values` does not have exactly the model's number of parameters.
pub fn load_flat<M: Module>(model: M, values: &[f32]) -> M {
    assert_eq!(
        values.len(),
        model.num_params(),
        "flat parameter vector has the wrong length"
    );
    let mut loader = Load { values, at: 0 };
    model.map(&mut loader)
}

struct Shapes(Vec<Vec<usize>>);

impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.lazy_shape().to_vec());
    }
}

/// Shapes of the parameters in flat order.
pub fn shapes<M: Module>(model: &M) -> Vec<Vec<usize>> {
    let mut s = Shapes(Vec::new());
    model.visit(&mut s);
    s.0
}

/// Seeded initial parameters with PyTorch's default rule: every weight and bias uniform in
/// +-1/sqrt(fan_in), where fan_in is the inputs of the layer (a bias takes its weight's).
///
/// Burn stores linear weights as `[in, out]` and convolution weights as `[out, in, kh, kw]`.
/// `shapes` are the model's parameter shapes in flat order ([`shapes`]).
pub fn seeded_init(shapes: &[Vec<usize>], seed: u64) -> Vec<f32> {
    let mut rng = fl_data::rng::stream(seed, "model-init", &[]);
    let mut fan_in = 1usize;
    let mut out = Vec::with_capacity(shapes.iter().map(|s| s.iter().product::<usize>()).sum());
    for shape in shapes {
        fan_in = match shape.len() {
            4 => shape[1] * shape[2] * shape[3],
            2 => shape[0],
            _ => fan_in,
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = shape.iter().product();
        out.extend((0..n).map(|_| rng.random_range(-bound..bound)));
    }
    out
}
