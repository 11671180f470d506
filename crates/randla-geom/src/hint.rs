//! Cache hints for the loops that gather rows scattered over large arrays.

/// Hints the CPU to bring `s[i]` into the cache (nothing elsewhere than x86-64, or when `i` is
/// out of range).
#[inline(always)]
pub fn prefetch<T>(s: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if i < s.len() {
        // SAFETY: `i` is inside `s`; a prefetch only hints the cache and cannot fault.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(s.as_ptr().add(i).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, i);
}
