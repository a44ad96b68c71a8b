//! The generator on this project's CPU kernels: its forward pass in training mode (batch
//! statistics), the gradient of its parameters from the gradient of its images, on the flat
//! parameter vector in burn's visit order (so [`crate::Gan::params`] is the same vector on
//! either engine).
//!
//! Through burn's autodiff a generator step costs graph bookkeeping and many small kernels;
//! here it is four matrix products forward and eight backward (all through
//! [`fl_core::matmul`], whose summation order is fixed by the shapes), the scatter and gather
//! of the transposed convolutions, and per-channel loops for batch norm, in a fixed order on
//! the calling thread. Tests hold it to burn's `Generator`.

use crate::generator::{BASE_CHANNELS, BASE_SIDE, MID_CHANNELS};
use fl_core::matmul::matmul;

/// Side of the transposed convolutions' kernels (stride 2, padding 1: the side doubles).
const K: usize = 4;
/// BatchNorm's epsilon (burn's and PyTorch's default).
const EPS: f32 = 1e-5;
/// BatchNorm's running-statistics momentum (burn's and PyTorch's default).
const MOMENTUM: f32 = 0.1;

/// Where each tensor of the generator sits in its flat parameter vector (burn's visit order:
/// the linear layer's weight `[latent, 64*7*7]` and bias, BatchNorm's scale, shift, running
/// mean and running variance, the transposed convolutions' weights `[in, out, 4, 4]` and
/// biases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Dimension of the noise.
    pub latent: usize,
}

/// A span `(offset, length)` in the flat vector.
type Span = (usize, usize);

impl Layout {
    const FC_OUT: usize = BASE_CHANNELS * BASE_SIDE * BASE_SIDE;

    /// The spans, in order: fc weight, fc bias, bn1 (4 tensors), up1 weight, up1 bias, bn2 (4
    /// tensors), up2 weight, up2 bias.
    fn spans(&self) -> [Span; 14] {
        let lens = [
            self.latent * Self::FC_OUT,
            Self::FC_OUT,
            BASE_CHANNELS,
            BASE_CHANNELS,
            BASE_CHANNELS,
            BASE_CHANNELS,
            BASE_CHANNELS * MID_CHANNELS * K * K,
            MID_CHANNELS,
            MID_CHANNELS,
            MID_CHANNELS,
            MID_CHANNELS,
            MID_CHANNELS,
            MID_CHANNELS * K * K,
            1,
        ];
        let mut out = [(0, 0); 14];
        let mut at = 0;
        for (o, len) in out.iter_mut().zip(lens) {
            *o = (at, len);
            at += len;
        }
        out
    }

    /// Length of the flat vector.
    pub fn len(&self) -> usize {
        let (at, len) = self.spans()[13];
        at + len
    }

    /// Whether the vector is empty (never: the generator always has parameters).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A transposed convolution with a 4x4 kernel, stride 2 and padding 1 (the side doubles) on
/// channel-major activations `[channels][batch * side * side]`.
///
/// Output pixel `(oy, ox)` of input pixel `(iy, ix)` and tap `(ky, kx)` is
/// `(2 iy + ky - 1, 2 ix + kx - 1)`: the forward pass forms the patches `w^T x`
/// (`[cout * 16][positions]`, one gemm) and adds each into its place; the backward pass
/// gathers the output gradient into that layout and runs the two gemms of the weight and
/// input gradients.
struct Up {
    b: usize,
    cin: usize,
    cout: usize,
    side: usize,
}

impl Up {
    /// Input positions per channel.
    fn n(&self) -> usize {
        self.b * self.side * self.side
    }

    /// Output positions per channel.
    fn m(&self) -> usize {
        4 * self.n()
    }

    /// Calls `f(patch row of tap (ky, 0), input row offset, output row offset)` for every
    /// output channel, kernel row, image and input row whose output row lies inside the
    /// output, in a fixed order. Taps (ky, 0..4) are that patch row and the three after it.
    fn rows(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (s, o) = (self.side, 2 * self.side);
        for co in 0..self.cout {
            for ky in 0..K {
                let patch = (co * K + ky) * K;
                for img in 0..self.b {
                    for iy in 0..s {
                        let Some(oy) = (2 * iy + ky).checked_sub(1).filter(|&y| y < o) else {
                            continue;
                        };
                        f(
                            patch,
                            (img * s + iy) * s,
                            co * self.m() + (img * o + oy) * o,
                        );
                    }
                }
            }
        }
    }

    /// `out = bias + the patches added into place`; `cols` is scratch.
    fn forward(&self, x: &[f32], w: &[f32], bias: &[f32], cols: &mut Vec<f32>, out: &mut Vec<f32>) {
        let (n, s, rows) = (self.n(), self.side, self.cout * K * K);
        cols.resize(rows * n, 0.0);
        matmul(rows, n, self.cin, w, 1, rows, x, n, 1, cols);
        out.clear();
        for &bb in bias {
            out.extend(std::iter::repeat_n(bb, self.m()));
        }
        self.rows(|patch, i, o| {
            let tap = |kx: usize| &cols[(patch + kx) * n + i..][..s];
            let (t0, t1, t2, t3) = (tap(0), tap(1), tap(2), tap(3));
            let dst = &mut out[o..][..2 * s];
            // Input column ix lands at 2 ix - 1 + kx: taps 1 and 2 always inside, tap 0
            // from ix = 1 on, tap 3 up to ix = s - 2.
            for ix in 0..s {
                dst[2 * ix] += t1[ix];
                dst[2 * ix + 1] += t2[ix];
            }
            for ix in 1..s {
                dst[2 * ix - 1] += t0[ix];
            }
            for ix in 0..s - 1 {
                dst[2 * ix + 2] += t3[ix];
            }
        });
    }

    /// From the output gradient `dout`: the weight and bias gradients into `gw`, `gb`, and
    /// the input gradient into `dx`; `dcols` is scratch.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        x: &[f32],
        w: &[f32],
        dout: &[f32],
        gw: &mut [f32],
        gb: &mut [f32],
        dcols: &mut Vec<f32>,
        dx: &mut Vec<f32>,
    ) {
        let (n, s, rows) = (self.n(), self.side, self.cout * K * K);
        dcols.resize(rows * n, 0.0);
        let o = 2 * s;
        // Every patch entry is written: the output gradient where its tap lands inside the
        // output, zero where it falls outside.
        for co in 0..self.cout {
            for ky in 0..K {
                for kx in 0..K {
                    let row = &mut dcols[((co * K + ky) * K + kx) * n..][..n];
                    for img in 0..self.b {
                        for iy in 0..s {
                            let dst = &mut row[(img * s + iy) * s..][..s];
                            let Some(oy) = (2 * iy + ky).checked_sub(1).filter(|&y| y < o) else {
                                dst.fill(0.0);
                                continue;
                            };
                            let src = &dout[co * self.m() + (img * o + oy) * o..][..o];
                            match kx {
                                0 => {
                                    dst[0] = 0.0;
                                    for ix in 1..s {
                                        dst[ix] = src[2 * ix - 1];
                                    }
                                }
                                1 | 2 => {
                                    for (ix, d) in dst.iter_mut().enumerate() {
                                        *d = src[2 * ix + kx - 1];
                                    }
                                }
                                _ => {
                                    for ix in 0..s - 1 {
                                        dst[ix] = src[2 * ix + 2];
                                    }
                                    dst[s - 1] = 0.0;
                                }
                            }
                        }
                    }
                }
            }
        }
        matmul(self.cin, rows, n, x, n, 1, dcols, 1, n, gw);
        for (g, plane) in gb.iter_mut().zip(dout.chunks_exact(self.m())) {
            *g = sum(plane, |v| v);
        }
        dx.resize(self.cin * n, 0.0);
        matmul(self.cin, n, rows, w, rows, 1, dcols, n, 1, dx);
    }
}

/// `sum of f(a[i], b[i])` in sixteen interleaved f32 partial sums, added in a fixed order
/// (independent chains that vectorise; over a batch's 3-13k values per channel each lane
/// sums a few hundred).
#[inline]
fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    const LANES: usize = 16;
    assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0] + tail
}

/// `sum of f(a[i])`, as [`sum2`].
#[inline]
fn sum(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    sum2(a, a, |x, _| f(x))
}

/// BatchNorm in training mode followed by ReLU, on channel-major `x [c][n]`, with what its
/// backward pass needs.
#[derive(Default)]
struct NormRelu {
    /// The normalised input, `(x - mean) / sqrt(var + eps)`.
    xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per channel.
    inv_std: Vec<f32>,
    /// The batch mean per channel.
    mean: Vec<f32>,
    /// The biased batch variance per channel.
    var: Vec<f32>,
    /// The output, `relu(gamma * xhat + beta)`.
    out: Vec<f32>,
}

impl NormRelu {
    fn forward(&mut self, x: &[f32], gamma: &[f32], beta: &[f32], n: usize) {
        let c = gamma.len();
        for v in [&mut self.mean, &mut self.var, &mut self.inv_std] {
            v.resize(c, 0.0);
        }
        self.xhat.resize(x.len(), 0.0);
        self.out.resize(x.len(), 0.0);
        for ch in 0..c {
            let row = &x[ch * n..][..n];
            let m = sum(row, |v| v) / n as f32;
            let v = sum(row, |v| (v - m) * (v - m)) / n as f32;
            let inv = 1.0 / (v + EPS).sqrt();
            (self.mean[ch], self.var[ch], self.inv_std[ch]) = (m, v, inv);
            let (g, bt) = (gamma[ch], beta[ch]);
            for ((h, o), &v) in self.xhat[ch * n..][..n]
                .iter_mut()
                .zip(&mut self.out[ch * n..][..n])
                .zip(row)
            {
                *h = (v - m) * inv;
                *o = (g * *h + bt).max(0.0);
            }
        }
    }

    /// From the gradient of the output `dout` (overwritten): `ggamma`, `gbeta` and the input
    /// gradient in `dout`'s place.
    fn backward(
        &self,
        gamma: &[f32],
        dout: &mut [f32],
        n: usize,
        ggamma: &mut [f32],
        gbeta: &mut [f32],
    ) {
        for ch in 0..gamma.len() {
            let span = ch * n..(ch + 1) * n;
            let dy = &mut dout[span.clone()];
            // ReLU: no gradient where the output was not positive.
            // (A product by 0 or 1 rather than a branch: half the units are off, at random.)
            for (d, &o) in dy.iter_mut().zip(&self.out[span.clone()]) {
                *d *= f32::from(o > 0.0);
            }
            let xhat = &self.xhat[span];
            let sum_dy = sum(dy, |v| v);
            let sum_dy_xhat = sum2(dy, xhat, |d, h| d * h);
            (gbeta[ch], ggamma[ch]) = (sum_dy, sum_dy_xhat);
            let (mean_dy, mean_dy_xhat) = (sum_dy / n as f32, sum_dy_xhat / n as f32);
            let scale = gamma[ch] * self.inv_std[ch];
            for (d, &h) in dy.iter_mut().zip(xhat) {
                *d = scale * (*d - mean_dy - h * mean_dy_xhat);
            }
        }
    }

    /// Moves the running statistics `[mean; c]`, `[var; c]` towards this batch's.
    fn update_running(&self, running_mean: &mut [f32], running_var: &mut [f32]) {
        for (r, &m) in running_mean.iter_mut().zip(&self.mean) {
            *r = *r * (1.0 - MOMENTUM) + m * MOMENTUM;
        }
        for (r, &v) in running_var.iter_mut().zip(&self.var) {
            *r = *r * (1.0 - MOMENTUM) + v * MOMENTUM;
        }
    }
}

/// A forward pass kept for the backward one, and the buffers both reuse from step to step
/// (a step allocates nothing once they have grown to the batch).
#[derive(Default)]
pub struct Pass {
    b: usize,
    z: Vec<f32>,
    /// The linear layer's output, NCHW, then channel-major (`x1`).
    y: Vec<f32>,
    x1: Vec<f32>,
    norm1: NormRelu,
    x2: Vec<f32>,
    norm2: NormRelu,
    /// The images, NCHW `[batch, 1, 28, 28]`, values in [-1, 1].
    images: Vec<f32>,
    /// Patches (forward) and patch gradients (backward).
    cols: Vec<f32>,
    /// Gradients of the layers' inputs.
    d3: Vec<f32>,
    d2: Vec<f32>,
    d1: Vec<f32>,
}

impl Pass {
    /// The images of the last forward pass, NCHW `[batch, 1, 28, 28]`, values in [-1, 1].
    pub fn images(&self) -> &[f32] {
        &self.images
    }
}

/// The three layers' shapes for a batch of `b`.
fn ups(b: usize) -> (Up, Up) {
    let up1 = Up {
        b,
        cin: BASE_CHANNELS,
        cout: MID_CHANNELS,
        side: BASE_SIDE,
    };
    let up2 = Up {
        b,
        cin: MID_CHANNELS,
        cout: 1,
        side: 2 * BASE_SIDE,
    };
    (up1, up2)
}

/// Images from noise `z [b][latent]` with the generator `params` (flat, [`Layout`]), in
/// training mode: each BatchNorm normalises with the batch's statistics. The pass and its
/// images land in `pass` (whose buffers are reused); the running statistics are not touched
/// here (see [`update_running`]).
pub fn forward(layout: Layout, params: &[f32], z: &[f32], pass: &mut Pass) {
    let latent = layout.latent;
    let b = z.len() / latent;
    assert_eq!(b * latent, z.len(), "noise of whole rows");
    assert_eq!(params.len(), layout.len());
    let sp = layout.spans();
    let p = |i: usize| &params[sp[i].0..][..sp[i].1];
    let (fc_out, plane) = (Layout::FC_OUT, BASE_SIDE * BASE_SIDE);
    let (up1, up2) = ups(b);
    pass.b = b;
    pass.z.clear();
    pass.z.extend_from_slice(z);

    // Linear, then NCHW [b, 64, 7, 7] to channel-major [64][b * 49].
    pass.y.resize(b * fc_out, 0.0);
    matmul(
        b,
        fc_out,
        latent,
        z,
        latent,
        1,
        p(0),
        fc_out,
        1,
        &mut pass.y,
    );
    for row in pass.y.chunks_exact_mut(fc_out) {
        row.iter_mut().zip(p(1)).for_each(|(v, bb)| *v += bb);
    }
    transpose_blocks(&pass.y, b, BASE_CHANNELS, plane, &mut pass.x1);
    pass.norm1.forward(&pass.x1, p(2), p(3), up1.n());
    up1.forward(&pass.norm1.out, p(6), p(7), &mut pass.cols, &mut pass.x2);
    pass.norm2.forward(&pass.x2, p(8), p(9), up2.n());
    up2.forward(
        &pass.norm2.out,
        p(12),
        p(13),
        &mut pass.cols,
        &mut pass.images,
    );
    pass.images.iter_mut().for_each(|v| *v = v.tanh());
}

/// The gradient of the generator's parameters (into `grad`, flat, zero for the running
/// statistics) from the gradient `dimages` of a loss with respect to `pass.images`.
pub fn backward(
    layout: Layout,
    params: &[f32],
    pass: &mut Pass,
    dimages: &[f32],
    grad: &mut [f32],
) {
    assert_eq!(grad.len(), layout.len());
    assert_eq!(dimages.len(), pass.images.len());
    let sp = layout.spans();
    let p = |i: usize| &params[sp[i].0..][..sp[i].1];
    let mut g: Vec<&mut [f32]> = Vec::with_capacity(14);
    let mut rest = grad;
    for &(_, len) in &sp {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        g.push(head);
        rest = tail;
    }
    let [
        gw_fc,
        gb_fc,
        gg1,
        gbeta1,
        rm1,
        rv1,
        gw1,
        gb1,
        gg2,
        gbeta2,
        rm2,
        rv2,
        gw2,
        gb2,
    ] = <[&mut [f32]; 14]>::try_from(g).expect("14 tensors");
    for running in [rm1, rv1, rm2, rv2] {
        running.fill(0.0);
    }
    let (b, latent, fc_out) = (pass.b, layout.latent, Layout::FC_OUT);
    let (up1, up2) = ups(b);
    let Pass {
        z,
        y,
        norm1,
        norm2,
        images,
        cols,
        d3,
        d2,
        d1,
        ..
    } = pass;

    d3.clear();
    d3.extend(
        dimages
            .iter()
            .zip(images.iter())
            .map(|(&d, &y)| d * (1.0 - y * y)),
    );
    up2.backward(&norm2.out, p(12), d3, gw2, gb2, cols, d2);
    norm2.backward(p(8), d2, up2.n(), gg2, gbeta2);
    up1.backward(&norm1.out, p(6), d2, gw1, gb1, cols, d1);
    norm1.backward(p(2), d1, up1.n(), gg1, gbeta1);
    // Channel-major [64][b * 49] back to NCHW [b, 64 * 49] (y is free again).
    transpose_blocks(d1, BASE_CHANNELS, b, BASE_SIDE * BASE_SIDE, y);
    matmul(latent, fc_out, b, z, 1, latent, y, fc_out, 1, gw_fc);
    let mut acc = vec![0.0f64; fc_out];
    for row in y.chunks_exact(fc_out) {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
    }
    gb_fc.iter_mut().zip(&acc).for_each(|(g, &a)| *g = a as f32);
}

/// Moves the BatchNorm running statistics in `params` as burn's training forward pass does
/// (`running = 0.9 running + 0.1 batch`, the biased variance). Nothing reads them: the
/// generator always normalises with its batch's statistics.
pub fn update_running(layout: Layout, params: &mut [f32], pass: &Pass) {
    let sp = layout.spans();
    for (norm, (mean, var)) in [(&pass.norm1, (4, 5)), (&pass.norm2, (10, 11))] {
        let (head, tail) = params.split_at_mut(sp[var].0);
        norm.update_running(
            &mut head[sp[mean].0..][..sp[mean].1],
            &mut tail[..sp[var].1],
        );
    }
}

/// `[outer][inner][plane]` to `[inner][outer][plane]` into `out`: NCHW `[b][c][plane]` to
/// channel-major `[c][b * plane]` with `(outer, inner) = (b, c)`, and back with `(c, b)`.
fn transpose_blocks(x: &[f32], outer: usize, inner: usize, plane: usize, out: &mut Vec<f32>) {
    out.resize(x.len(), 0.0);
    for o in 0..outer {
        for i in 0..inner {
            out[(i * outer + o) * plane..][..plane]
                .copy_from_slice(&x[(o * inner + i) * plane..][..plane]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transposed convolution by its definition, NCHW, for one image.
    fn naive_up(x: &[f32], w: &[f32], bias: &[f32], cin: usize, cout: usize, s: usize) -> Vec<f32> {
        let o = 2 * s;
        let mut out = vec![0.0f32; cout * o * o];
        for co in 0..cout {
            for v in &mut out[co * o * o..(co + 1) * o * o] {
                *v = bias[co];
            }
        }
        for ci in 0..cin {
            for iy in 0..s {
                for ix in 0..s {
                    for co in 0..cout {
                        for ky in 0..K {
                            for kx in 0..K {
                                let (oy, ox) = (2 * iy + ky, 2 * ix + kx);
                                if oy == 0 || ox == 0 || oy > o || ox > o {
                                    continue;
                                }
                                out[(co * o + oy - 1) * o + ox - 1] += x[(ci * s + iy) * s + ix]
                                    * w[((ci * cout + co) * K + ky) * K + kx];
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn transposed_convolution_matches_its_definition() {
        let (cin, cout, s) = (3, 2, 3);
        let x: Vec<f32> = (0..cin * s * s).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..cin * cout * K * K)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let bias = [0.5, -0.25];
        let up = Up {
            b: 1,
            cin,
            cout,
            side: s,
        };
        let mut got = Vec::new();
        up.forward(&x, &w, &bias, &mut Vec::new(), &mut got);
        let want = naive_up(&x, &w, &bias, cin, cout, s);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn transposed_convolution_gradients_match_finite_differences() {
        let (cin, cout, s) = (2, 2, 2);
        let x: Vec<f32> = (0..cin * s * s).map(|i| (i as f32 * 0.7).sin()).collect();
        let w: Vec<f32> = (0..cin * cout * K * K)
            .map(|i| (i as f32 * 0.3).cos())
            .collect();
        let bias = [0.1, 0.2];
        let up = Up {
            b: 1,
            cin,
            cout,
            side: s,
        };
        // Loss = sum(r * out) for a fixed r: its gradient with respect to out is r.
        let r: Vec<f32> = (0..up.m() * cout)
            .map(|i| (i as f32 * 0.13).sin())
            .collect();
        let loss = |x: &[f32], w: &[f32]| -> f64 {
            naive_up(x, w, &bias, cin, cout, s)
                .iter()
                .zip(&r)
                .map(|(a, b)| (a * b) as f64)
                .sum()
        };
        let (mut gw, mut gb) = (vec![0.0; w.len()], vec![0.0; cout]);
        let mut dx = Vec::new();
        up.backward(&x, &w, &r, &mut gw, &mut gb, &mut Vec::new(), &mut dx);
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (loss(&xp, &w) - loss(&xm, &w)) / (2.0 * h as f64);
            assert!(
                (fd - dx[i] as f64).abs() < 1e-3,
                "dx[{i}] {} vs {fd}",
                dx[i]
            );
        }
        for i in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[i] += h;
            wm[i] -= h;
            let fd = (loss(&x, &wp) - loss(&x, &wm)) / (2.0 * h as f64);
            assert!(
                (fd - gw[i] as f64).abs() < 1e-3,
                "gw[{i}] {} vs {fd}",
                gw[i]
            );
        }
        let plane = up.m();
        for (co, g) in gb.iter().enumerate() {
            let want: f32 = r[co * plane..(co + 1) * plane].iter().sum();
            assert!((g - want).abs() < 1e-5);
        }
    }

    #[test]
    fn layouts_round_trip_and_the_layout_counts_every_tensor() {
        let x: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32).collect();
        let (mut cm, mut back) = (Vec::new(), Vec::new());
        transpose_blocks(&x, 2, 3, 4, &mut cm);
        assert_eq!(&cm[..8], &[0., 1., 2., 3., 12., 13., 14., 15.]);
        transpose_blocks(&cm, 3, 2, 4, &mut back);
        assert_eq!(back, x);
        let l = Layout { latent: 10 };
        assert_eq!(
            l.len(),
            10 * 3136 + 3136 + 4 * 64 + 64 * 32 * 16 + 32 + 4 * 32 + 32 * 16 + 1
        );
    }
}
