//! The process's memory: transparent huge pages off.
//!
//! mimalloc asks the kernel for transparent huge pages on its arenas
//! (`madvise(MADV_HUGEPAGE)`, honoured even where the system setting is
//! `madvise`). A huge page is resident as a whole once any byte of it is
//! touched, and an idle session's memory is mostly allocated but untouched
//! (the unused tail of its socket read buffer, rustls' receive buffer): with
//! huge pages, 4,000 idle sessions cost 41 KiB of RSS each, without them
//! 24 KiB (`sstp-bench run idle`, docs/benchmarking.md), and the
//! latency benchmark's RSS peak moved in 2 MiB steps with the timing of its
//! queues. A session server holds many mostly idle sessions, so sstpd and
//! its load generator turn transparent huge pages off for themselves with
//! `prctl(PR_SET_THP_DISABLE)` (Linux 3.15) before the workers start.
//!
//! mimalloc gives freed memory back to the kernel lazily: pages of ended
//! sessions are purged (`MADV_DONTNEED`) only when the thread that owns
//! them allocates again or collects. A worker whose sessions all ended
//! after a storm allocates little, so its RSS stayed at the peak (188 MiB
//! after 8,000 sessions came and went, docs/benchmarking.md). Each worker
//! therefore calls [`return_freed_memory`] a little after sessions end.

use std::io;

/// Turns transparent huge pages off for this process (and the children it
/// starts). Pages already huge stay so; every later fault gets 4 KiB pages.
pub fn disable_transparent_huge_pages() -> io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes
    // no memory of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the calling thread's freed memory back to the kernel: mimalloc's
/// `mi_collect(false)` frees the thread heap's empty pages and purges the
/// arenas' delayed decommits now instead of at the next allocation. Costs
/// a walk over the thread's pages; call it now and then, not per packet.
/// Nothing to do (and nothing done) where mimalloc is not the allocator.
pub fn return_freed_memory() {
    // SAFETY: mi_collect takes no pointer and may be called from any
    // thread at any time; memory still in use is untouched.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// [`return_freed_memory`], forced: mimalloc's `mi_collect(true)` also
/// purges the pages whose decommit it had delayed (a freed page is given
/// back only after a short delay, at a later collect or allocation) and
/// the segments it keeps cached. A worker calls it once its sessions have
/// stopped ending: after a storm's teardown the last plain collect can
/// come while pages are still being freed, and nothing collects after it
/// (`sstp-bench run storm --idle-sessions 19000` then left 150 to 279 MiB
/// of 227 to 288 held in 4 runs of 13, instead of 40; none of 8 since,
/// docs/benchmarking.md).
pub fn return_all_freed_memory() {
    // SAFETY: as for `return_freed_memory`.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Whether transparent huge pages are off for this process.
pub fn transparent_huge_pages_disabled() -> io::Result<bool> {
    // SAFETY: as above; PR_GET_THP_DISABLE reads a flag.
    let rc = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_can_be_turned_off() {
        // A thread of the test binary: the flag is per process, and no
        // other test depends on huge pages.
        disable_transparent_huge_pages().unwrap();
        assert!(transparent_huge_pages_disabled().unwrap());
    }
}
