//! A direct convolution for layers with few input channels, giving the bits of im2col + gemm.
//!
//! The first convolution of the `cnn` has one input channel (three on colour images): as a
//! matrix product it is `w [10, 25] x patches [25, b*576]`, ten rows against a depth of 25,
//! the shape gemm runs worst, and building the patches (25 copies of every image) cost more
//! than the product. Here each output is computed in place from the image: neighbouring
//! outputs in one vector, the taps `(ci, ky, kx)` in order, one fused multiply-add each,
//! starting from zero. That is the order in which gemm accumulates an element of a short
//! product (one register lane, one depth step after another, see [`crate::matmul`]), so the
//! result is the same to the bit, and a test holds every path there.
//!
//! Three paths ([`Path`]), the fastest the CPU has taken: AVX-512F (sixteen consecutive
//! outputs of an image's plane a vector, gathered from the rows they lie on by masked loads),
//! AVX2 + FMA (eight outputs of one row a vector), and portable `f32::mul_add` (exact in
//! software where there is no FMA instruction). Ten output channels go at once, so each
//! loaded input vector serves ten independent accumulators. The vector width only decides
//! how many outputs advance together, never the order of an output's sum, so every CPU gets
//! the same bits.

/// Lanes of one AVX2 vector.
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
    let s = Shape { b, cin, h, cout, k };
    let o = s.o();
    assert_eq!(x.len(), b * cin * h * h, "input of b x cin x h x h");
    assert_eq!(w.len(), cout * s.taps(), "weights of cout x cin x k x k");
    assert_eq!(dst.len(), cout * b * o * o, "output of cout x b x o x o");
    conv_on(Path::best(), s, x, w, dst);
}

/// The shape of a [`conv`]: `b` images of `cin` channels, side `h`, to `cout` channels by
/// k x k kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) b: usize,
    pub(crate) cin: usize,
    pub(crate) h: usize,
    pub(crate) cout: usize,
    pub(crate) k: usize,
}

impl Shape {
    /// Output side.
    fn o(&self) -> usize {
        self.h - self.k + 1
    }

    /// Weights per output channel, `cin * k * k`.
    fn taps(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// Panics unless the slices of a pass over channels `co0..co0 + c` fit this shape, so the
    /// unchecked reads and writes of the vector paths stay inside them.
    #[cfg(target_arch = "x86_64")]
    fn check(&self, x: &[f32], wt: &[f32], dst: &[f32], co0: usize, c: usize) {
        let (o, h) = (self.o(), self.h);
        assert!(co0 + c <= self.cout && wt.len() == self.taps() * self.cout);
        assert!(x.len() == self.b * self.cin * h * h && dst.len() == self.cout * self.b * o * o);
    }
}

/// Which code computes [`conv`]: every path gives the same bits (a test runs each the CPU
/// has), so the choice is speed alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Sixteen outputs a vector (pieces of one or more rows), AVX-512F.
    Avx512,
    /// Eight outputs of one row a vector, AVX2 + FMA.
    Avx2,
    /// Scalar `mul_add`, any CPU.
    Portable,
}

impl Path {
    /// The fastest path this CPU runs.
    pub fn best() -> Path {
        static BEST: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Path::available()[0])
    }

    /// The paths this CPU runs, fastest first.
    pub(crate) fn available() -> Vec<Path> {
        let mut paths = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                paths.push(Path::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                paths.push(Path::Avx2);
            }
        }
        paths.push(Path::Portable);
        paths
    }
}

/// [`conv`] by the given path, which the CPU must have (one of [`Path::available`]).
pub(crate) fn conv_on(path: Path, s: Shape, x: &[f32], w: &[f32], dst: &mut [f32]) {
    assert!(
        Path::available().contains(&path),
        "{path:?} is not available on this CPU"
    );
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features (asserted above).
        Path::Avx512 => unsafe { conv_avx512(s, x, w, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features (asserted above).
        Path::Avx2 => unsafe { conv_fma(s, x, w, dst) },
        _ => conv_body(s, x, w, dst),
    }
}

/// Lanes of one AVX-512 vector.
#[cfg(target_arch = "x86_64")]
const WIDE: usize = 16;

/// The blocks of [`conv_avx512`] (`(p, store mask, first piece, end piece)`) and their row
/// pieces (`(lane mask, input offset of lane 0)`).
#[cfg(target_arch = "x86_64")]
type Plan<'a> = (&'a [(usize, u16, usize, usize)], &'a [(u16, usize)]);

/// [`conv_body`] with AVX-512 vectors: sixteen consecutive outputs of an image's plane per
/// vector, gathered from the rows they lie on by masked loads (one per row piece), `C`
/// output channels at once.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn conv_avx512(s: Shape, x: &[f32], w: &[f32], dst: &mut [f32]) {
    let (o, h) = (s.o(), s.h);
    let wt = tap_major(w, s.cout, s.taps());
    // Blocks of 16 plane positions p..p + 16 (the last one shorter): the store mask and the
    // row pieces, each a mask of its lanes and the input offset of lane 0 (row y, column x
    // at lane l: y * h + x - l, never negative as h >= o).
    let plane = o * o;
    let (mut blocks, mut pieces) = (Vec::new(), Vec::new());
    let mut p = 0;
    while p < plane {
        let n = (plane - p).min(WIDE);
        let first = pieces.len();
        let mut lane = 0;
        while lane < n {
            let (y, xo) = ((p + lane) / o, (p + lane) % o);
            let run = (o - xo).min(n - lane);
            pieces.push(((((1u32 << run) - 1) << lane) as u16, y * h + xo - lane));
            lane += run;
        }
        blocks.push((p, ((1u32 << n) - 1) as u16, first, pieces.len()));
        p += n;
    }
    let plan = (&blocks[..], &pieces[..]);
    let mut co = 0;
    while co < s.cout {
        // SAFETY: the CPU features are the caller's; the shapes were asserted by `conv`.
        co += unsafe {
            match s.cout - co {
                n if n % 10 == 0 => wide::<10>(s, x, &wt, co, plan, dst),
                n if n >= 8 => wide::<8>(s, x, &wt, co, plan, dst),
                n if n >= 4 => wide::<4>(s, x, &wt, co, plan, dst),
                _ => wide::<1>(s, x, &wt, co, plan, dst),
            }
        };
    }
}

/// Output channels `co0..co0 + C` of [`conv_avx512`]; returns `C`.
///
/// # Safety
/// The CPU must support AVX-512F, and the slices must have the shapes `conv` asserts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn wide<const C: usize>(
    s: Shape,
    x: &[f32],
    wt: &[f32],
    co0: usize,
    (blocks, pieces): Plan<'_>,
    dst: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    s.check(x, wt, dst, co0, C);
    let Shape { b, cin, h, cout, k } = s;
    let o = s.o();
    let plane = b * o * o;
    let (xp, wp, dp) = (x.as_ptr(), wt.as_ptr(), dst.as_mut_ptr());
    for img in 0..b {
        for &(p, store, first, end) in blocks {
            let mut acc = [_mm512_setzero_ps(); C];
            for ci in 0..cin {
                for ky in 0..k {
                    let rows = (img * cin + ci) * h * h + ky * h;
                    for kx in 0..k {
                        let t = (ci * k + ky) * k + kx;
                        let mut v = _mm512_setzero_ps();
                        for &(mask, at) in &pieces[first..end] {
                            // SAFETY: the masked lanes read row pieces inside image `img`'s
                            // channel ci (the plan's construction); the others read nothing.
                            v = unsafe { _mm512_mask_loadu_ps(v, mask, xp.add(rows + kx + at)) };
                        }
                        for (c, a) in acc.iter_mut().enumerate() {
                            // SAFETY: tap t's weights of channels co0..co0 + C lie in wt.
                            let wv = _mm512_set1_ps(unsafe { *wp.add(t * cout + co0 + c) });
                            *a = _mm512_fmadd_ps(wv, v, *a);
                        }
                    }
                }
            }
            for (c, a) in acc.iter().enumerate() {
                // SAFETY: the block's outputs lie in the channel's plane of image `img`; the
                // mask keeps a short block's store to its valid lanes.
                unsafe {
                    _mm512_mask_storeu_ps(dp.add((co0 + c) * plane + img * o * o + p), store, *a)
                };
            }
        }
    }
    C
}

/// [`conv_body`] with AVX2 + FMA vectors: eight outputs of one row per vector, `C` output
/// channels at once (independent accumulators hide the FMA latency, and each loaded input
/// vector serves all of them).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_fma(s: Shape, x: &[f32], w: &[f32], dst: &mut [f32]) {
    let wt = tap_major(w, s.cout, s.taps());
    let mut co = 0;
    while co < s.cout {
        // SAFETY: the CPU features are the caller's; the shapes were asserted by `conv`.
        co += unsafe {
            match s.cout - co {
                n if n % 10 == 0 => fma_channels::<10>(s, x, &wt, co, dst),
                n if n >= 8 => fma_channels::<8>(s, x, &wt, co, dst),
                n if n >= 4 => fma_channels::<4>(s, x, &wt, co, dst),
                _ => fma_channels::<1>(s, x, &wt, co, dst),
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
unsafe fn fma_channels<const C: usize>(
    s: Shape,
    x: &[f32],
    wt: &[f32],
    co0: usize,
    dst: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    s.check(x, wt, dst, co0, C);
    let Shape { b, cin, h, cout, k } = s;
    let o = s.o();
    let plane = b * o * o;
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
fn conv_body(s: Shape, x: &[f32], w: &[f32], dst: &mut [f32]) {
    let Shape { b, cin, h, cout, k } = s;
    let o = s.o();
    let plane = b * o * o;
    let taps = s.taps();
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
        // By every path this CPU has: MNIST's first layer, a colour image's, an odd side
        // whose rows end in a remainder (and whose 16-lane blocks span three rows), and the
        // cnn's second layer.
        for &(b, cin, h, cout, k) in &[
            (32, 1, 28, 10, 5),
            (7, 3, 32, 10, 5),
            (5, 2, 13, 4, 3),
            (3, 1, 12, 3, 4),
            (9, 10, 12, 20, 5),
        ] {
            let o = h - k + 1;
            let x = values(b * cin * h * h, 1);
            let w = values(cout * cin * k * k, 2);
            let g = by_gemm(&x, b, cin, h, &w, cout, k);
            for path in Path::available() {
                let mut d = vec![f32::NAN; cout * b * o * o];
                conv_on(path, Shape { b, cin, h, cout, k }, &x, &w, &mut d);
                let same = d
                    .iter()
                    .zip(&g)
                    .filter(|(a, b)| a.to_bits() == b.to_bits())
                    .count();
                assert_eq!(
                    same,
                    d.len(),
                    "{path:?}, shape {:?}: {} of {} equal",
                    (b, cin, h, cout, k),
                    same,
                    d.len()
                );
            }
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
