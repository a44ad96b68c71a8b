//! The training step of the shared classifiers with this crate's own CPU kernels.
//!
//! A client's local training is many small steps (batch 32 of 28x28 images). Through burn's
//! autodiff each step pays for graph bookkeeping, allocation and single-threaded small-kernel
//! code that dominates the arithmetic; here a step is the forward pass kept for backward
//! (im2col + `gemm`, max-pool remembering where each maximum came from, ReLU), the gradient
//! of the mean cross-entropy written out layer by layer, and SGD with PyTorch's semantics.
//! Everything runs on the calling thread (clients already run in parallel) in a fixed order,
//! so the same inputs give the same bits. Tests hold the result to burn's autodiff.

use crate::direct;
use crate::inference::{im2col_into, linear, linear_relu, product, scratch, take};
use crate::matmul::matmul;
use crate::model::{CONV1, CONV2, Dims, HIDDEN, KERNEL, Kernels};
use crate::train::{OptimizerKind, TrainConfig};
use serde::{Deserialize, Serialize};

/// The revision of the training step's arithmetic: it changes whenever a change to these
/// kernels (or to [`crate::matmul`]) changes their bits, so that models cached by an earlier
/// revision (the fidelity oracle) are trained afresh rather than reused. Revision 2: the
/// depth of long products blocked by the shapes, not by the machine's cache sizes.
pub const KERNEL_REVISION: u32 = 2;

/// Gradient of the mean cross-entropy of `labels` over the batch `images` (images of
/// `dims.image`) with respect to the flat `params`, by the architecture's `kernels`, written
/// into `grad` (same layout); returns the loss.
pub fn gradient(
    kernels: &Kernels,
    dims: &Dims,
    params: &[f32],
    images: &[f32],
    labels: &[u8],
    grad: &mut [f32],
) -> f32 {
    assert_eq!(params.len(), grad.len());
    (kernels.gradient)(dims, params, images, labels, grad)
}

/// Gradient of the mean cross-entropy of `labels` over the batch `images` with respect to the
/// images themselves, the parameters held fixed (what a generator trained against a frozen
/// classifier needs), by the architecture's `kernels`, written into `dimages` (same layout);
/// returns the loss and the logits `[batch][outputs]`. `None` when the kernels have no input
/// gradient.
pub fn input_gradient(
    kernels: &Kernels,
    dims: &Dims,
    params: &[f32],
    images: &[f32],
    labels: &[u8],
    dimages: &mut [f32],
) -> Option<(f32, Vec<f32>)> {
    assert_eq!(images.len(), dimages.len());
    kernels
        .input_gradient
        .map(|f| f(dims, params, images, labels, dimages))
}

/// Where a backward pass writes: the parameters' gradient (training) and/or the input's
/// (a frozen classifier judging a generator's images).
struct Out<'a> {
    params: Option<&'a mut [f32]>,
    input: Option<&'a mut [f32]>,
}

impl<'a> Out<'a> {
    /// The next `w` and `bias` gradients (`None` when the parameters take none).
    fn layer(&mut self, w: usize, bias: usize) -> Option<(&'a mut [f32], &'a mut [f32])> {
        let g = self.params.as_mut()?;
        let (gw, tail) = std::mem::take(g).split_at_mut(w);
        let (gb, tail) = tail.split_at_mut(bias);
        *g = tail;
        Some((gw, gb))
    }
}

/// `cnn`'s training step (see [`gradient`]).
pub(crate) fn cnn_gradient(
    d: &Dims,
    p: &[f32],
    images: &[f32],
    labels: &[u8],
    g: &mut [f32],
) -> f32 {
    let out = Out {
        params: Some(g),
        input: None,
    };
    cnn_backward(d, p, images, labels, out).0
}

/// `cnn`'s input gradient (see [`input_gradient`]).
pub(crate) fn cnn_input_gradient(
    d: &Dims,
    p: &[f32],
    images: &[f32],
    labels: &[u8],
    dx: &mut [f32],
) -> (f32, Vec<f32>) {
    let out = Out {
        params: None,
        input: Some(dx),
    };
    cnn_backward(d, p, images, labels, out)
}

/// `cnn`'s forward pass kept for backward, the loss, and the backward pass into `out`;
/// returns the loss and the logits.
fn cnn_backward(
    d: &Dims,
    mut p: &[f32],
    images: &[f32],
    labels: &[u8],
    mut out: Out<'_>,
) -> (f32, Vec<f32>) {
    let (cin, outputs, side) = (d.image.channels, d.outputs, d.image.height);
    let (pooled1, flat) = d.cnn().expect("dimensions the cnn kernels support");
    let b = labels.len();
    let k = KERNEL;
    let (w1, b1) = (take(&mut p, CONV1 * cin * k * k), take(&mut p, CONV1));
    let (w2, b2) = (take(&mut p, CONV2 * CONV1 * k * k), take(&mut p, CONV2));
    let (w3, b3) = (take(&mut p, flat * HIDDEN), take(&mut p, HIDDEN));
    let (w4, b4) = (take(&mut p, HIDDEN * outputs), take(&mut p, outputs));
    let g1 = out.layer(CONV1 * cin * k * k, CONV1);
    let g2 = out.layer(CONV2 * CONV1 * k * k, CONV2);
    let g3 = out.layer(flat * HIDDEN, HIDDEN);
    let g4 = out.layer(HIDDEN * outputs, outputs);

    thread_local! {
        static BUFFERS: std::cell::RefCell<[Vec<f32>; 5]> = const {
            std::cell::RefCell::new([const { Vec::new() }; 5])
        };
    }
    // Per thread, reused from step to step: the patches and outputs of both convolutions
    // (an output's buffer then takes its gradient) and the patches' gradient.
    BUFFERS.with_borrow_mut(|[cols1_buf, c1_buf, cols2_buf, c2_buf, dcols_buf]| {
        // Forward, keeping what backward needs.
        let conv1 = Conv::new(b, cin, side, CONV1, k);
        let cols1 = scratch(cols1_buf, conv1.patches());
        im2col_into(images, b, cin, side, k, cols1);
        let c1 = conv1.forward(images, cols1, w1, b1, scratch(c1_buf, conv1.outputs()));
        let (a1, arg1) = pool_relu(c1, b, CONV1, conv1.o);
        let conv2 = Conv::new(b, CONV1, pooled1, CONV2, k);
        let cols2 = scratch(cols2_buf, conv2.patches());
        im2col_into(&a1, b, CONV1, pooled1, k, cols2);
        let c2 = conv2.forward(&a1, cols2, w2, b2, scratch(c2_buf, conv2.outputs()));
        let (a2, arg2) = pool_relu(c2, b, CONV2, conv2.o); // [b, flat] in burn's order
        let a3 = linear_relu(&a2, b, flat, w3, b3, HIDDEN);
        let z4 = linear(&a3, b, HIDDEN, w4, b4, outputs);
        let (loss, dz4) = softmax_cross_entropy(&z4, labels, outputs);

        // Backward.
        let mut dz3 = dense_backward(&a3, b, HIDDEN, outputs, &dz4, w4, g4, true);
        relu_backward(&a3, &mut dz3);
        let mut da2 = dense_backward(&a2, b, flat, HIDDEN, &dz3, w3, g3, true);
        relu_backward(&a2, &mut da2);
        let dc2 = unpool(&da2, &arg2, scratch(c2_buf, conv2.outputs()));
        let mut da1 = conv2.backward(cols2, w2, dc2, g2, Some(dcols_buf));
        relu_backward(&a1, &mut da1);
        let dc1 = unpool(&da1, &arg1, scratch(c1_buf, conv1.outputs()));
        let want_dx = out.input.is_some();
        let dx = conv1.backward(cols1, w1, dc1, g1, want_dx.then_some(dcols_buf));
        if let Some(dst) = out.input {
            dst.copy_from_slice(&dx);
        }
        (loss, z4)
    })
}

/// The training step of an MLP with two hidden layers of `HID` units (see [`gradient`]).
pub(crate) fn mlp_gradient<const HID: usize>(
    d: &Dims,
    p: &[f32],
    images: &[f32],
    labels: &[u8],
    g: &mut [f32],
) -> f32 {
    let out = Out {
        params: Some(g),
        input: None,
    };
    mlp_backward::<HID>(d, p, images, labels, out).0
}

/// The input gradient of an MLP with two hidden layers of `HID` units (see
/// [`input_gradient`]).
pub(crate) fn mlp_input_gradient<const HID: usize>(
    d: &Dims,
    p: &[f32],
    images: &[f32],
    labels: &[u8],
    dx: &mut [f32],
) -> (f32, Vec<f32>) {
    let out = Out {
        params: None,
        input: Some(dx),
    };
    mlp_backward::<HID>(d, p, images, labels, out)
}

/// The MLP's forward pass, loss and backward pass into `out`; returns the loss and logits.
fn mlp_backward<const HID: usize>(
    d: &Dims,
    mut p: &[f32],
    images: &[f32],
    labels: &[u8],
    mut out: Out<'_>,
) -> (f32, Vec<f32>) {
    let (hid, outputs) = (HID, d.outputs);
    let b = labels.len();
    let inp = d.image.pixels();
    let (w1, b1) = (take(&mut p, inp * hid), take(&mut p, hid));
    let (w2, b2) = (take(&mut p, hid * hid), take(&mut p, hid));
    let (w3, b3) = (take(&mut p, hid * outputs), take(&mut p, outputs));
    let g1 = out.layer(inp * hid, hid);
    let g2 = out.layer(hid * hid, hid);
    let g3 = out.layer(hid * outputs, outputs);

    let a1 = linear_relu(images, b, inp, w1, b1, hid);
    let a2 = linear_relu(&a1, b, hid, w2, b2, hid);
    let z3 = linear(&a2, b, hid, w3, b3, outputs);
    let (loss, dz3) = softmax_cross_entropy(&z3, labels, outputs);

    let mut dz2 = dense_backward(&a2, b, hid, outputs, &dz3, w3, g3, true);
    relu_backward(&a2, &mut dz2);
    let mut dz1 = dense_backward(&a1, b, hid, hid, &dz2, w2, g2, true);
    relu_backward(&a1, &mut dz1);
    let dx = dense_backward(images, b, inp, hid, &dz1, w1, g1, out.input.is_some());
    if let Some(dst) = out.input {
        dst.copy_from_slice(&dx);
    }
    (loss, z3)
}

/// The training step of `mlp-bn` (see [`gradient`]): two hidden layers of `HID` units, each a
/// linear map without bias, batch normalisation by the batch's own statistics and ReLU.
pub(crate) fn mlp_bn_gradient<const HID: usize>(
    d: &Dims,
    mut p: &[f32],
    images: &[f32],
    labels: &[u8],
    g: &mut [f32],
) -> f32 {
    use crate::norm::{backward_relu, forward_relu};
    let (hid, outputs) = (HID, d.outputs);
    let b = labels.len();
    let inp = d.image.pixels();
    let w1 = take(&mut p, inp * hid);
    let (gamma1, beta1) = (take(&mut p, hid), take(&mut p, hid));
    let w2 = take(&mut p, hid * hid);
    let (gamma2, beta2) = (take(&mut p, hid), take(&mut p, hid));
    let (w3, b3) = (take(&mut p, hid * outputs), take(&mut p, outputs));
    let mut out = Out {
        params: Some(g),
        input: None,
    };
    let (g1, _) = out.layer(inp * hid, 0).expect("training writes gradients");
    let (gn1, gb1) = out.layer(hid, hid).expect("training writes gradients");
    let (g2, _) = out.layer(hid * hid, 0).expect("training writes gradients");
    let (gn2, gb2) = out.layer(hid, hid).expect("training writes gradients");
    let g3 = out.layer(hid * outputs, outputs);

    let mut a1 = product(images, b, inp, w1, hid);
    let s1 = forward_relu(&mut a1, hid, gamma1, beta1);
    let mut a2 = product(&a1, b, hid, w2, hid);
    let s2 = forward_relu(&mut a2, hid, gamma2, beta2);
    let z3 = linear(&a2, b, hid, w3, b3, outputs);
    let (loss, dz3) = softmax_cross_entropy(&z3, labels, outputs);

    let mut d2 = dense_backward(&a2, b, hid, outputs, &dz3, w3, g3, true);
    backward_relu(&a2, &mut d2, hid, &s2, gamma2, Some((gn2, gb2)));
    matmul(hid, hid, b, &a1, 1, hid, &d2, hid, 1, g2);
    let mut d1 = vec![0.0f32; b * hid];
    matmul(b, hid, hid, &d2, hid, 1, w2, 1, hid, &mut d1);
    backward_relu(&a1, &mut d1, hid, &s1, gamma1, Some((gn1, gb1)));
    matmul(inp, hid, b, images, 1, inp, &d1, hid, 1, g1);
    loss
}

/// Mean cross-entropy of `logits [b][n]` against `labels` and its gradient
/// `(softmax - onehot) / b`.
fn softmax_cross_entropy(logits: &[f32], labels: &[u8], n: usize) -> (f32, Vec<f32>) {
    let b = labels.len();
    let mut d = vec![0.0f32; logits.len()];
    let mut loss = 0.0f64;
    for ((row, drow), &y) in logits
        .chunks_exact(n)
        .zip(d.chunks_exact_mut(n))
        .zip(labels)
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (dv, &v) in drow.iter_mut().zip(row) {
            *dv = (v - max).exp();
            sum += *dv;
        }
        loss += (sum.ln() - (row[y as usize] - max)) as f64;
        for dv in drow.iter_mut() {
            *dv /= sum * b as f32;
        }
        drow[y as usize] -= 1.0 / b as f32;
    }
    ((loss / b as f64) as f32, d)
}

/// Backward of `z = x [b, inp] * w [inp, out] + bias`: writes `gw = x^T dz` and
/// `gb = column sums of dz` into `grads` when given; returns `dx = dz w^T` when `want_dx`
/// (else empty).
#[allow(clippy::too_many_arguments)]
fn dense_backward(
    x: &[f32],
    b: usize,
    inp: usize,
    out: usize,
    dz: &[f32],
    w: &[f32],
    grads: Option<(&mut [f32], &mut [f32])>,
    want_dx: bool,
) -> Vec<f32> {
    if let Some((gw, gb)) = grads {
        matmul(inp, out, b, x, 1, inp, dz, out, 1, gw);
        column_sums(dz, out, gb);
    }
    if !want_dx {
        return Vec::new();
    }
    let mut dx = vec![0.0f32; b * inp];
    matmul(b, inp, out, dz, out, 1, w, 1, out, &mut dx);
    dx
}

/// `dst[j] = sum_i m[i][j]` for a row-major matrix with `n` columns.
fn column_sums(m: &[f32], n: usize, dst: &mut [f32]) {
    dst.fill(0.0);
    for row in m.chunks_exact(n) {
        dst.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
}

/// Zeroes the gradient where the ReLU output `a` was not positive.
fn relu_backward(a: &[f32], d: &mut [f32]) {
    d.iter_mut()
        .zip(a)
        .for_each(|(dv, &av)| *dv = if av > 0.0 { *dv } else { 0.0 });
}

/// A valid convolution of `b` NCHW images: `cin` channels of side `h` to `cout` of side `o`.
struct Conv {
    b: usize,
    cin: usize,
    h: usize,
    cout: usize,
    k: usize,
    o: usize,
}

impl Conv {
    fn new(b: usize, cin: usize, h: usize, cout: usize, k: usize) -> Self {
        Self {
            b,
            cin,
            h,
            cout,
            k,
            o: h - k + 1,
        }
    }

    /// Output positions per channel (all images).
    fn n(&self) -> usize {
        self.b * self.o * self.o
    }

    /// Floats of the patches, `[cin * k * k][n]`.
    fn patches(&self) -> usize {
        self.cin * self.k * self.k * self.n()
    }

    /// Floats of the output, `[cout][n]`.
    fn outputs(&self) -> usize {
        self.cout * self.n()
    }

    /// `w [cout, cin*k*k] x cols + bias` into `c`, channel-major `[cout][b*o*o]`, where `cols`
    /// are the patches of `x`: on AVX-512 CPUs by the direct convolution of `x`, which gives
    /// the product's bits in two thirds of its time (on AVX2 alone it is slower than gemm on
    /// patches that backward needs anyway).
    fn forward<'a>(
        &self,
        x: &[f32],
        cols: &[f32],
        w: &[f32],
        bias: &[f32],
        c: &'a mut [f32],
    ) -> &'a [f32] {
        let (n, kk) = (self.n(), self.cin * self.k * self.k);
        if direct::Path::best() == direct::Path::Avx512 {
            direct::conv(x, self.b, self.cin, self.h, w, self.cout, self.k, c);
        } else {
            matmul(self.cout, n, kk, w, kk, 1, cols, n, 1, c);
        }
        for (row, bb) in c.chunks_exact_mut(n).zip(bias) {
            row.iter_mut().for_each(|v| *v += bb);
        }
        c
    }

    /// From `dc` (channel-major like the output): into `grads` when given `gw = dc cols^T`
    /// and `gb` = row sums of `dc`; when given a buffer for the patches' gradient `w^T dc`,
    /// the NCHW input gradient (its col2im), else nothing.
    fn backward(
        &self,
        cols: &[f32],
        w: &[f32],
        dc: &[f32],
        grads: Option<(&mut [f32], &mut [f32])>,
        dcols: Option<&mut Vec<f32>>,
    ) -> Vec<f32> {
        let (n, kk, k, o, h) = (self.n(), self.cin * self.k * self.k, self.k, self.o, self.h);
        if let Some((gw, gb)) = grads {
            matmul(self.cout, kk, n, dc, n, 1, cols, 1, n, gw);
            for (g, row) in gb.iter_mut().zip(dc.chunks_exact(n)) {
                *g = row.iter().sum();
            }
        }
        let Some(dcols) = dcols else {
            return Vec::new();
        };
        let dcols = scratch(dcols, kk * n);
        matmul(kk, n, self.cout, w, 1, kk, dc, n, 1, dcols);
        let mut dx = vec![0.0f32; self.b * self.cin * h * h];
        for ci in 0..self.cin {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &dcols[((ci * k + ky) * k + kx) * n..][..n];
                    for img in 0..self.b {
                        let dst = &mut dx[(img * self.cin + ci) * h * h..];
                        for y in 0..o {
                            let s = (y + ky) * h + kx;
                            dst[s..s + o]
                                .iter_mut()
                                .zip(&row[(img * o + y) * o..][..o])
                                .for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
        }
        dx
    }
}

/// 2x2 max-pool (stride 2) and ReLU of channel-major `conv [c][b*o*o]`; returns NCHW
/// `[b, c, o/2, o/2]` and, per output, the index in `conv` of its maximum (the first in
/// row-major order on ties).
fn pool_relu(conv: &[f32], b: usize, c: usize, o: usize) -> (Vec<f32>, Vec<u32>) {
    let p = o / 2;
    let n = b * o * o;
    let mut out = vec![0.0f32; b * c * p * p];
    let mut arg = vec![0u32; out.len()];
    for ch in 0..c {
        for img in 0..b {
            let base = ch * n + img * o * o;
            let dst = (img * c + ch) * p * p;
            for py in 0..p {
                let row = base + 2 * py * o;
                let (r0, r1) = (&conv[row..][..o], &conv[row + o..][..o]);
                let (vals, args) = (&mut out[dst + py * p..][..p], &mut arg[dst + py * p..][..p]);
                // Selects rather than branches (which of four is largest is a coin toss for
                // the predictor); the strict comparisons keep the first maximum on ties.
                for (px, (v, a)) in vals.iter_mut().zip(args.iter_mut()).enumerate() {
                    let (x0, x1, x2, x3) = (r0[2 * px], r0[2 * px + 1], r1[2 * px], r1[2 * px + 1]);
                    let (m, i) = if x1 > x0 { (x1, 1) } else { (x0, 0) };
                    let (m, i) = if x2 > m { (x2, o) } else { (m, i) };
                    let (m, i) = if x3 > m { (x3, o + 1) } else { (m, i) };
                    *v = m.max(0.0);
                    *a = (row + 2 * px + i) as u32;
                }
            }
        }
    }
    (out, arg)
}

/// Scatters the pooled gradient `d` back to the positions its maxima came from, in `dc`
/// (cleared first: the other positions get no gradient).
fn unpool<'a>(d: &[f32], arg: &[u32], dc: &'a mut [f32]) -> &'a [f32] {
    dc.fill(0.0);
    for (&v, &i) in d.iter().zip(arg) {
        dc[i as usize] += v;
    }
    dc
}

/// SGD with PyTorch's semantics: `g += weight_decay * p`; with momentum `buf = g` on the first
/// step, then `buf = momentum * buf + g`; `p -= lr * buf` (or `lr * g` without momentum).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sgd {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    buf: Option<Vec<f32>>,
}

impl Sgd {
    /// A fresh optimizer (no momentum buffer yet).
    pub fn new(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        Self {
            lr: lr as f32,
            momentum: momentum as f32,
            weight_decay: weight_decay as f32,
            buf: None,
        }
    }

    /// Applies one step with gradient `grad` (overwritten) to `params`.
    pub fn step(&mut self, params: &mut [f32], grad: &mut [f32]) {
        if self.weight_decay > 0.0 {
            grad.iter_mut()
                .zip(params.iter())
                .for_each(|(g, p)| *g += self.weight_decay * p);
        }
        let dir: &[f32] = if self.momentum > 0.0 {
            match &mut self.buf {
                Some(buf) => {
                    buf.iter_mut()
                        .zip(grad.iter())
                        .for_each(|(m, g)| *m = self.momentum * *m + g);
                    buf
                }
                None => self.buf.insert(grad.to_vec()),
            }
        } else {
            grad
        };
        params
            .iter_mut()
            .zip(dir)
            .for_each(|(p, d)| *p -= self.lr * d);
    }
}

/// Adam with PyTorch's semantics: `g += weight_decay * p`; `m = b1 m + (1 - b1) g`,
/// `v = b2 v + (1 - b2) g^2`; `p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`, `t`
/// counting the steps taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adam {
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    steps: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    /// A fresh optimizer (moments zero, no step taken).
    pub fn new(lr: f64, beta1: f64, beta2: f64, epsilon: f64, weight_decay: f64) -> Self {
        Self {
            lr: lr as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            epsilon: epsilon as f32,
            weight_decay: weight_decay as f32,
            steps: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i32 {
        self.steps
    }

    /// Applies one step with gradient `grad` (overwritten) to `params`.
    pub fn step(&mut self, params: &mut [f32], grad: &mut [f32]) {
        if self.m.is_empty() {
            self.m = vec![0.0; params.len()];
            self.v = vec![0.0; params.len()];
        }
        self.steps += 1;
        let bias1 = 1.0 - self.beta1.powi(self.steps);
        let bias2 = 1.0 - self.beta2.powi(self.steps);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad.iter_mut())
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            if self.weight_decay > 0.0 {
                *g += self.weight_decay * *p;
            }
            *m = self.beta1 * *m + (1.0 - self.beta1) * *g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * *g * *g;
            let update = (*m / bias1) / ((*v / bias2).sqrt() + self.epsilon);
            *p -= self.lr * update;
        }
    }
}

/// The local optimizer of the CPU kernels, as `[train]` chooses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Optimizer {
    /// SGD (with momentum when `train.momentum` > 0).
    Sgd(Sgd),
    /// Adam.
    Adam(Adam),
}

impl Optimizer {
    /// A fresh optimizer for `cfg`.
    pub fn new(cfg: &TrainConfig) -> Self {
        match cfg.optimizer {
            OptimizerKind::Sgd => Self::Sgd(Sgd::new(cfg.lr, cfg.momentum, cfg.weight_decay)),
            OptimizerKind::Adam => Self::Adam(Adam::new(
                cfg.lr,
                cfg.adam.beta1,
                cfg.adam.beta2,
                cfg.adam.epsilon,
                cfg.weight_decay,
            )),
        }
    }

    /// Applies one step with gradient `grad` (overwritten) to `params`.
    pub fn step(&mut self, params: &mut [f32], grad: &mut [f32]) {
        match self {
            Self::Sgd(o) => o.step(params, grad),
            Self::Adam(o) => o.step(params, grad),
        }
    }
}
