//! Tun mode: each session behind a TUN device of its own, so that the
//! kernel's TCP and UDP (iperf3, a browser, ...) run through the tunnel,
//! as they do between a Windows client and its server.
//!
//! Once IPCP has assigned the session its address, the device gets it as
//! a /32 with the server's address at the far end of the point-to-point
//! link ([RFC 1332] 3.3 and 3.4: ours, and the gateway the server
//! announced), the MTU of the server's MRU, and goes up. A source rule
//! (`ip rule add from ADDRESS lookup TABLE`, one table per session with a
//! default route through the device) makes a socket bound to the tunnel
//! address leave through its own tunnel when several share one gateway.
//!
//! Packets flow both ways without unbounded buffering:
//!
//! * **up**: one io_uring read at a time on the device, each packet handed
//!   to the session ([`Client::send_ip`]); while the session's plaintext
//!   queue is above [`SEND_QUEUE`] the device is not read, so the kernel's
//!   TCP sees the tunnel's pace through the device's own queue (its
//!   `txqueuelen`), as on a real link;
//! * **down**: the session's packets go into a bounded [`PacketQueue`]
//!   ([`DEVICE_QUEUE`] packets) that a writer task submits to the device
//!   in batches; a full queue drops the packet and counts it.
//!
//! Where the kernel takes it, the device has segmentation offload, as
//! sstpd's does (`IFF_VNET_HDR` with TSO, and USO where offered): the
//! kernel's TCP hands over super-packets of up to 64 KiB, which sstpd's
//! [`Segmenter`] cuts to the session's MTU, and each batch for the device
//! goes through sstpd's [`Coalescer`], so consecutive segments of a flow
//! reach the kernel as one super-packet. Without it the load generator
//! paid a device read per packet and the kernel's TCP receive per packet
//! in its own writes, and it, not the server, set the pace of `tcp_up`
//! and `tcp_down`. Where the kernel refuses, the device is made again
//! without the header and every packet goes alone.
//!
//! At the end the session closes gracefully, the rule is removed and the
//! device taken down; it disappears when the worker's runtime ends and
//! cancels the read still parked on it (the device is not persistent).
//!
//! [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use sstpd::client::{Client, ClientSendError};
use sstpd::tun::offload::{
    CoalesceLimits, Coalescer, Segmenter, Split, VirtioNetHdr, MAX_PACKET_LEN, VIRTIO_NET_HDR_LEN,
};
use sstpd::tun::{queue_is_lost, PacketQueue, TunDevice, TunOffloads, TunOptions};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::Worker;
use crate::report::Tunnel;
use crate::stats::count_reason;

/// Plaintext queued in the session above which the device is not read.
pub const SEND_QUEUE: usize = 128 * 1024;
/// Packets from the server waiting for the device, at most.
pub const DEVICE_QUEUE: usize = 1024;
/// Reads kept in flight on each device: one read at a time waits for a
/// wakeup per packet, and the kernel's TCP outruns it.
const READS_IN_FLIGHT: usize = 4;
/// Packets submitted to the device per batch.
const BATCH: usize = 64;
/// The routing table of session `i` is `FIRST_TABLE + i`.
pub const FIRST_TABLE: u64 = 20_000;
/// Priority of the source rules (before the main table's 32766).
pub const RULE_PRIORITY: u32 = 10_000;
/// Why a session that came up was dropped at once: its device could not
/// be created or configured.
pub const TUN_SETUP_FAILED: &str = "tun_setup_failed";
/// Packets the kernel queues for the device before it drops (its
/// default, 500, is 0.7 MB of 1,400-byte packets: TCP through the tunnel
/// lost packets there while the session caught up).
const TXQUEUELEN: &str = "4096";
/// Pause after a failed device read.
const READ_RETRY: Duration = Duration::from_millis(10);
/// Largest packet a device read may return (with the offload, its
/// virtio-net header too).
const READ_BUFFER: usize = VIRTIO_NET_HDR_LEN + MAX_PACKET_LEN;

/// The session's side of its device: the queue toward it, shared with
/// the session's packet handler.
struct DevicePath {
    queue: RefCell<PacketQueue>,
    wake: Notify,
    /// The device is configured: the writer may run.
    ready: Cell<bool>,
}

impl Worker {
    /// Queues a packet from the server for the device (or drops it).
    fn to_device(&self, path: &DevicePath, packet: &[u8]) {
        if path.queue.borrow_mut().push(packet) {
            path.wake.notify_one();
        } else {
            self.counters().tun_down_dropped += 1;
        }
    }

    fn in_window(&self) -> bool {
        self.go.get().is_some() && !self.stopped.get()
    }
}

/// A configured device with its source rule.
struct Device {
    tun: TunDevice,
    info: Tunnel,
    table: u64,
    rule: bool,
}

impl Device {
    /// Creates and configures the device of session `index`; its queue
    /// descriptor comes with it.
    fn open(
        name: &str,
        index: u64,
        client: &Client,
        address6: Option<Ipv6Addr>,
    ) -> Result<(Device, File, Option<TunOffloads>), String> {
        let params = client
            .ipv4()
            .ok_or_else(|| "no IPv4 address assigned".to_string())?;
        let mtu = u32::from(client.transmit_mtu());
        let (mut tun, offloads) = create_device(name)?;
        let queue = tun
            .take_queues()
            .pop()
            .ok_or_else(|| "the device has no queue".to_string())?;
        let sysctl = |key: &str, value: &str| {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/{key}"), value);
        };
        if address6.is_some() {
            // The session did SLAAC already: the kernel is to use its
            // addresses, not make its own (a link-local of its own would
            // be a spoofed source to the server), nor solicit or probe.
            sysctl("addr_gen_mode", "1");
            sysctl("accept_ra", "0");
            sysctl("dad_transmits", "0");
        } else {
            // IPv4 only: IPv6 would make the kernel send router
            // solicitations into a tunnel without IPv6.
            sysctl("disable_ipv6", "1");
        }
        let configure = || -> Result<(), sstpd::tun::TunError> {
            tun.set_mtu(mtu)?;
            tun.set_ipv4(params.local, 32)?;
            if params.peer != Ipv4Addr::UNSPECIFIED {
                tun.set_ipv4_peer(params.peer)?;
            }
            tun.set_up(true)
        };
        configure().map_err(|e| e.to_string())?;
        let mut device = Device {
            tun,
            info: Tunnel {
                session: index,
                ifname: name.to_string(),
                address: params.local.to_string(),
                gateway: params.peer.to_string(),
                mtu,
                address6: None,
                offload: offloads.map(|o| if o.uso { "tso+uso" } else { "tso" }.to_string()),
            },
            table: FIRST_TABLE + index,
            rule: false,
        };
        let table = device.table.to_string();
        ip(&["link", "set", "dev", name, "txqueuelen", TXQUEUELEN])?;
        ip(&["route", "replace", "default", "dev", name, "table", &table])?;
        ip(&rule_args("add", params.local.into(), &table))?;
        device.rule = true;
        if let (Some(global), Some(link_local)) = (address6, client.ipv6_link_local()) {
            for address in [link_local, global] {
                ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{address}/64"),
                    "dev",
                    name,
                    "nodad",
                ])?;
            }
            ip(&[
                "-6", "route", "replace", "default", "dev", name, "table", &table,
            ])?;
            ip(&rule_args("add", global.into(), &table))?;
            device.info.address6 = Some(global.to_string());
        }
        Ok((device, queue, offloads))
    }

    /// Removes the rule and takes the device down.
    fn close(&mut self) {
        if self.rule {
            let table = self.table.to_string();
            let addresses = [Some(&self.info.address), self.info.address6.as_ref()];
            for address in addresses.into_iter().flatten() {
                if let Ok(local) = address.parse() {
                    let _ = ip(&rule_args("del", local, &table));
                }
            }
            self.rule = false;
        }
        let _ = self.tun.set_up(false);
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.close();
    }
}

/// The device with segmentation offload if the kernel takes it, else
/// without the virtio-net header.
fn create_device(name: &str) -> Result<(TunDevice, Option<TunOffloads>), String> {
    let mut options = TunOptions::new(name, 1);
    options.vnet_hdr = true;
    if let Ok(tun) = TunDevice::create(&options) {
        if let Ok(offloads) = tun.set_offloads(true) {
            return Ok((tun, Some(offloads)));
        }
    }
    options.vnet_hdr = false;
    let tun = TunDevice::create(&options).map_err(|e| e.to_string())?;
    Ok((tun, None))
}

fn rule_args(verb: &str, local: IpAddr, table: &str) -> Vec<String> {
    let (family, host) = match local {
        IpAddr::V4(_) => ("-4", 32),
        IpAddr::V6(_) => ("-6", 128),
    };
    [
        family,
        "rule",
        verb,
        "from",
        &format!("{local}/{host}"),
        "lookup",
        table,
        "priority",
        &RULE_PRIORITY.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs `ip ARGS` (iproute2), for the source rules and their tables.
fn ip<S: AsRef<str>>(args: &[S]) -> Result<(), String> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let output = Command::new("ip")
        .args(&args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// One session in tun mode: connect, set its device up, carry packets
/// until the window ends, close.
pub(super) async fn session(
    w: Rc<Worker>,
    index: u64,
    name: String,
    setup_permit: Option<OwnedSemaphorePermit>,
) {
    let path = Rc::new(DevicePath {
        queue: RefCell::new(PacketQueue::new(1500, DEVICE_QUEUE, BATCH * 2)),
        wake: Notify::new(),
        ready: Cell::new(false),
    });
    let handler = {
        let w = w.clone();
        let path = path.clone();
        Box::new(move |packet: &[u8]| w.to_device(&path, packet))
    };
    let client = w.connect_with(index, index, handler).await;
    // IPv6: the address by SLAAC before the device is configured with it.
    let address6 = match &client {
        Some(client) if w.config.family.v6() => {
            client.autoconfigure_ipv6(w.config.setup_timeout).await
        }
        _ => None,
    };
    let opened = client.as_ref().map(|c| {
        if w.config.family.v6() && address6.is_none() {
            return Err(format!(
                "{}: no IPv6 prefix advertised",
                super::session::NO_IPV6_PREFIX
            ));
        }
        Device::open(&name, index, c, address6)
    });
    if let Some(Ok((d, _, _))) = &opened {
        eprintln!(
            "tunnel {} {} -> {} mtu {} (session {index})",
            d.info.ifname, d.info.address, d.info.gateway, d.info.mtu
        );
        w.stats.borrow_mut().tunnels.push(d.info.clone());
    }
    drop(setup_permit);
    w.shared.setup_finished();
    let Some(client) = client else { return };
    let (mut device, queue, offloads) = match opened {
        Some(Ok(opened)) => opened,
        Some(Err(e)) => {
            // The session is up but carries nothing: a drop, with the
            // reason on standard error.
            eprintln!("tunnel {name} (session {index}) could not be set up: {e}");
            {
                let mut stats = w.stats.borrow_mut();
                stats.counters.dropped += 1;
                count_reason(&mut stats.drop_reasons, TUN_SETUP_FAILED);
            }
            client.close(w.config.close_timeout).await;
            return;
        }
        None => return,
    };

    let file = Rc::new(sstpd::tun::UringQueue::new(queue));
    path.ready.set(true);
    path.wake.notify_one();
    // Neither task is awaited: a read parked on the device ends when the
    // worker's runtime does.
    for _ in 0..READS_IN_FLIGHT {
        tokio_uring::spawn(read_device(
            w.clone(),
            client.clone(),
            file.clone(),
            offloads.is_some(),
        ));
    }
    let coalescer = offloads.map(|offloads| {
        Coalescer::new(CoalesceLimits {
            udp: offloads.uso,
            ..CoalesceLimits::default()
        })
    });
    tokio_uring::spawn(write_device(w.clone(), path.clone(), file, coalescer));

    super::session::until_closed(&client, w.wait_stopped()).await;
    if client.is_closed() {
        w.dropped(&client);
        device.close();
        return;
    }
    w.counters().held += 1;
    w.close(&client).await;
    device.close();
}

/// Device → session, one read at a time, not while the session's queue
/// is full; with the offload a super-packet is cut to the session's MTU.
async fn read_device(
    w: Rc<Worker>,
    client: Client,
    file: Rc<sstpd::tun::UringQueue>,
    offload: bool,
) {
    let mut buf = Vec::with_capacity(READ_BUFFER);
    loop {
        client.writable(SEND_QUEUE).await;
        if client.is_closed() {
            return;
        }
        buf.clear();
        let (result, returned) = file.read(buf).await;
        buf = returned;
        if client.is_closed() {
            return;
        }
        match result {
            Ok(0) => {}
            Ok(n) if !offload => to_session(&w, &client, &buf[..n], &[]),
            Ok(n) => {
                let Ok(header) = VirtioNetHdr::decode(&buf[..n]) else {
                    w.counters().tun_read_errors += 1;
                    continue;
                };
                let segmenter = Segmenter {
                    max_packet_len: usize::from(client.transmit_mtu()),
                    headroom: 0,
                };
                let packet = &mut buf[VIRTIO_NET_HDR_LEN..n];
                // Each segment in two pieces (headers, payload in `buf`),
                // copied once, into the session's plaintext.
                let split = segmenter.for_each_segment(&header, packet, |headers, payload| {
                    to_session(&w, &client, headers, payload);
                });
                match split {
                    Ok(Split::Whole) => to_session(&w, &client, packet, &[]),
                    Ok(Split::Segments(_)) => {}
                    Err(_) => w.counters().tun_read_errors += 1,
                }
            }
            Err(e) => {
                w.counters().tun_read_errors += 1;
                if queue_is_lost(&e) {
                    return;
                }
                tokio::time::sleep(READ_RETRY).await;
            }
        }
    }
}

/// One packet from the device to the server (`head` then `rest`),
/// counted.
fn to_session(w: &Worker, client: &Client, head: &[u8], rest: &[u8]) {
    match client.send_ip_gathered(head, rest) {
        Ok(()) => {
            if w.in_window() {
                let mut c = w.counters();
                c.up_packets += 1;
                c.up_bytes += (head.len() + rest.len()) as u64;
            }
        }
        Err(ClientSendError::Backpressure | ClientSendError::Protocol(_)) => {
            w.counters().tun_up_dropped += 1;
        }
    }
}

/// Session → device: what the handler queued, a batch of writes at a
/// time; with the offload, each batch merged by the coalescer first.
async fn write_device(
    w: Rc<Worker>,
    path: Rc<DevicePath>,
    file: Rc<sstpd::tun::UringQueue>,
    mut coalescer: Option<Coalescer>,
) {
    // Buffers the coalescer's frames move out into, and come back to.
    let mut spare: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut batch = if path.ready.get() {
            path.queue.borrow_mut().take_batch(BATCH)
        } else {
            Vec::new()
        };
        if batch.is_empty() {
            path.wake.notified().await;
            continue;
        }
        if let Some(coalescer) = &mut coalescer {
            // Counted as they go in: a write may carry many.
            let counted = w.in_window();
            let packets = std::mem::take(&mut batch);
            for packet in packets {
                let mut pushed = coalescer.push(&packet).is_ok();
                if !pushed {
                    drain_frames(coalescer, &mut batch, &mut spare);
                    pushed = coalescer.push(&packet).is_ok();
                }
                let mut c = w.counters();
                if !pushed {
                    c.tun_down_dropped += 1;
                } else if counted {
                    c.down_packets += 1;
                    c.down_bytes += packet.len() as u64;
                }
                drop(c);
                path.queue.borrow_mut().recycle(packet);
            }
            drain_frames(coalescer, &mut batch, &mut spare);
        }
        // Each write's SQE is pushed as it is created: the kernel sees the
        // batch in one submission.
        let writes: Vec<_> = batch
            .into_iter()
            .map(|buf| file.file().write_at(buf, 0).submit())
            .collect();
        for write in writes {
            let (result, buf) = write.await;
            match result {
                Ok(n) if coalescer.is_none() => {
                    if w.in_window() {
                        let mut c = w.counters();
                        c.down_packets += 1;
                        c.down_bytes += n as u64;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    w.counters().tun_write_errors += 1;
                    if queue_is_lost(&e) {
                        return;
                    }
                }
            }
            if coalescer.is_some() {
                spare.push(buf);
            } else {
                path.queue.borrow_mut().recycle(buf);
            }
        }
    }
}

/// Moves the coalescer's frames (virtio-net header, then packet) into
/// `frames`, swapping in spare buffers for the coalescer to fill next.
fn drain_frames(coalescer: &mut Coalescer, frames: &mut Vec<Vec<u8>>, spare: &mut Vec<Vec<u8>>) {
    coalescer.drain_buffers(|frame| {
        let mut buf = spare.pop().unwrap_or_default();
        std::mem::swap(&mut buf, frame);
        frames.push(buf);
    });
}
