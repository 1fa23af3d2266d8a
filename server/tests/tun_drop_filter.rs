//! `tun::drop_filter` against the real kernel: a TUN device in a network
//! namespace of its own, UDP sent through it by the kernel, and the
//! device's queue read as sstpd reads it. A marked destination (an IPv4
//! address, an IPv6 /64) is dropped by the kernel and counted in the
//! device's `tx_dropped`; every other destination, and the marked one once
//! cleared, is read as before.

#![cfg(feature = "runtime")]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use common::{read_queue, route_into, tun_device};
use sstpd::testing::netns::NetNs;
use sstpd::tun::drop_filter::DropFilter;
use sstpd::tun::{DeviceStats, TunDevice, TunOptions};

const PREFIX: &str = "sstpd-dropfilter";
const NAME: &str = "sstpdrop";
const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const CONGESTED: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 7);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 8);

/// The one-queue device, up, with its /24.
fn device() -> TunDevice {
    tun_device(NAME, 1, TUN_ADDR)
}

/// The destination of every packet the queue holds within `wait`.
fn destinations(queue: &File, wait: Duration) -> Vec<IpAddr> {
    let deadline = Instant::now() + wait;
    std::iter::from_fn(|| read_queue(queue, deadline))
        .filter_map(|packet| sstpd::routing::session_table::dst_of_ip_packet(&packet))
        .collect()
}

/// The device's `tx_dropped`, as sstpd's exporter reads it.
fn tx_dropped() -> u64 {
    DeviceStats::open(NAME)
        .and_then(|stats| {
            stats
                .tx_dropped()
                .ok_or(std::io::Error::other("no counters"))
        })
        .expect("the device's counters")
}

/// How many of `seen` went to `addr`.
fn count_of(seen: &[IpAddr], addr: impl Into<IpAddr>) -> usize {
    let addr = addr.into();
    seen.iter().filter(|d| **d == addr).count()
}

fn send(socket: &UdpSocket, to: IpAddr, count: usize) {
    for _ in 0..count {
        socket
            .send_to(b"drop me, or not", SocketAddr::new(to, 9))
            .unwrap();
    }
}

#[test]
fn marked_destinations_are_dropped_by_the_kernel_and_others_pass() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = TunDevice::create(&TunOptions::new(NAME, 1)).unwrap();
        device.set_mtu(1400).unwrap();
        device.set_ipv4(TUN_ADDR, 24).unwrap();
        let v6_local: Ipv6Addr = "fd98::1".parse().unwrap();
        let v6_congested: Ipv6Addr = "fd98:0:0:7::5".parse().unwrap();
        let v6_same_64: Ipv6Addr = "fd98:0:0:7:ffff::9".parse().unwrap();
        let v6_other: Ipv6Addr = "fd98:0:0:8::5".parse().unwrap();
        device.add_ipv6(v6_local, 48).unwrap();
        device.set_up(true).unwrap();
        let filter: DropFilter = device.attach_drop_filter(16).unwrap();
        let queue = &device.queues()[0];
        let v4 = UdpSocket::bind((TUN_ADDR, 0)).unwrap();
        // The IPv6 address needs its duplicate address detection done
        // (nodad is not set by add_ipv6): bind may fail for a moment.
        let v6 = {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match UdpSocket::bind((v6_local, 0)) {
                    Ok(socket) => break socket,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("bind {v6_local}: {e}"),
                }
            }
        };
        let short = Duration::from_millis(300);

        // Nothing marked: everything is read.
        send(&v4, CONGESTED.into(), 3);
        send(&v4, OTHER.into(), 3);
        let seen = destinations(queue, short);
        assert_eq!(count_of(&seen, CONGESTED), 3);
        assert_eq!(count_of(&seen, OTHER), 3);

        // Marked: the kernel drops the congested address's packets and
        // counts them; the other address's still arrive.
        let before = tx_dropped();
        filter.mark(CONGESTED.into()).unwrap();
        filter.mark(v6_congested.into()).unwrap();
        send(&v4, CONGESTED.into(), 5);
        send(&v4, OTHER.into(), 4);
        send(&v6, v6_congested.into(), 2);
        send(&v6, v6_same_64.into(), 2);
        send(&v6, v6_other.into(), 3);
        let seen = destinations(queue, short);
        assert!(!seen.contains(&CONGESTED.into()), "{seen:?}");
        assert!(!seen.contains(&v6_congested.into()), "{seen:?}");
        assert!(
            !seen.contains(&v6_same_64.into()),
            "the whole /64: {seen:?}"
        );
        assert_eq!(count_of(&seen, OTHER), 4);
        assert_eq!(count_of(&seen, v6_other), 3);
        assert_eq!(tx_dropped() - before, 5 + 2 + 2, "counted by the device");

        // Cleared (twice: a key that is gone is no error): read again.
        filter.clear(CONGESTED.into()).unwrap();
        filter.clear(CONGESTED.into()).unwrap();
        filter.clear(v6_congested.into()).unwrap();
        send(&v4, CONGESTED.into(), 2);
        send(&v6, v6_same_64.into(), 1);
        let seen = destinations(queue, short);
        assert_eq!(count_of(&seen, CONGESTED), 2);
        assert_eq!(count_of(&seen, v6_same_64), 1);
    });
}

#[test]
fn a_full_map_refuses_the_mark_and_drops_nothing() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = device();
        let filter = device.attach_drop_filter(1).unwrap();
        filter.mark(OTHER.into()).unwrap();
        let refused = filter.mark(CONGESTED.into()).unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(libc::E2BIG), "{refused}");
        let v4 = UdpSocket::bind((TUN_ADDR, 0)).unwrap();
        send(&v4, CONGESTED.into(), 2);
        let seen = destinations(&device.queues()[0], Duration::from_millis(300));
        // (Router solicitations from the device's link-local address may
        // come too.)
        let seen: Vec<IpAddr> = seen.into_iter().filter(IpAddr::is_ipv4).collect();
        assert_eq!(seen, vec![IpAddr::from(CONGESTED); 2]);
    });
}

/// A congested session's Framed-Route prefixes: every address inside a
/// marked prefix is dropped by the kernel (and counted), an address outside
/// it passes, and a cleared prefix passes again; a full trie refuses the
/// mark (`ENOSPC`) and drops nothing.
#[test]
fn marked_prefixes_are_dropped_by_the_kernel_and_others_pass() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = device();
        route_into("10.99.0.0/16", NAME);
        let filter = device.attach_drop_filter(1).unwrap();
        let prefix = |third: u8| {
            sstpd::proto::route::Ipv4Prefix::new(Ipv4Addr::new(10, 99, third, 0), 24).unwrap()
        };
        let (inside, also_inside) = (Ipv4Addr::new(10, 99, 0, 5), Ipv4Addr::new(10, 99, 0, 200));
        let outside = Ipv4Addr::new(10, 99, 1, 5);
        let v4 = UdpSocket::bind((TUN_ADDR, 0)).unwrap();
        let short = Duration::from_millis(300);

        let before = tx_dropped();
        filter.mark_prefix(prefix(0)).unwrap();
        let refused = filter.mark_prefix(prefix(1)).unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(libc::ENOSPC), "{refused}");
        send(&v4, inside.into(), 3);
        send(&v4, also_inside.into(), 2);
        send(&v4, outside.into(), 4);
        let seen = destinations(&device.queues()[0], short);
        assert_eq!(count_of(&seen, inside), 0, "{seen:?}");
        assert_eq!(count_of(&seen, also_inside), 0, "{seen:?}");
        assert_eq!(count_of(&seen, outside), 4, "refused: nothing dropped");
        assert_eq!(tx_dropped() - before, 3 + 2, "counted by the device");

        // Cleared (twice: a prefix that is gone is no error): read again.
        filter.clear_prefix(prefix(0)).unwrap();
        filter.clear_prefix(prefix(0)).unwrap();
        send(&v4, inside.into(), 2);
        let seen = destinations(&device.queues()[0], short);
        assert_eq!(count_of(&seen, inside), 2);
    });
}
