//! The multi-queue TUN device against the real kernel, each test inside a
//! network namespace of its own (removed on drop, also when a test fails).
//!
//! The kernel answers the ICMP echo requests written into the device, which
//! proves in one go that the device exists with two queues, that the
//! addresses, prefix routes and link state were configured, and that packets
//! flow both ways.

#![cfg(feature = "runtime")]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use sstpd::testing::netns::NetNs;
use sstpd::tun::{TunDevice, TunError, TunOptions, UringQueue};

const PREFIX: &str = "sstpd-tuntest";
const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const TUN_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
const PEER_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a request is written again while no reply has come. An IPv6
/// address stays tentative until the kernel's link watcher has processed
/// the freshly raised device, which on a busy host can take up to a second;
/// requests to it are dropped meanwhile (as `ping` would, we resend).
const RESEND_INTERVAL: Duration = Duration::from_millis(100);
const PAYLOAD: &[u8] = b"sstpd tun test payload 0123456789";

// ---- Packets (built here, with real checksums) ----

/// The Internet checksum ([RFC 1071]) over the concatenation of `parts`.
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn icmp_echo(kind: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut message = vec![kind, 0, 0, 0];
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(PAYLOAD);
    message
}

/// An IPv4 ICMP echo request ([RFC 792]).
fn icmpv4_echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    let mut icmp = icmp_echo(8, id, seq);
    let checksum = internet_checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let total_len = (20 + icmp.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total_len.to_be_bytes());
    packet.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 1, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let checksum = internet_checksum(&[&packet]);
    packet[10..12].copy_from_slice(&checksum.to_be_bytes());
    packet.extend_from_slice(&icmp);
    packet
}

fn icmpv6_pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo
}

/// An ICMPv6 echo request ([RFC 4443] 4.1).
fn icmpv6_echo_request(src: Ipv6Addr, dst: Ipv6Addr, id: u16, seq: u16) -> Vec<u8> {
    let mut icmp = icmp_echo(128, id, seq);
    let checksum = internet_checksum(&[&icmpv6_pseudo_header(src, dst, icmp.len()), &icmp]);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[58, 64]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(&icmp);
    packet
}

/// Whether `packet` is the kernel's IPv4 echo reply to our request; checks
/// every field we can predict and both checksums.
fn is_icmpv4_echo_reply(packet: &[u8], id: u16, seq: u16) -> bool {
    if packet.len() < 20 || packet[0] != 0x45 || packet[9] != 1 {
        return false;
    }
    let (header, icmp) = packet.split_at(20);
    header[12..16] == TUN_ADDR.octets()
        && header[16..20] == PEER_ADDR.octets()
        && usize::from(u16::from_be_bytes([header[2], header[3]])) == packet.len()
        && internet_checksum(&[header]) == 0
        && icmp.len() == 8 + PAYLOAD.len()
        && icmp[..2] == [0, 0]
        && icmp[4..8] == [id.to_be_bytes(), seq.to_be_bytes()].concat()[..]
        && &icmp[8..] == PAYLOAD
        && internet_checksum(&[icmp]) == 0
}

/// Whether `packet` is the kernel's ICMPv6 echo reply to our request.
fn is_icmpv6_echo_reply(packet: &[u8], id: u16, seq: u16) -> bool {
    if packet.len() < 40 || packet[0] >> 4 != 6 || packet[6] != 58 {
        return false;
    }
    let (header, icmp) = packet.split_at(40);
    let pseudo = icmpv6_pseudo_header(TUN_ADDR6, PEER_ADDR6, icmp.len());
    header[8..24] == TUN_ADDR6.octets()
        && header[24..40] == PEER_ADDR6.octets()
        && usize::from(u16::from_be_bytes([header[4], header[5]])) == icmp.len()
        && icmp.len() == 8 + PAYLOAD.len()
        && icmp[..2] == [129, 0]
        && icmp[4..8] == [id.to_be_bytes(), seq.to_be_bytes()].concat()[..]
        && &icmp[8..] == PAYLOAD
        && internet_checksum(&[&pseudo, icmp]) == 0
}

#[test]
fn packet_builders_produce_valid_checksums() {
    // RFC 1071 example: 0x0001 f203 f4f5 f6f7 sums to 0xddf2, checksum 0x220d.
    assert_eq!(
        internet_checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
        0x220d
    );
    let v4 = icmpv4_echo_request(PEER_ADDR, TUN_ADDR, 7, 1);
    assert_eq!(internet_checksum(&[&v4[..20]]), 0);
    assert_eq!(internet_checksum(&[&v4[20..]]), 0);
    let v6 = icmpv6_echo_request(PEER_ADDR6, TUN_ADDR6, 7, 1);
    let pseudo = icmpv6_pseudo_header(PEER_ADDR6, TUN_ADDR6, v6.len() - 40);
    assert_eq!(internet_checksum(&[&pseudo, &v6[40..]]), 0);
}

// ---- Device setup and blocking IO with poll(2) ----

/// Creates `name` with two queues, MTU 1400, 10.99.0.1/24, fd00:99::1/64, up.
fn configured_device(name: &str) -> TunDevice {
    let device = TunDevice::create(&TunOptions::new(name, 2)).unwrap();
    assert_eq!(device.name(), name);
    assert_eq!(device.queues().len(), 2);
    device.set_mtu(1400).unwrap();
    device.set_ipv4(TUN_ADDR, 24).unwrap();
    device.add_ipv6(TUN_ADDR6, 64).unwrap();
    device.set_up(true).unwrap();
    device
}

/// Writes `request` into queue `via` (again every [`RESEND_INTERVAL`]) and
/// reads packets from whichever queue has one until `wanted` matches or
/// [`REPLY_TIMEOUT`] passes. Other traffic (IPv6 router solicitations, MLD
/// reports) is skipped. Returns the queue index and the packet.
fn exchange(
    queues: &[File],
    via: usize,
    request: &[u8],
    wanted: impl Fn(&[u8]) -> bool,
) -> Option<(usize, Vec<u8>)> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut buf = vec![0u8; 65_536];
    let mut next_send = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= next_send {
            let written = (&queues[via]).write(request).unwrap();
            assert_eq!(written, request.len());
            next_send = now + RESEND_INTERVAL;
        }
        let mut fds: Vec<libc::pollfd> = queues
            .iter()
            .map(|q| libc::pollfd {
                fd: q.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait = next_send.min(deadline).saturating_duration_since(now);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                wait.as_millis().max(1) as libc::c_int,
            )
        };
        assert!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
        for (index, fd) in fds.iter().enumerate() {
            if fd.revents & libc::POLLIN != 0 {
                let len = (&queues[index]).read(&mut buf).unwrap();
                if wanted(&buf[..len]) {
                    return Some((index, buf[..len].to_vec()));
                }
            }
        }
    }
}

#[test]
fn kernel_answers_icmpv4_echo_written_to_either_queue() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = configured_device("sstpt4");
        assert_eq!(device.mtu().unwrap(), 1400);
        assert!(device.is_up().unwrap());
        let flags = device.flags().unwrap().unwrap();
        assert!(flags.multi_queue && flags.no_packet_info);
        assert!(!flags.persistent && !flags.napi && !flags.vnet_hdr);
        for (queue, seq) in [(0usize, 1u16), (1, 2)] {
            let request = icmpv4_echo_request(PEER_ADDR, TUN_ADDR, 0x4242, seq);
            let reply = exchange(device.queues(), queue, &request, |p| {
                is_icmpv4_echo_reply(p, 0x4242, seq)
            });
            assert!(
                reply.is_some(),
                "no echo reply for a request on queue {queue}"
            );
        }
    });
}

#[test]
fn a_point_to_point_peer_is_routed_through_the_device() {
    // A client's tunnel: its own address as a /32 and the server's at the
    // far end. Without the peer there is no route back to it, and the
    // kernel could not answer.
    let far = PEER_ADDR;
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = TunDevice::create(&TunOptions::new("sstptp", 1)).unwrap();
        device.set_ipv4(TUN_ADDR, 32).unwrap();
        device.set_ipv4_peer(far).unwrap();
        device.set_up(true).unwrap();
        let request = icmpv4_echo_request(far, TUN_ADDR, 0x5151, 7);
        let reply = exchange(device.queues(), 0, &request, |p| {
            is_icmpv4_echo_reply(p, 0x5151, 7)
        });
        assert!(reply.is_some(), "the reply to the peer left by the device");
    });
}

#[test]
fn kernel_answers_icmpv6_echo() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = configured_device("sstpt6");
        let request = icmpv6_echo_request(PEER_ADDR6, TUN_ADDR6, 0x6666, 9);
        let reply = exchange(device.queues(), 1, &request, |p| {
            is_icmpv6_echo_reply(p, 0x6666, 9)
        });
        assert!(reply.is_some(), "no ICMPv6 echo reply");
    });
}

// ---- io_uring ----

/// Reads `queue` through tokio-uring until a packet matches, then sends it.
async fn uring_read_matching(
    queue: std::rc::Rc<UringQueue>,
    index: usize,
    wanted: fn(&[u8]) -> bool,
    found: tokio::sync::mpsc::UnboundedSender<(usize, Vec<u8>)>,
) {
    let mut buf = Vec::with_capacity(65_536);
    loop {
        buf.clear();
        let (result, returned) = queue.read(buf).await;
        buf = returned;
        let len = result.expect("io_uring read of a TUN queue");
        assert_eq!(len, buf.len());
        if wanted(&buf) {
            let _ = found.send((index, buf));
            return;
        }
    }
}

fn v4_reply(packet: &[u8]) -> bool {
    is_icmpv4_echo_reply(packet, 0x1001, 3)
}

fn v6_reply(packet: &[u8]) -> bool {
    is_icmpv6_echo_reply(packet, 0x1001, 4)
}

#[test]
fn tokio_uring_reads_and_writes_tun_queues() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let mut device = configured_device("sstptu");
        let queues: Vec<_> = device
            .take_queues()
            .into_iter()
            .map(|q| std::rc::Rc::new(UringQueue::new(q)))
            .collect();
        tokio_uring::start(async move {
            for (request, wanted) in [
                (
                    icmpv4_echo_request(PEER_ADDR, TUN_ADDR, 0x1001, 3),
                    v4_reply as fn(&[u8]) -> bool,
                ),
                (
                    icmpv6_echo_request(PEER_ADDR6, TUN_ADDR6, 0x1001, 4),
                    v6_reply as fn(&[u8]) -> bool,
                ),
            ] {
                let (found_tx, mut found_rx) = tokio::sync::mpsc::unbounded_channel();
                // Reads are in flight before the write: they must park in
                // the ring rather than fail with EAGAIN.
                let readers: Vec<_> = queues
                    .iter()
                    .enumerate()
                    .map(|(index, queue)| {
                        tokio_uring::spawn(uring_read_matching(
                            queue.clone(),
                            index,
                            wanted,
                            found_tx.clone(),
                        ))
                    })
                    .collect();
                tokio::task::yield_now().await;
                // Write (again every RESEND_INTERVAL) until a reader finds
                // the reply.
                let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
                let mut request = request;
                let found = loop {
                    let len = request.len();
                    let (written, returned) = queues[0].file().write_at(request, 0).submit().await;
                    assert_eq!(written.unwrap(), len);
                    request = returned;
                    let wait = RESEND_INTERVAL
                        .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                    if let Ok(found) = tokio::time::timeout(wait, found_rx.recv()).await {
                        break found;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no echo reply through io_uring"
                    );
                };
                let (_queue, reply) = found.unwrap();
                assert!(wanted(&reply));
                // The other reader stays parked; abort it (the runtime
                // cancels its io_uring read on shutdown).
                readers.iter().for_each(|r| r.abort());
            }
        });
    });
}

/// The one queue of a device `name` with MTU 1400 and 10.99.0.1/24, up,
/// IPv6 off (no router solicitations or MLD reports arrive unasked).
fn ipv4_only_queue(name: &str) -> File {
    let mut device = TunDevice::create(&TunOptions::new(name, 1)).unwrap();
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1").unwrap();
    device.set_mtu(1400).unwrap();
    device.set_ipv4(TUN_ADDR, 24).unwrap();
    device.set_up(true).unwrap();
    device.take_queues().remove(0)
}

/// Echo requests written in one batch of io_uring writes, answered by the
/// kernel and read back through 8 reads in flight, come back in the order
/// they were written. With blocking queues, Debian 12's 6.1 kernel ran the
/// writes on io-wq threads in parallel and reordered most of them (the
/// `tun` module docs); the queues are opened non-blocking for that.
#[test]
fn a_batch_written_through_io_uring_is_answered_in_order() {
    const BATCH: u16 = 64;
    const ID: u16 = 0x2002;
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let queue = std::rc::Rc::new(UringQueue::new(ipv4_only_queue("sstptord")));
        tokio_uring::start(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let readers: Vec<_> = (0..8)
                .map(|_| {
                    let (queue, tx) = (queue.clone(), tx.clone());
                    tokio_uring::spawn(async move {
                        let mut buf = Vec::with_capacity(2048);
                        loop {
                            buf.clear();
                            let (result, returned) = queue.read(buf).await;
                            buf = returned;
                            result.expect("io_uring read of a TUN queue");
                            // Completion order is the order replies are
                            // seen in.
                            for seq in 0..BATCH {
                                if is_icmpv4_echo_reply(&buf, ID, seq) {
                                    let _ = tx.send(seq);
                                }
                            }
                        }
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            let writes: Vec<_> = (0..BATCH)
                .map(|seq| {
                    let request = icmpv4_echo_request(PEER_ADDR, TUN_ADDR, ID, seq);
                    queue.file().write_at(request, 0).submit()
                })
                .collect();
            for write in writes {
                let (written, _) = write.await;
                written.expect("io_uring write of a TUN queue");
            }
            let mut seen = Vec::new();
            while seen.len() < usize::from(BATCH) {
                match tokio::time::timeout(REPLY_TIMEOUT, rx.recv()).await {
                    Ok(Some(seq)) => seen.push(seq),
                    _ => break,
                }
            }
            readers.iter().for_each(|r| r.abort());
            let expected: Vec<u16> = (0..BATCH).collect();
            assert_eq!(seen, expected, "echo replies out of order or missing");
        });
    });
}

/// A queue with nothing to read does not report readable; a packet routed
/// into the device makes it so, and a read then returns that packet. This
/// is the path a kernel takes that answers `EAGAIN` to an io_uring read on
/// a non-blocking queue.
#[test]
fn an_empty_queue_becomes_readable_when_a_packet_arrives() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let queue = UringQueue::new(ipv4_only_queue("sstptrdy"));
        tokio_uring::start(async move {
            // Whatever the kernel sent when the link came up is drained
            // first (a plain read of a non-blocking queue answers EAGAIN
            // once it is empty).
            let mut buf = [0u8; 2048];
            loop {
                // SAFETY: `buf` is writable for its length.
                let n =
                    unsafe { libc::read(queue.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
                    break;
                }
            }
            // Registering reports the current state; consume it.
            let first =
                tokio::time::timeout(Duration::from_millis(200), queue.wait_readable()).await;
            if let Ok(r) = first {
                r.unwrap();
            }
            let idle =
                tokio::time::timeout(Duration::from_millis(300), queue.wait_readable()).await;
            assert!(idle.is_err(), "an empty queue reported readable");
            let socket = std::net::UdpSocket::bind((TUN_ADDR, 0)).unwrap();
            socket.send_to(PAYLOAD, (PEER_ADDR, 9)).unwrap();
            tokio::time::timeout(REPLY_TIMEOUT, queue.wait_readable())
                .await
                .expect("the queue never became readable")
                .unwrap();
            let (result, packet) = queue.read(Vec::with_capacity(2048)).await;
            let len = result.unwrap();
            assert!(packet[..len].ends_with(PAYLOAD), "not the datagram sent");
        });
    });
}

// ---- Lifecycle, options and errors ----

fn ifindex_of(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: `name` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

#[test]
fn device_disappears_when_the_last_queue_closes() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let mut device = TunDevice::create(&TunOptions::new("sstptgone", 2)).unwrap();
        let index = device.ifindex().unwrap();
        assert_ne!(index, 0);
        assert_eq!(ifindex_of("sstptgone"), index);
        let mut queues = device.take_queues();
        drop(queues.pop());
        // One queue left: the device stays.
        assert_eq!(ifindex_of("sstptgone"), index);
        drop(queues);
        let deadline = Instant::now() + Duration::from_secs(2);
        while ifindex_of("sstptgone") != 0 {
            assert!(Instant::now() < deadline, "device still present");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(matches!(
            device.ifindex(),
            Err(TunError::NoSuchDevice { name }) if name == "sstptgone"
        ));
    });
}

#[test]
fn name_template_is_resolved_by_the_kernel() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let first = TunDevice::create(&TunOptions::new("sstpq%d", 2)).unwrap();
        let second = TunDevice::create(&TunOptions::new("sstpq%d", 1)).unwrap();
        assert_eq!(first.name(), "sstpq0");
        assert_eq!(second.name(), "sstpq1");
        // Both queues of the first joined the same device.
        assert_eq!(first.queues().len(), 2);
        assert_eq!(ifindex_of("sstpq0"), first.ifindex().unwrap());
    });
}

#[test]
fn an_existing_interface_name_is_reported_in_use() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let _first = TunDevice::create(&TunOptions::new("sstptbusy", 1)).unwrap();
        let error = TunDevice::create(&TunOptions::new("sstptbusy", 2)).unwrap_err();
        assert!(
            matches!(&error, TunError::NameInUse { name } if name == "sstptbusy"),
            "{error:?}"
        );
        // Not a TUN device at all.
        let error = TunDevice::create(&TunOptions::new("lo", 1)).unwrap_err();
        assert_eq!(error.as_str(), "name_in_use");
    });
}

#[test]
fn napi_and_vnet_hdr_options_reach_the_kernel() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let options = TunOptions {
            napi: true,
            vnet_hdr: true,
            ..TunOptions::new("sstptnapi", 2)
        };
        let device = TunDevice::create(&options).unwrap();
        let flags = device.flags().unwrap().unwrap();
        assert!(flags.napi && flags.vnet_hdr && flags.multi_queue && flags.no_packet_info);
    });
}

#[test]
fn rejected_configuration_is_typed() {
    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        let device = TunDevice::create(&TunOptions::new("sstptbad", 1)).unwrap();
        // TUN's minimum MTU is 68 (IPv4's minimum).
        assert!(matches!(
            device.set_mtu(67),
            Err(TunError::InvalidMtu { mtu: 67 })
        ));
        assert!(matches!(
            device.set_mtu(u32::MAX),
            Err(TunError::InvalidMtu { .. })
        ));
        assert!(matches!(
            device.set_ipv4(TUN_ADDR, 33),
            Err(TunError::InvalidPrefixLength { prefix_len: 33 })
        ));
        assert!(matches!(
            device.add_ipv6(TUN_ADDR6, 0),
            Err(TunError::InvalidPrefixLength { prefix_len: 0 })
        ));
        // IPv6 switched off for the device (the thread's /proc/sys/net is
        // the namespace's).
        std::fs::write("/proc/sys/net/ipv6/conf/sstptbad/disable_ipv6", "1").unwrap();
        let error = device.add_ipv6(TUN_ADDR6, 64).unwrap_err();
        assert!(matches!(error, TunError::Ipv6Unavailable), "{error:?}");
    });
}

#[test]
fn creating_without_cap_net_admin_names_the_capability() {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

    let ns = NetNs::new(PREFIX).unwrap();
    ns.run(|| {
        // Capabilities are per thread: this drops them only for the
        // namespace thread, which ends with the closure.
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let empty = [CapData::default(); 2];
        // SAFETY: capset(2) reads a v3 header and two data structs.
        let result = unsafe { libc::syscall(libc::SYS_capset, &mut header, empty.as_ptr()) };
        assert_eq!(result, 0, "capset: {}", std::io::Error::last_os_error());

        let error = TunDevice::create(&TunOptions::new("sstptcap", 1)).unwrap_err();
        assert!(
            matches!(error, TunError::NeedsCapNetAdmin { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("CAP_NET_ADMIN"));
    });
}
