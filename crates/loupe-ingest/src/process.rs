//! Process-wide settings for the binaries that run the ingest path.

/// Turns off transparent huge pages for this process. The allocator's arenas are
/// THP-eligible, and each fresh 2 MiB page it touches after returning memory is zeroed in
/// the kernel: measured at 30 % of the simulator's CPU and 5 % of the replay's
/// (`clear_page_erms` under `do_huge_pmd_anonymous_page`). Best effort: on a kernel
/// without the call nothing changes.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and changes a flag
    // of this process's memory map; it touches no Rust-visible memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (the Rust bindings name no
/// constant for it); a test checks the index by the option's default of 1000 ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory the allocator frees goes back to the OS at once, not after its default second.
/// With the delay, a fast replay reached its next peak before the last one was returned:
/// the 100 000 in-flight pods peaked at 510–518 MiB, 468 MiB without it. The CPU time of
/// a replay did not rise (its page faults did, from 130 k to 191 k). Not for the simulator:
/// it frees little and often, and generated 20 % slower this way. A delay the user set in
/// `MIMALLOC_PURGE_DELAY` is kept.
pub fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set takes an option index and a value; it touches no Rust memory.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: as above; mi_option_get only reads the option.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                before, 1000,
                "index {MI_OPTION_PURGE_DELAY} is not purge_delay"
            );
        }
        return_freed_memory_at_once();
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(after, 0);
        } else {
            assert_eq!(after, before, "the user's delay is kept");
        }
    }
}
