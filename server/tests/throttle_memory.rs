//! The password-guessing throttle's memory follows its use: nothing when
//! nobody has failed to log in, growth with the keys it records, and no more
//! than `auth_throttle.max_entries` keys' worth however many an attacker
//! cycles through.
//!
//! Its two tables used to be allocated at their full capacity at startup
//! (2 × 544 KiB with the default 16,384 keys), which cost an idle server a
//! 2 MiB page and, through mimalloc's 2 MiB transparent huge pages, the
//! latency benchmark's peak 16 MB.
//!
//! Measured with this test binary's global allocator, which counts the bytes
//! live per thread (so nothing the test harness does elsewhere counts).

#![cfg(feature = "runtime")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use sstpd::aaa::throttle::AuthThrottle;
use sstpd::config::AuthThrottleSection;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // During thread teardown the counter may be gone: not ours to count.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every call is passed to `System` unchanged; the wrapper only
// counts sizes in a const-initialised thread-local (which never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes this thread has allocated and not freed.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// What one key costs at most in one table: its list node (key, record,
/// two links) and its share of the hash table, which doubles as it grows.
const MAX_BYTES_PER_KEY: isize = 256;

/// Records a failure from a new source for a new user name: one new key in
/// each table.
fn fail(t: &AuthThrottle, now: Instant, i: u32) {
    let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    t.record_failure(now, source, &format!("user{i}"));
}

#[test]
fn the_throttle_allocates_with_use_and_no_more_than_max_entries() {
    let now = Instant::now();
    let mut config = AuthThrottleSection::default();
    assert_eq!(config.max_entries, 16_384, "the default this test is about");

    // Nothing up front, with the default capacity.
    let start = live();
    let t = AuthThrottle::new(&config);
    let up_front = live() - start;
    eprintln!("up front: {up_front} bytes");
    assert!(
        up_front < 1024,
        "a throttle that has recorded nothing holds {up_front} bytes"
    );

    // Growth with the keys recorded (two tables, one key in each per call).
    for (keys, from) in [(100u32, 0u32), (1000, 100)] {
        for i in from..keys {
            fail(&t, now, i);
        }
        assert_eq!(t.tracked(), (keys as usize, keys as usize));
        let held = live() - start;
        eprintln!("{keys} keys per table: {held} bytes");
        assert!(
            held <= 2 * keys as isize * MAX_BYTES_PER_KEY,
            "{keys} keys per table hold {held} bytes"
        );
    }
    drop(t);
    assert_eq!(live(), start, "dropping the throttle frees everything");

    // The bound: a hundred times max_entries keys cost no more than
    // max_entries keys may (the hash table may double once as evictions
    // leave tombstones, then rehashes in place).
    config.max_entries = 1000;
    let t = AuthThrottle::new(&config);
    for i in 0..100_000 {
        fail(&t, now, i);
        if i % 10_000 == 9_999 {
            assert_eq!(t.tracked(), (1000, 1000));
            let held = live() - start;
            assert!(
                held <= 2 * 1000 * MAX_BYTES_PER_KEY,
                "max_entries = 1000: {held} bytes after {} keys",
                i + 1
            );
        }
    }
    eprintln!("max_entries = 1000, 100,000 keys: {} bytes", live() - start);
}
