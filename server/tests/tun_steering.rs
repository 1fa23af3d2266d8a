//! `tun::steering` against the real kernel: a TUN device with two queues
//! in a network namespace of its own, UDP from many source ports (flows
//! the driver's own choice would spread over both queues) sent through it
//! by the kernel, and each queue read as a worker reads it. A steered
//! destination (an IPv4 address, an IPv6 /64) arrives on its queue only,
//! whatever the flow; a destination the map does not hold goes by its last
//! address byte; a forgotten one likewise.

#![cfg(feature = "runtime")]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod common;

use common::{read_queue, route_into, tun_device};
use sstpd::testing::netns::NetNs;
use sstpd::tun::steering::Steering;
use sstpd::tun::{TunDevice, TunOptions};

const PREFIX: &str = "sstpd-steering";
const NAME: &str = "sstpsteer";
const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);
/// Steered; its last byte alone would pick queue 1.
const A: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 7);
/// Steered; its last byte alone would pick queue 0.
const B: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 8);
/// Never steered: by its last byte, queue 1 and queue 0.
const ODD: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 9);
const EVEN: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 10);
/// Source ports per destination: flows the driver would spread.
const FLOWS: usize = 16;

/// The two-queue device, up, with its /24.
fn device() -> TunDevice {
    tun_device(NAME, 2, TUN_ADDR)
}

/// [`device`] with 10.96.0.0/16 routed into it, for the prefix tests.
fn routed_device() -> TunDevice {
    let device = device();
    route_into("10.96.0.0/16", NAME);
    device
}

/// The destinations each queue holds within `wait`, of those in `of`.
fn by_queue(queues: &[File], of: &[IpAddr], wait: Duration) -> [Vec<IpAddr>; 2] {
    let read = |queue: &File| -> Vec<IpAddr> {
        let deadline = Instant::now() + wait;
        std::iter::from_fn(|| read_queue(queue, deadline))
            .filter_map(|packet| sstpd::routing::session_table::dst_of_ip_packet(&packet))
            .filter(|d| of.contains(d))
            .collect()
    };
    // Both queues were filled before the reads; the second's packets wait
    // in it while the first is read.
    [read(&queues[0]), read(&queues[1])]
}

/// One datagram to `to` from each of `sockets` (each its own flow).
fn send_flows(sockets: &[UdpSocket], to: IpAddr) {
    for socket in sockets {
        socket.send_to(b"steer me", SocketAddr::new(to, 9)).unwrap();
    }
}

fn sockets(local: IpAddr) -> Vec<UdpSocket> {
    (0..FLOWS).map(|_| bind(local)).collect()
}

/// Binds `local` (an IPv6 address may need its duplicate address
/// detection done first: bind fails for a moment).
fn bind(local: IpAddr) -> UdpSocket {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match UdpSocket::bind((local, 0)) {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("bind {local}: {e}"),
        }
    }
}

/// How many of `addr`'s packets each queue held.
fn split(zero: &[IpAddr], one: &[IpAddr], addr: impl Into<IpAddr> + Copy) -> (usize, usize) {
    (count(zero, addr), count(one, addr))
}

fn count(seen: &[IpAddr], addr: impl Into<IpAddr>) -> usize {
    let addr = addr.into();
    seen.iter().filter(|d| **d == addr).count()
}

#[test]
fn each_destination_reaches_its_owners_queue_whatever_the_flow() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = TunDevice::create(&TunOptions::new(NAME, 2)).unwrap();
        device.set_mtu(1400).unwrap();
        device.set_ipv4(TUN_ADDR, 24).unwrap();
        let v6_local: Ipv6Addr = "fd97::1".parse().unwrap();
        let v6_steered: Ipv6Addr = "fd97:0:0:6::5".parse().unwrap();
        let v6_same_64: Ipv6Addr = "fd97:0:0:6:ffff::9".parse().unwrap();
        device.add_ipv6(v6_local, 48).unwrap();
        device.set_up(true).unwrap();
        let steering: Steering = device.attach_steering(16).unwrap();
        let queues = device.queues();
        let v4 = sockets(TUN_ADDR.into());
        let v6 = sockets(v6_local.into());
        let short = Duration::from_millis(300);
        let all: Vec<IpAddr> = vec![
            A.into(),
            B.into(),
            ODD.into(),
            EVEN.into(),
            v6_steered.into(),
            v6_same_64.into(),
        ];

        // Steered against what their last bytes would pick.
        steering.steer(A.into(), 0).unwrap();
        steering.steer(B.into(), 1).unwrap();
        steering.steer(v6_steered.into(), 1).unwrap();
        for to in [A, B, ODD, EVEN] {
            send_flows(&v4, to.into());
        }
        send_flows(&v6, v6_steered.into());
        send_flows(&v6, v6_same_64.into());
        let [zero, one] = by_queue(queues, &all, short);
        assert_eq!(split(&zero, &one, A), (FLOWS, 0), "{zero:?} {one:?}");
        assert_eq!(split(&zero, &one, B), (0, FLOWS));
        assert_eq!(count(&one, v6_steered), FLOWS, "{one:?}");
        assert_eq!(count(&one, v6_same_64), FLOWS, "the whole /64: {one:?}");
        // Not in the map: by the last address byte, every flow alike.
        assert_eq!(split(&zero, &one, ODD), (0, FLOWS));
        assert_eq!(split(&zero, &one, EVEN), (FLOWS, 0));

        // Moved to another owner, and forgotten (twice: a key that is
        // gone is no error): A by its owner, B by its last byte.
        steering.steer(A.into(), 1).unwrap();
        steering.forget(B.into()).unwrap();
        steering.forget(B.into()).unwrap();
        send_flows(&v4, A.into());
        send_flows(&v4, B.into());
        let [zero, one] = by_queue(queues, &all, short);
        assert_eq!(split(&zero, &one, A), (0, FLOWS));
        assert_eq!(split(&zero, &one, B), (FLOWS, 0));
    });
}

#[test]
fn a_full_map_refuses_a_destination_which_still_arrives() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = device();
        let steering = device.attach_steering(1).unwrap();
        steering.steer(B.into(), 1).unwrap();
        let refused = steering.steer(A.into(), 0).unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(libc::E2BIG), "{refused}");
        send_flows(&sockets(TUN_ADDR.into()), A.into());
        let [zero, one] = by_queue(device.queues(), &[A.into()], Duration::from_millis(300));
        // By its last byte, queue 1: refused, not lost.
        assert_eq!((zero.len(), one.len()), (0, FLOWS));
    });
}

/// The prefix map has its bound too (sstpd sizes it as the address map):
/// a routed prefix past it is refused (an LPM trie says `ENOSPC`, where the
/// address map says `E2BIG`), which sstpd counts in
/// `tun_steering_update_failed{steer}`, and its packets still arrive, on
/// the queue their last address byte picks.
#[test]
fn a_full_prefix_map_refuses_a_prefix_whose_packets_still_arrive() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = routed_device();
        let steering = device.attach_steering(1).unwrap();
        let prefix = |third: u8| {
            sstpd::proto::route::Ipv4Prefix::new(Ipv4Addr::new(10, 96, third, 0), 24).unwrap()
        };
        steering.steer_prefix(prefix(0), 0).unwrap();
        let refused = steering.steer_prefix(prefix(1), 0).unwrap_err();
        assert_eq!(refused.raw_os_error(), Some(libc::ENOSPC), "{refused}");
        // By their last byte: .7 queue 1 (the steered /24 says 0), .9 queue 1.
        let steered = Ipv4Addr::new(10, 96, 0, 7);
        let refused_dst = Ipv4Addr::new(10, 96, 1, 9);
        let all: Vec<IpAddr> = [steered, refused_dst].map(IpAddr::from).to_vec();
        let sockets = sockets(TUN_ADDR.into());
        for to in &all {
            send_flows(&sockets, *to);
        }
        let [zero, one] = by_queue(device.queues(), &all, Duration::from_millis(300));
        assert_eq!(
            split(&zero, &one, steered),
            (FLOWS, 0),
            "the prefix the map holds"
        );
        assert_eq!(
            split(&zero, &one, refused_dst),
            (0, FLOWS),
            "refused, not lost: by its bytes"
        );
        // Forgetting the one it holds makes room.
        steering.forget_prefix(prefix(0)).unwrap();
        steering.steer_prefix(prefix(1), 0).unwrap();
        send_flows(&sockets, refused_dst.into());
        let [zero, one] = by_queue(device.queues(), &all, Duration::from_millis(300));
        assert_eq!(split(&zero, &one, refused_dst), (FLOWS, 0));
    });
}

/// Framed-Route prefixes: a destination no session has as its own goes to
/// the queue of the longest routed prefix that holds it; a session's own
/// address inside a prefix goes to the session's queue; a prefix
/// forgotten leaves the next shorter one (or the address bytes).
#[test]
fn routed_prefixes_steer_by_the_longest_match() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = routed_device();
        let steering = device.attach_steering(16).unwrap();
        let prefix = |s: &str| -> sstpd::proto::route::Ipv4Prefix {
            let (addr, len) = s.split_once('/').unwrap();
            sstpd::proto::route::Ipv4Prefix::new(addr.parse().unwrap(), len.parse().unwrap())
                .unwrap()
        };
        // By their last byte alone: .5 queue 1, .200 queue 0, .9 queue 1.
        let in_24 = Ipv4Addr::new(10, 96, 0, 5);
        let in_25 = Ipv4Addr::new(10, 96, 0, 200);
        let own = Ipv4Addr::new(10, 96, 0, 9);
        let outside = Ipv4Addr::new(10, 96, 1, 6);
        steering.steer_prefix(prefix("10.96.0.0/24"), 0).unwrap();
        steering.steer_prefix(prefix("10.96.0.128/25"), 1).unwrap();
        steering.steer(own.into(), 0).unwrap();
        let all: Vec<IpAddr> = [in_24, in_25, own, outside].map(IpAddr::from).to_vec();
        let sockets = sockets(TUN_ADDR.into());
        let short = Duration::from_millis(300);
        for to in &all {
            send_flows(&sockets, *to);
        }
        let [zero, one] = by_queue(device.queues(), &all, short);
        assert_eq!(split(&zero, &one, in_24), (FLOWS, 0), "{zero:?} {one:?}");
        assert_eq!(split(&zero, &one, in_25), (0, FLOWS), "the longer prefix");
        assert_eq!(split(&zero, &one, own), (FLOWS, 0), "the address first");
        assert_eq!(split(&zero, &one, outside), (FLOWS, 0), "by its bytes");

        // The /25 forgotten: its addresses fall to the /24.
        steering.forget_prefix(prefix("10.96.0.128/25")).unwrap();
        steering.forget_prefix(prefix("10.96.0.128/25")).unwrap();
        send_flows(&sockets, in_25.into());
        let [zero, one] = by_queue(device.queues(), &all, short);
        assert_eq!(split(&zero, &one, in_25), (FLOWS, 0));
    });
}
