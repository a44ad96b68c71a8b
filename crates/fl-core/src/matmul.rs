//! The one matrix product of the CPU kernels, with a summation order fixed by the shapes alone.
//!
//! `gemm` (0.19, built with its AVX2 + FMA kernels only: the `x86-v4` feature is never turned
//! on in this workspace) accumulates each output element in one register lane, one depth step
//! after another, so the vector width of the CPU does not change a result. What does change
//! it is gemm's blocking of long reductions: when a product reaches its cache-blocked path
//! (more than 64 rows or columns and a depth over 512) it splits the depth into blocks whose
//! size it derives from the L1 cache that the machine reports (`gemm-common`'s `CACHE_INFO`),
//! and each block is summed apart, then added to the output. A machine with a 32 KiB 8-way L1
//! and one with 48 KiB 12-way gave different bits for the same seeded run.
//!
//! [`matmul`] therefore hands gemm at most [`MAX_DEPTH`] depth steps at a time on that path:
//! gemm's block size is never below 512 nor above the depth it is given, so each call is one
//! block and the split is ours: `ceil(k / 512)` blocks of equal size (the last one shorter),
//! exactly the split gemm itself makes where it picks 512, so numbers on those machines stay
//! as they were. The products gemm runs without cache blocking (small outputs, matrix-vector
//! products, short depths) are left whole; their order depends on the shapes only.

/// The longest depth one gemm call is given on gemm's cache-blocked path.
pub const MAX_DEPTH: usize = 512;

/// Whether gemm 0.19 would block the depth of `c[m][n] = a * b` (row-major `c`, strides as in
/// [`matmul`]) by the detected cache sizes: it mirrors gemm's dispatch (`gemm::gemm`'s
/// transposition to a column-oriented output, then `gemm_basic_generic`'s horizontal kernel,
/// outer product, four matrix-vector cases and the small-size path) and answers true exactly
/// when the product reaches `kernel_params`.
pub fn cache_blocked(
    m: usize,
    n: usize,
    k: usize,
    a_cs: usize,
    a_rs: usize,
    b_rs: usize,
    b_cs: usize,
) -> bool {
    if m == 0 || n == 0 || k <= 2 {
        return false;
    }
    // Both operands contiguous along the depth and a small output: the horizontal kernels,
    // which block the depth by a constant 1024.
    if a_cs == 1 && b_rs == 1 && m * n <= 16 * 16 {
        return false;
    }
    // gemm transposes the problem when the output's columns are closer than its rows (n > 1
    // here), so (rows, cols, lhs, rhs) become (n, m, b^T, a^T); then the matrix-vector cases.
    let (rows, cols, l_cs, l_rs, r_cs, r_rs) = if n > 1 {
        (n, m, b_rs, b_cs, a_rs, a_cs)
    } else {
        (m, n, a_cs, a_rs, b_cs, b_rs)
    };
    let (d_cs, d_rs) = if n > 1 { (n, 1) } else { (1, 1) };
    let matrix_vector = (cols <= 1 && l_rs == 1 && d_rs == 1)
        || (cols <= 1 && l_cs == 1 && r_rs == 1)
        || (rows <= 1 && r_cs == 1 && d_cs == 1)
        || (rows <= 1 && r_rs == 1 && l_cs == 1);
    if matrix_vector {
        return false;
    }
    // Small outputs block the depth by a constant 512.
    !(rows <= 64 && cols <= 64) && k > MAX_DEPTH
}

/// `c[m][n] = a * b` with `a` (m x k) and `b` (k x n) given by row and column strides; `c` is
/// row-major and overwritten. The result depends on the shapes and values only, never on the
/// machine (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    if !cache_blocked(m, n, k, a_cs, a_rs, b_rs, b_cs) {
        // SAFETY: the asserts above keep every index gemm reads or writes inside the slices.
        unsafe { gemm_call(m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, c, false) };
        return;
    }
    let blocks = k.div_ceil(MAX_DEPTH);
    let depth = k.div_ceil(blocks);
    let mut start = 0;
    while start < k {
        let len = depth.min(k - start);
        // SAFETY: block `start..start + len` of the depth lies inside the asserted ranges.
        unsafe {
            gemm_call(
                m,
                n,
                len,
                &a[start * a_cs..],
                a_rs,
                a_cs,
                &b[start * b_rs..],
                b_rs,
                b_cs,
                c,
                start > 0,
            )
        };
        start += len;
    }
}

/// One gemm call: `c = a * b`, or `c += a * b` with `accumulate`.
///
/// # Safety
/// Every element `a[i * a_rs + d * a_cs]`, `b[d * b_rs + j * b_cs]` and `c[i * n + j]` for
/// `i < m`, `j < n`, `d < k` must lie inside its slice.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_call(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, salt: u32) -> Vec<f32> {
        // Spread magnitudes, so that any change of summation order changes low bits.
        (0..len as u32)
            .map(|i| {
                let h = (i ^ salt).wrapping_mul(2_654_435_761).rotate_left(13);
                (h % 20_011) as f32 / 997.0 - 10.0
            })
            .collect()
    }

    /// The order [`matmul`] promises on the cache-blocked path, written out: per output
    /// element, each depth block summed from zero by fused multiply-adds in depth order, the
    /// block sums added to the output one after another.
    fn fixed_order(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let blocks = k.div_ceil(MAX_DEPTH);
        let depth = k.div_ceil(blocks);
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut out = 0.0f32;
                for (bi, start) in (0..k).step_by(depth).enumerate() {
                    let mut acc = 0.0f32;
                    for d in start..(start + depth).min(k) {
                        acc = a[i * k + d].mul_add(b[d * n + j], acc);
                    }
                    out = if bi == 0 { acc } else { out + acc };
                }
                c[i * n + j] = out;
            }
        }
        c
    }

    #[test]
    fn long_reductions_follow_the_fixed_block_order_bit_for_bit() {
        // Shapes of the CNN's training step: conv2's weight gradient (20 x 500, depth 32 x 64)
        // and a depth that does not divide evenly.
        for (m, n, k) in [(20, 500, 2048), (100, 70, 1300), (65, 3, 900)] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let mut c = vec![f32::NAN; m * n];
            matmul(m, n, k, &a, k, 1, &b, n, 1, &mut c);
            assert!(cache_blocked(m, n, k, 1, k, n, 1), "{m}x{n}x{k}");
            let want = fixed_order(m, n, k, &a, &b);
            let same = c
                .iter()
                .zip(&want)
                .filter(|(x, y)| x.to_bits() == y.to_bits());
            assert_eq!(same.count(), m * n, "{m}x{n}x{k}");
        }
    }

    #[test]
    fn splitting_the_depth_changes_the_bits_so_the_order_is_observable() {
        // One block of 1024 against two of 512: if this never differed, the fixed split
        // above would be untestable.
        let (m, n, k) = (100, 70, 1024);
        let (a, b) = (values(m * k, 3), values(k * n, 4));
        let one_block: Vec<f32> = (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                (0..k).fold(0.0f32, |acc, d| a[i * k + d].mul_add(b[d * n + j], acc))
            })
            .collect();
        let two_blocks = fixed_order(m, n, k, &a, &b);
        assert!(one_block.iter().zip(&two_blocks).any(|(x, y)| x != y));
    }

    #[test]
    fn products_gemm_does_not_block_by_cache_are_left_whole() {
        // conv1's weight gradient: both operands contiguous along the depth, 10 x 25 output.
        assert!(!cache_blocked(10, 25, 18_432, 1, 18_432, 1, 18_432));
        // A small output blocks by a constant.
        assert!(!cache_blocked(64, 64, 5000, 1, 5000, 64, 1));
        // A single image through a linear layer is a matrix-vector product.
        assert!(!cache_blocked(1, 320, 784, 1, 784, 320, 1));
        // Short depths are one block whatever the cache.
        assert!(!cache_blocked(500, 500, MAX_DEPTH, 1, MAX_DEPTH, 500, 1));
        assert!(cache_blocked(
            500,
            500,
            MAX_DEPTH + 1,
            1,
            MAX_DEPTH + 1,
            500,
            1
        ));
    }

    #[test]
    fn results_match_a_plain_product_within_rounding() {
        for (m, n, k, a_cm, b_cm) in [
            (3, 4, 5, false, false),
            (70, 80, 1500, true, false),
            (1, 90, 700, false, true),
        ] {
            let (a, b) = (values(m * k, 5), values(k * n, 6));
            // a stored row-major or column-major, b likewise.
            let (a_rs, a_cs) = if a_cm { (1, m) } else { (k, 1) };
            let (b_rs, b_cs) = if b_cm { (1, k) } else { (n, 1) };
            let mut c = vec![0.0f32; m * n];
            matmul(m, n, k, &a, a_rs, a_cs, &b, b_rs, b_cs, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let term =
                        |d: usize| a[i * a_rs + d * a_cs] as f64 * b[d * b_rs + j * b_cs] as f64;
                    let want: f64 = (0..k).map(term).sum();
                    // f32 rounding grows with the sum of the terms' magnitudes.
                    let scale: f64 = (0..k).map(|d| term(d).abs()).sum();
                    let got = c[i * n + j] as f64;
                    assert!((got - want).abs() <= 1e-6 * scale, "{got} vs {want}");
                }
            }
        }
    }
}
