//! Batched CPU inference of the shared classifiers with this crate's own kernels.
//!
//! Evaluation runs the global model over the whole test set every round. Through burn-flex
//! that took longer than all clients' training together in the benchmark workload (its
//! max-pool and single-channel convolution run single-threaded and slowly on small images), so
//! on the flex device the forward pass of evaluation runs here instead: im2col + `gemm`, bias,
//! max-pool and ReLU fused, images split over worker threads. Each image's logits are computed
//! by the same sequence of operations whatever the batch or thread count, and a test checks
//! that they match burn's forward pass.

use crate::matmul::matmul;
use crate::model::{CONV1, CONV2, Dims, HIDDEN, KERNEL, Kernels};

/// Images per block of the forward pass (bounds the scratch memory: 25 x 64 x 576 floats for
/// conv1). Blocks are consecutive runs of the images whatever the thread count, so a model
/// that normalises by batch statistics (`mlp-bn`) sees the same batches of 64 in every run,
/// the batch size of the FedPoisonMIA authors' evaluation.
pub const BLOCK: usize = 64;

/// Logits `[n][outputs]` of `images` (n images of `dims.image`, values in [-1, 1]) under flat
/// `params`, by the architecture's `kernels`.
pub fn logits(
    kernels: &Kernels,
    dims: &Dims,
    params: &[f32],
    images: &[f32],
    threads: usize,
) -> Vec<f32> {
    let (px, outputs) = (dims.image.pixels(), dims.outputs);
    let n = images.len() / px;
    let mut out = vec![0.0f32; n * outputs];
    let threads = threads.clamp(1, n.max(1));
    // Whole blocks per thread, so that the blocks do not depend on the thread count.
    let per = n.div_ceil(threads).div_ceil(BLOCK).max(1) * BLOCK;
    std::thread::scope(|s| {
        for (img, dst) in images.chunks(per * px).zip(out.chunks_mut(per * outputs)) {
            s.spawn(move || {
                for (b_img, b_dst) in img.chunks(BLOCK * px).zip(dst.chunks_mut(BLOCK * outputs)) {
                    (kernels.forward)(dims, params, b_img, b_dst);
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

/// `cnn`'s forward pass over a block of images (square, `channels` planes each).
pub(crate) fn cnn_block(d: &Dims, mut p: &[f32], images: &[f32], dst: &mut [f32]) {
    let (cin, outputs) = (d.image.channels, d.outputs);
    let side = d.image.height;
    let (pooled1, flat) = d.cnn().expect("dimensions the cnn kernels support");
    let b = images.len() / d.image.pixels();
    let kk = KERNEL * KERNEL;
    let (w1, b1) = (take(&mut p, CONV1 * cin * kk), take(&mut p, CONV1));
    let (w2, b2) = (take(&mut p, CONV2 * CONV1 * kk), take(&mut p, CONV2));
    let (w3, b3) = (take(&mut p, flat * HIDDEN), take(&mut p, HIDDEN));
    let (w4, b4) = (take(&mut p, HIDDEN * outputs), take(&mut p, outputs));
    // On 28x28: [b, 10, 12, 12], then [b, 20, 4, 4] = [b, flat] in burn's flattening order.
    let h1 = conv_pool_relu(images, b, cin, side, w1, b1, CONV1, KERNEL);
    let h2 = conv_pool_relu(&h1, b, CONV1, pooled1, w2, b2, CONV2, KERNEL);
    let h3 = linear_relu(&h2, b, flat, w3, b3, HIDDEN);
    dst.copy_from_slice(&linear(&h3, b, HIDDEN, w4, b4, outputs));
}

/// The forward pass of an MLP with two hidden layers of `HID` units over a block of images.
pub(crate) fn mlp_block<const HID: usize>(
    d: &Dims,
    mut p: &[f32],
    images: &[f32],
    dst: &mut [f32],
) {
    let (hid, outputs, px) = (HID, d.outputs, d.image.pixels());
    let b = images.len() / px;
    let (w1, b1) = (take(&mut p, px * hid), take(&mut p, hid));
    let (w2, b2) = (take(&mut p, hid * hid), take(&mut p, hid));
    let (w3, b3) = (take(&mut p, hid * outputs), take(&mut p, outputs));
    let h = linear_relu(images, b, px, w1, b1, hid);
    let h = linear_relu(&h, b, hid, w2, b2, hid);
    dst.copy_from_slice(&linear(&h, b, hid, w3, b3, outputs));
}

/// The forward pass of `mlp-bn` (two hidden layers of `HID` units, each a linear map without
/// bias, batch normalisation by this block's statistics and ReLU) over a block of images: the
/// block is the batch whose statistics normalise it.
pub(crate) fn mlp_bn_block<const HID: usize>(
    d: &Dims,
    mut p: &[f32],
    images: &[f32],
    dst: &mut [f32],
) {
    let (hid, outputs, px) = (HID, d.outputs, d.image.pixels());
    let b = images.len() / px;
    let w1 = take(&mut p, px * hid);
    let (g1, be1) = (take(&mut p, hid), take(&mut p, hid));
    let w2 = take(&mut p, hid * hid);
    let (g2, be2) = (take(&mut p, hid), take(&mut p, hid));
    let (w3, b3) = (take(&mut p, hid * outputs), take(&mut p, outputs));
    let mut h = product(images, b, px, w1, hid);
    crate::norm::forward_relu(&mut h, hid, g1, be1);
    let mut h = product(&h, b, hid, w2, hid);
    crate::norm::forward_relu(&mut h, hid, g2, be2);
    dst.copy_from_slice(&linear(&h, b, hid, w3, b3, outputs));
}

/// `x [b, inp] * w [inp, out]`: a linear layer without bias.
pub(crate) fn product(x: &[f32], b: usize, inp: usize, w: &[f32], out: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; b * out];
    matmul(b, out, inp, x, inp, 1, w, out, 1, &mut y);
    y
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
/// The convolution is [`crate::direct::conv`] (the bits of im2col + gemm without building the
/// patches), channel-major, so pooling reads rows; its output lives in a buffer kept per
/// thread, so a block costs no allocation.
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
    thread_local! {
        static CONV: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let o = h - k + 1;
    let cols_n = b * o * o;
    CONV.with_borrow_mut(|buf| {
        let conv = scratch(buf, cout * cols_n);
        crate::direct::conv(x, b, cin, h, w, cout, k, conv);
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
    })
}

/// The first `len` floats of a buffer kept between calls, grown (zeroed) only when short: for
/// outputs that are written in full before they are read, so no call pays to clear them.
pub(crate) fn scratch(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an output row, 8-24 floats): in
/// fixed blocks of 8 that compile to register moves, not a `memcpy` call per run.
#[inline]
pub(crate) fn copy_run(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().expect("a block of 8");
        let d: &mut [f32; 8] = d.try_into().expect("a block of 8");
        *d = *s;
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// The patches of a valid k x k convolution of NCHW `x` (`b` images, `cin` channels, side
/// `h`), transposed: one row per weight index (ci, ky, kx), one column per (image, y, x) with
/// output side `o = h - k + 1`; `[cin * k * k][b * o * o]`, every element written.
pub(crate) fn im2col_into(x: &[f32], b: usize, cin: usize, h: usize, k: usize, cols: &mut [f32]) {
    let o = h - k + 1;
    let cols_n = b * o * o;
    assert_eq!(cols.len(), cin * k * k * cols_n);
    for ci in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ci * k + ky) * k + kx) * cols_n..][..cols_n];
                for img in 0..b {
                    let src = &x[(img * cin + ci) * h * h..];
                    for y in 0..o {
                        let s = (y + ky) * h + kx;
                        copy_run(&mut row[(img * o + y) * o..][..o], &src[s..s + o]);
                    }
                }
            }
        }
    }
}

/// [`im2col_into`] a new buffer.
#[cfg(test)]
pub(crate) fn im2col(x: &[f32], b: usize, cin: usize, h: usize, k: usize) -> Vec<f32> {
    let o = h - k + 1;
    let mut cols = vec![0.0f32; cin * k * k * b * o * o];
    im2col_into(x, b, cin, h, k, &mut cols);
    cols
}
