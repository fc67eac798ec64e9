//! A hint to the CPU to start loading memory that will be read soon. Loops over
//! entries scattered through a large table (a drain, a batch of lookups) issue it a
//! few items ahead, so the cache misses overlap instead of queuing one by one.

/// Starts loading the cache line holding `*r` (a no-op where unsupported).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is SSE, part of every x86_64 CPU, and it is only a hint: it
    // never faults and reads nothing the program sees; `r` is a valid reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((r as *const T).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
