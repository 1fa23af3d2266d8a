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

use std::ffi::{c_char, c_int, c_void};
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

/// Sends aws-lc's own allocations (its keys, digest and signing contexts)
/// to mimalloc, the allocator of the rest of the process, through aws-lc's
/// `CRYPTO_set_mem_functions`. Call it first in `main`, before anything
/// uses TLS: memory aws-lc took from the C library before the switch would
/// be given to mimalloc's `free`. Returns whether the switch took (false:
/// it was made already, and aws-lc keeps what it had).
///
/// Why: aws-lc allocates with the C library's `malloc` unless told
/// otherwise, and glibc gives each worker thread its own arena, which grows
/// by `mprotect` a page at a time. Each session held keeps its AEAD keys
/// there, so a setup ramp paid glibc's locked `malloc` and `free` for every
/// handshake's contexts and an `mprotect` and a page fault every few
/// sessions (`strace -c -f -p <sstpd>` during `run setup`: 2,341
/// `mprotect` calls for 8,000 sessions, all of them from
/// `TlsRecordOpeningKey::new` and `TlsRecordSealingKey::new` by their
/// stacks).
///
/// aws-lc zeroes what it frees when it allocates for itself; these
/// functions do the same (the block's whole usable size), so key material
/// does not outlive its key in freed memory.
pub fn crypto_allocations_to_mimalloc() -> bool {
    // SAFETY: the three functions have the signatures aws-lc declares for
    // them; they may be called from any thread, which mimalloc allows.
    let rc = unsafe {
        aws_lc_sys::CRYPTO_set_mem_functions(
            Some(crypto_malloc),
            Some(crypto_realloc),
            Some(crypto_free),
        )
    };
    rc == 1
}

unsafe extern "C" fn crypto_malloc(size: usize, _file: *const c_char, _line: c_int) -> *mut c_void {
    // SAFETY: mi_malloc takes any size; aws-lc treats NULL as failure.
    unsafe { libmimalloc_sys::mi_malloc(size) }
}

unsafe extern "C" fn crypto_realloc(
    ptr: *mut c_void,
    size: usize,
    file: *const c_char,
    line: c_int,
) -> *mut c_void {
    if ptr.is_null() {
        // SAFETY: as in crypto_malloc.
        return unsafe { crypto_malloc(size, file, line) };
    }
    // Not mi_realloc: a block it moves is freed without being zeroed.
    // SAFETY: `ptr` is a live block of crypto_malloc's (aws-lc passes back
    // only what these functions returned); the copy stays within both
    // blocks, and the old one is zeroed and freed once, after the copy.
    unsafe {
        let new = libmimalloc_sys::mi_malloc(size);
        if new.is_null() {
            return new;
        }
        let old_size = libmimalloc_sys::mi_usable_size(ptr);
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), new.cast::<u8>(), old_size.min(size));
        crypto_free(ptr, file, line);
        new
    }
}

unsafe extern "C" fn crypto_free(ptr: *mut c_void, _file: *const c_char, _line: c_int) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` is a live block of crypto_malloc's, freed once.
    unsafe {
        zero_block(ptr);
        libmimalloc_sys::mi_free(ptr);
    }
}

/// Zeroes all of mimalloc's block `ptr`, its usable size. The stores
/// cannot be dropped as dead: the block goes on to `mi_free`, a call the
/// compiler cannot see into.
///
/// # Safety
/// `ptr` is a live block of mimalloc's.
unsafe fn zero_block(ptr: *mut c_void) {
    // SAFETY: a live block's usable size is all writable.
    unsafe {
        let size = libmimalloc_sys::mi_usable_size(ptr);
        std::ptr::write_bytes(ptr.cast::<u8>(), 0, size);
    }
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
    fn a_crypto_block_is_zeroed_to_its_usable_size_before_it_is_freed() {
        // SAFETY: a live block of crypto_malloc's, read within its usable
        // size, then freed once.
        unsafe {
            let p = crypto_malloc(50, std::ptr::null(), 0);
            let usable = libmimalloc_sys::mi_usable_size(p);
            assert!(usable >= 50);
            std::ptr::write_bytes(p.cast::<u8>(), 0xa5, usable);
            zero_block(p);
            let block = std::slice::from_raw_parts(p.cast::<u8>(), usable);
            assert!(block.iter().all(|&b| b == 0));
            crypto_free(p, std::ptr::null(), 0);
        }
    }

    #[test]
    fn huge_pages_can_be_turned_off() {
        // A thread of the test binary: the flag is per process, and no
        // other test depends on huge pages.
        disable_transparent_huge_pages().unwrap();
        assert!(transparent_huge_pages_disabled().unwrap());
    }
}
