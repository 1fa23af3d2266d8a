//! The session table under concurrent writers and readers.
//!
//! Four threads (workers 0..4) hammer the same 128 addresses (64 IPv4, 64
//! IPv6 /64s) with inserts, conditional inserts, removes and lookups, 100k
//! operations each. Every `SessionRef` ever inserted is unique (worker,
//! generation), so at the end each one must be accounted for exactly once:
//! displaced by a later insert (returned as the previous owner), removed by
//! its owner, or still in the table. That is what linearizable swap/CAS
//! entries guarantee; a lost update or a remove that evicted someone else's
//! entry would break the count.

#![cfg(feature = "runtime")]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sstpd::routing::pool::{Ipv4Pool, Ipv6PrefixPool};
use sstpd::routing::session_table::{SessionRef, SessionTable, SessionTableError};

const THREADS: u16 = 4;
const OPS_PER_THREAD: u32 = 100_000;

#[derive(Default)]
struct Ledger {
    inserted: Vec<SessionRef>,
    /// Previous owners returned by our inserts (anyone's refs).
    displaced: Vec<SessionRef>,
    /// Our refs that our own `remove` cleared.
    removed: Vec<SessionRef>,
}

fn addresses() -> Vec<IpAddr> {
    let v4 = (0..64u8).map(|i| IpAddr::V4(Ipv4Addr::new(10, 200, 0, i)));
    let v6 = (0..64u16).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x77, i, 0, 0, 0, 1)));
    v4.chain(v6).collect()
}

fn worker(table: &SessionTable, issued: &[AtomicU32], keys: &[IpAddr], worker: u16) -> Ledger {
    let mut rng = StdRng::seed_from_u64(0x5e55_1000 + u64::from(worker));
    let mut ledger = Ledger::default();
    let mut mine: Vec<Option<SessionRef>> = vec![None; keys.len()];
    let mut generation = 0u32;
    for _ in 0..OPS_PER_THREAD {
        let key = rng.random_range(0..keys.len());
        let addr = keys[key];
        let session = SessionRef {
            worker,
            slot: key as u32,
            generation,
        };
        // Publish "issued up to" before the ref can become visible.
        issued[worker as usize].store(generation + 1, Ordering::Release);
        match rng.random_range(0..8) {
            // Insert, displacing whoever is there.
            0..=2 => {
                generation += 1;
                ledger.inserted.push(session);
                if let Some(previous) = table.insert(addr, session).unwrap() {
                    ledger.displaced.push(previous);
                }
                mine[key] = Some(session);
            }
            // Insert only into a vacant entry.
            3 => match table.insert_if_vacant(addr, session) {
                Ok(()) => {
                    generation += 1;
                    ledger.inserted.push(session);
                    mine[key] = Some(session);
                }
                Err(SessionTableError::Occupied(owner)) => {
                    assert_ne!(owner, session, "our fresh ref cannot be there yet");
                }
                Err(other) => panic!("unexpected error {other:?}"),
            },
            // Remove our most recent ref for this address, if any.
            4 | 5 => {
                if let Some(session) = mine[key].take() {
                    if table.remove(addr, session).unwrap() {
                        ledger.removed.push(session);
                    }
                }
            }
            // Look up: whatever is there was issued, for this slot.
            _ => {
                if let Some(owner) = table.lookup(addr) {
                    assert!(owner.worker < THREADS);
                    assert_eq!(owner.slot, key as u32);
                    let issued_so_far = issued[owner.worker as usize].load(Ordering::Acquire);
                    assert!(
                        owner.generation < issued_so_far,
                        "{owner:?} was never issued"
                    );
                }
            }
        }
    }
    ledger
}

#[test]
fn concurrent_inserts_and_removes_account_for_every_ref() {
    let ipv4 = Ipv4Pool::from_cidr(Ipv4Addr::new(10, 200, 0, 0), 26, None).unwrap();
    let ipv6 = Ipv6PrefixPool::new("2001:db8:77::".parse().unwrap(), 58, None).unwrap();
    let table = SessionTable::new(&[ipv4.range()], &[ipv6.range()]).unwrap();
    let keys = addresses();
    assert!(keys.iter().all(|&k| table.lookup(k).is_none()));
    let issued: Vec<AtomicU32> = (0..THREADS).map(|_| AtomicU32::new(0)).collect();

    let ledgers: Vec<Ledger> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|w| {
                let (table, issued, keys) = (&table, &issued, &keys);
                scope.spawn(move || worker(table, issued, keys, w))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Every ref that left the table or is still in it, with how often.
    let mut seen: HashMap<SessionRef, u32> = HashMap::new();
    let mut count = |r: SessionRef| *seen.entry(r).or_default() += 1;
    for ledger in &ledgers {
        ledger.displaced.iter().copied().for_each(&mut count);
        ledger.removed.iter().copied().for_each(&mut count);
    }
    for &key in &keys {
        if let Some(owner) = table.lookup(key) {
            count(owner);
        }
    }
    let inserted: Vec<SessionRef> = ledgers.iter().flat_map(|l| l.inserted.clone()).collect();
    assert!(inserted.len() > (THREADS as usize) * (OPS_PER_THREAD as usize) / 4);
    for session in &inserted {
        assert_eq!(
            seen.remove(session),
            Some(1),
            "{session:?} must leave the table exactly once"
        );
    }
    assert!(seen.is_empty(), "refs nobody inserted: {seen:?}");
}
