//! The C allocator's settings for a long run.
//!
//! A training or generator step allocates and frees buffers of a few MiB (patches, gradients,
//! activations). glibc serves blocks over its mmap threshold with fresh `mmap`s and returns
//! the heap's free top to the kernel past its trim threshold, so each step faulted its pages
//! in again and zeroed them: about a fifth of a generator step. Raising both keeps freed
//! blocks in the heap for the next step; peak memory is unchanged (each step needs those
//! blocks anyway).

/// Keeps freed blocks of up to 32 MiB (glibc's largest mmap threshold) in the heap and the
/// heap's free top mapped. A no-op off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
