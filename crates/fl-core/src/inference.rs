//! Batched CPU inference of the shared classifiers with this crate's own kernels.
//!
//! Evaluation runs the global model over the whole test set every round. Through burn-flex
//! that took longer than all clients' training together in the benchmark workload (its
//! max-pool and single-channel convolution run single-threaded and slowly on small images), so
//! on the flex device the forward pass of evaluation runs here instead: im2col + `gemm`, bias,
//! max-pool and ReLU fused, images split over worker threads. Each image's logits are computed
//! by the same sequence of operations whatever the batch or thread count, and a test checks
//! that they match burn's forward pass.

use crate::data::PIXELS;
use crate::matmul::matmul;
use crate::model::{CONV1, CONV2, FLAT, HIDDEN, KERNEL, ModelKind, POOLED1, SIDE};

/// Images per patch block (bounds the scratch memory: 25 x 64 x 576 floats for conv1).
const BLOCK: usize = 64;

/// Logits `[n][outputs]` of `images` (n x 784 values in [-1, 1]) under flat `params`.
pub fn logits(
    kind: ModelKind,
    outputs: usize,
    params: &[f32],
    images: &[f32],
    threads: usize,
) -> Vec<f32> {
    let n = images.len() / PIXELS;
    let mut out = vec![0.0f32; n * outputs];
    let threads = threads.clamp(1, n.max(1));
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (img, dst) in images
            .chunks(per * PIXELS)
            .zip(out.chunks_mut(per * outputs))
        {
            s.spawn(move || {
                for (b_img, b_dst) in img
                    .chunks(BLOCK * PIXELS)
                    .zip(dst.chunks_mut(BLOCK * outputs))
                {
                    match kind {
                        ModelKind::Cnn => cnn_block(params, outputs, b_img, b_dst),
                        ModelKind::Mlp | ModelKind::MlpWide => mlp_block(
                            params,
                            kind.mlp_hidden().expect("an MLP"),
                            outputs,
                            b_img,
                            b_dst,
                        ),
                    }
                }
            });
        }
    });
    out
}

/// Splits `params` into consecutive slices of the given lengths.
pub(crate) fn take<'a>(params: &mut &'a [f32], len: usize) -> &'a [f32] {
    let (head, tail) = params.split_at(len);
    *params = tail;
    head
}

fn cnn_block(mut p: &[f32], outputs: usize, images: &[f32], dst: &mut [f32]) {
    let b = images.len() / PIXELS;
    let kk = KERNEL * KERNEL;
    let (w1, b1) = (take(&mut p, CONV1 * kk), take(&mut p, CONV1));
    let (w2, b2) = (take(&mut p, CONV2 * CONV1 * kk), take(&mut p, CONV2));
    let (w3, b3) = (take(&mut p, FLAT * HIDDEN), take(&mut p, HIDDEN));
    let (w4, b4) = (take(&mut p, HIDDEN * outputs), take(&mut p, outputs));
    // [b, 10, 12, 12], then [b, 20, 4, 4] = [b, FLAT] in burn's flattening order.
    let h1 = conv_pool_relu(images, b, 1, SIDE, w1, b1, CONV1, KERNEL);
    let h2 = conv_pool_relu(&h1, b, CONV1, POOLED1, w2, b2, CONV2, KERNEL);
    let h3 = linear_relu(&h2, b, FLAT, w3, b3, HIDDEN);
    dst.copy_from_slice(&linear(&h3, b, HIDDEN, w4, b4, outputs));
}

fn mlp_block(mut p: &[f32], hid: usize, outputs: usize, images: &[f32], dst: &mut [f32]) {
    let b = images.len() / PIXELS;
    let (w1, b1) = (take(&mut p, PIXELS * hid), take(&mut p, hid));
    let (w2, b2) = (take(&mut p, hid * hid), take(&mut p, hid));
    let (w3, b3) = (take(&mut p, hid * outputs), take(&mut p, outputs));
    let h = linear_relu(images, b, PIXELS, w1, b1, hid);
    let h = linear_relu(&h, b, hid, w2, b2, hid);
    dst.copy_from_slice(&linear(&h, b, hid, w3, b3, outputs));
}

/// `x [b, inp] * w [inp, out] + bias` (burn stores linear weights as `[in, out]`).
pub(crate) fn linear(
    x: &[f32],
    b: usize,
    inp: usize,
    w: &[f32],
    bias: &[f32],
    out: usize,
) -> Vec<f32> {
    let mut y = vec![0.0f32; b * out];
    matmul(b, out, inp, x, inp, 1, w, out, 1, &mut y);
    for row in y.chunks_exact_mut(out) {
        row.iter_mut().zip(bias).for_each(|(v, bb)| *v += bb);
    }
    y
}

/// [`linear`] followed by ReLU.
pub(crate) fn linear_relu(
    x: &[f32],
    b: usize,
    inp: usize,
    w: &[f32],
    bias: &[f32],
    out: usize,
) -> Vec<f32> {
    let mut y = linear(x, b, inp, w, bias, out);
    y.iter_mut().for_each(|v| *v = v.max(0.0));
    y
}

/// Valid k x k convolution (weights `[cout, cin, k, k]`) of NCHW input, then 2x2 max-pool
/// (stride 2), bias and ReLU; returns NCHW `[b, cout, (h-k+1)/2, (h-k+1)/2]`.
///
/// The patches are laid out transposed (one row per weight index (ci, ky, kx), one column per
/// (image, y, x)), so building them copies whole runs of `o` pixels, and the product
/// `w [cout, kk] x patches [kk, b*o*o]` comes out channel-major, so pooling reads rows.
#[allow(clippy::too_many_arguments)]
fn conv_pool_relu(
    x: &[f32],
    b: usize,
    cin: usize,
    h: usize,
    w: &[f32],
    bias: &[f32],
    cout: usize,
    k: usize,
) -> Vec<f32> {
    let o = h - k + 1;
    let kk = cin * k * k;
    let cols_n = b * o * o;
    let cols = im2col(x, b, cin, h, k);
    // conv[co][img*o*o + y*o + x] = sum_j w[co][j] * cols[j][...]
    let mut conv = vec![0.0f32; cout * cols_n];
    matmul(cout, cols_n, kk, w, kk, 1, &cols, cols_n, 1, &mut conv);
    let p = o / 2;
    let mut out = vec![0.0f32; b * cout * p * p];
    for co in 0..cout {
        let plane = &conv[co * cols_n..(co + 1) * cols_n];
        for img in 0..b {
            let src = &plane[img * o * o..(img + 1) * o * o];
            let dst = &mut out[(img * cout + co) * p * p..][..p * p];
            for py in 0..p {
                let (r0, r1) = (&src[2 * py * o..][..o], &src[(2 * py + 1) * o..][..o]);
                for px in 0..p {
                    let m = r0[2 * px]
                        .max(r0[2 * px + 1])
                        .max(r1[2 * px])
                        .max(r1[2 * px + 1]);
                    dst[py * p + px] = (m + bias[co]).max(0.0);
                }
            }
        }
    }
    out
}

/// The patches of a valid k x k convolution of NCHW `x` (`b` images, `cin` channels, side
/// `h`), transposed: one row per weight index (ci, ky, kx), one column per (image, y, x) with
/// output side `o = h - k + 1`; `[cin * k * k][b * o * o]`.
pub(crate) fn im2col(x: &[f32], b: usize, cin: usize, h: usize, k: usize) -> Vec<f32> {
    let o = h - k + 1;
    let cols_n = b * o * o;
    let mut cols = vec![0.0f32; cin * k * k * cols_n];
    for ci in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * cols_n..][..cols_n];
                for img in 0..b {
                    let src = &x[(img * cin + ci) * h * h..];
                    for y in 0..o {
                        let s = (y + ky) * h + kx;
                        row[(img * o + y) * o..][..o].copy_from_slice(&src[s..s + o]);
                    }
                }
            }
        }
    }
    cols
}
