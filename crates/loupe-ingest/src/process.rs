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
