//! A direct convolution for layers with few input channels, giving the bits of im2col + gemm.
//!
//! The first convolution of the `cnn` has one input channel (three on colour images): as a
//! matrix product it is `w [10, 25] x patches [25, b*576]`, ten rows against a depth of 25,
//! the shape gemm runs worst, and building the patches (25 copies of every image) cost more
//! than the product. Here each output row is computed in place from the image: eight
//! neighbouring outputs in one vector, the taps `(ci, ky, kx)` in order, one fused
//! multiply-add each, starting from zero. That is the order in which gemm accumulates an
//! element of a short product (one register lane, one depth step after another, see
//! [`crate::matmul`]), so the result is the same to the bit, and a test holds it there.
//!
//! The fused multiply-add is `f32::mul_add`, compiled to the FMA instruction in a function
//! built for AVX2 + FMA when the CPU has them (the CPUs the lab's determinism covers) and
//! computed exactly in software otherwise, so no CPU gives other bits.

/// Lanes of one block of outputs: one AVX2 vector.
const LANES: usize = 8;

/// A valid k x k convolution of NCHW `x` (`b` images, `cin` channels of side `h`) by weights
/// `[cout, cin, k, k]`, without bias, into channel-major `dst [cout][b * o * o]`
/// (`o = h - k + 1`), the layout of `w x im2col(x)`.
#[allow(clippy::too_many_arguments)]
pub fn conv(
    x: &[f32],
    b: usize,
    cin: usize,
    h: usize,
    w: &[f32],
    cout: usize,
    k: usize,
    dst: &mut [f32],
) {
    let o = h - k + 1;
    assert_eq!(x.len(), b * cin * h * h, "input of b x cin x h x h");
    assert_eq!(w.len(), cout * cin * k * k, "weights of cout x cin x k x k");
    assert_eq!(dst.len(), cout * b * o * o, "output of cout x b x o x o");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { conv_fma(x, b, cin, h, w, cout, k, dst) };
        return;
    }
    conv_body(x, b, cin, h, w, cout, k, dst);
}

/// [`conv_body`] with AVX2 + FMA vectors: eight outputs of one row per vector, `C` output
/// channels at once (independent accumulators hide the FMA latency, and each loaded input
/// vector serves all of them).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_fma(
    x: &[f32],
    b: usize,
    cin: usize,
    h: usize,
    w: &[f32],
    cout: usize,
    k: usize,
    dst: &mut [f32],
) {
    let wt = tap_major(w, cout, cin * k * k);
    let mut co = 0;
    while co < cout {
        // SAFETY: the CPU features are the caller's; the shapes were asserted by `conv`.
        co += unsafe {
            match cout - co {
                n if n % 10 == 0 => fma_channels::<10>(x, b, cin, h, &wt, cout, co, k, dst),
                n if n >= 8 => fma_channels::<8>(x, b, cin, h, &wt, cout, co, k, dst),
                n if n >= 4 => fma_channels::<4>(x, b, cin, h, &wt, cout, co, k, dst),
                _ => fma_channels::<1>(x, b, cin, h, &wt, cout, co, k, dst),
            }
        };
    }
}

/// The weights tap-major, `[taps][cout]`, so a block of channels reads one run per tap.
fn tap_major(w: &[f32], cout: usize, taps: usize) -> Vec<f32> {
    let mut wt = vec![0.0f32; taps * cout];
    for co in 0..cout {
        for t in 0..taps {
            wt[t * cout + co] = w[co * taps + t];
        }
    }
    wt
}

/// Output channels `co0..co0 + C` of [`conv_fma`], from tap-major weights `wt`; returns `C`.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the slices must have the shapes `conv` asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn fma_channels<const C: usize>(
    x: &[f32],
    b: usize,
    cin: usize,
    h: usize,
    wt: &[f32],
    cout: usize,
    co0: usize,
    k: usize,
    dst: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    let o = h - k + 1;
    let plane = b * o * o;
    assert!(co0 + C <= cout && wt.len() == cin * k * k * cout);
    assert!(x.len() == b * cin * h * h && dst.len() == cout * plane);
    let (xp, wp, dp) = (x.as_ptr(), wt.as_ptr(), dst.as_mut_ptr());
    for img in 0..b {
        for y in 0..o {
            let mut x0 = 0;
            while x0 < o {
                // Lanes past the row's end load and store nothing.
                let lanes = (o - x0).min(LANES);
                let mask = _mm256_cmpgt_epi32(
                    _mm256_set1_epi32(lanes as i32),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                let mut acc = [_mm256_setzero_ps(); C];
                for ci in 0..cin {
                    for ky in 0..k {
                        let line = (img * cin + ci) * h * h + (y + ky) * h + x0;
                        for kx in 0..k {
                            let t = (ci * k + ky) * k + kx;
                            // SAFETY: the block lies inside image `img`'s row y + ky, and the
                            // mask keeps a short block's load to its valid lanes.
                            let v = unsafe {
                                let at = xp.add(line + kx);
                                if lanes == LANES {
                                    _mm256_loadu_ps(at)
                                } else {
                                    _mm256_maskload_ps(at, mask)
                                }
                            };
                            for (c, a) in acc.iter_mut().enumerate() {
                                // SAFETY: tap t's weights of channels co0..co0 + C lie in wt.
                                let wv =
                                    unsafe { _mm256_broadcast_ss(&*wp.add(t * cout + co0 + c)) };
                                *a = _mm256_fmadd_ps(wv, v, *a);
                            }
                        }
                    }
                }
                for (c, a) in acc.iter().enumerate() {
                    // SAFETY: the block's outputs lie in row y of the channel's plane; the
                    // mask keeps a short block's store to its valid lanes.
                    unsafe {
                        let at = dp.add((co0 + c) * plane + (img * o + y) * o + x0);
                        if lanes == LANES {
                            _mm256_storeu_ps(at, *a)
                        } else {
                            _mm256_maskstore_ps(at, mask, *a)
                        }
                    }
                }
                x0 += lanes;
            }
        }
    }
    C
}

/// The same convolution in portable code (`mul_add` is exact wherever it runs), for CPUs
/// without AVX2 + FMA.
#[allow(clippy::too_many_arguments)]
fn conv_body(
    x: &[f32],
    b: usize,
    cin: usize,
    h: usize,
    w: &[f32],
    cout: usize,
    k: usize,
    dst: &mut [f32],
) {
    let o = h - k + 1;
    let plane = b * o * o;
    let taps = cin * k * k;
    for img in 0..b {
        let src = &x[img * cin * h * h..][..cin * h * h];
        for co in 0..cout {
            let wc = &w[co * taps..][..taps];
            for y in 0..o {
                for xo in 0..o {
                    let mut acc = 0.0f32;
                    for ci in 0..cin {
                        for ky in 0..k {
                            let line = &src[(ci * h + y + ky) * h + xo..];
                            for kx in 0..k {
                                acc = wc[(ci * k + ky) * k + kx].mul_add(line[kx], acc);
                            }
                        }
                    }
                    dst[co * plane + (img * o + y) * o + xo] = acc;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::im2col;
    use crate::matmul::matmul;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // A small LCG: values in [-1, 1) with full mantissas.
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn by_gemm(
        x: &[f32],
        b: usize,
        cin: usize,
        h: usize,
        w: &[f32],
        cout: usize,
        k: usize,
    ) -> Vec<f32> {
        let o = h - k + 1;
        let (n, kk) = (b * o * o, cin * k * k);
        let cols = im2col(x, b, cin, h, k);
        let mut c = vec![0.0f32; cout * n];
        matmul(cout, n, kk, w, kk, 1, &cols, n, 1, &mut c);
        c
    }

    #[test]
    fn direct_convolution_gives_the_bits_of_im2col_and_gemm() {
        // MNIST's first layer, a colour image's, an odd side whose rows end in a remainder,
        // and the cnn's second layer.
        for &(b, cin, h, cout, k) in &[
            (32, 1, 28, 10, 5),
            (7, 3, 32, 10, 5),
            (5, 2, 13, 4, 3),
            (9, 10, 12, 20, 5),
        ] {
            let o = h - k + 1;
            let x = values(b * cin * h * h, 1);
            let w = values(cout * cin * k * k, 2);
            let mut d = vec![f32::NAN; cout * b * o * o];
            conv(&x, b, cin, h, &w, cout, k, &mut d);
            let g = by_gemm(&x, b, cin, h, &w, cout, k);
            let same = d
                .iter()
                .zip(&g)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
            assert_eq!(
                same,
                d.len(),
                "shape {:?}: {} of {} equal",
                (b, cin, h, cout, k),
                same,
                d.len()
            );
        }
    }

    #[test]
    fn direct_convolution_matches_a_hand_computed_case() {
        // One 3x3 image, one 2x2 kernel: outputs are sums of four products.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let w = [1.0, 0.0, 0.0, -1.0];
        let mut d = [0.0f32; 4];
        conv(&x, 1, 1, 3, &w, 1, 2, &mut d);
        assert_eq!(d, [1.0 - 5.0, 2.0 - 6.0, 4.0 - 8.0, 5.0 - 9.0]);
    }
}
