//! `sstp-loadgen peer`: the server-side end of the traffic modes. It runs
//! next to the SSTP server (for instance in the server's network
//! namespace), listening on a UDP port that clients reach through their
//! tunnels, and speaks the protocol of [`crate::packet`]:
//!
//! * [`Kind::Echo`]: reflected to the sender with the kind changed to
//!   [`Kind::EchoReply`] (udp mode);
//! * [`Kind::Discard`]: counted, nothing sent (bulk upstream);
//! * [`Kind::StreamStart`]: the peer streams [`Kind::StreamData`]
//!   datagrams to the sender at the requested rate (or as fast as it can)
//!   for the requested time; a second request for the same flow changes
//!   the stream's rate, length and size from then on, its sequence going
//!   on (how `--follow` steers it); [`Kind::StreamStop`] ends it (bulk
//!   downstream);
//! * [`Kind::StatsRequest`]: answered with [`Kind::StatsReply`] carrying
//!   the flow's counters ([`FlowStats`]), so the client can compare what
//!   it sent with what arrived.
//!
//! Like a modern UDP stack (QUIC's), the peer moves datagrams in batches
//! through `quinn-udp`: it reads with `UDP_GRO`, so a run of datagrams
//! that arrives as one super-packet (sstpd coalesces what a client sends
//! when its TUN device takes UDP segmentation offload) is one read, split
//! here by its segment size; it streams with `UDP_SEGMENT`, up to
//! [`STREAM_SEGMENTS`] datagrams per send, and a rate-limited stream in
//! batches that keep it under [`PACED_SENDS_PER_S`] sends a second, timed
//! with `ppoll`'s nanoseconds. Without this the kernel splits
//! every super-packet while delivering it, in the context of whoever
//! wrote it to the TUN device: sstpd would be charged for the peer's
//! socket. `--no-udp-offload` turns both off (one datagram per call).
//!
//! Counters are kept per flow (the header's flow id, random per session
//! and run), not per address: tunnel addresses are reused across runs.
//! Several threads share the port with `SO_REUSEPORT`; the kernel sends a
//! given source address and port to the same thread, so a flow's counters
//! and its stats requests meet.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::packet::{
    FlowStats, Header, Kind, StreamRequest, FLOW_STATS_LEN, HEADER_LEN, IPV4_UDP_OVERHEAD,
    IPV6_UDP_OVERHEAD,
};

/// Longest stream a client may ask for.
pub const MAX_STREAM: Duration = Duration::from_secs(3600);
/// Flows silent for this long are forgotten.
const FLOW_IDLE: Duration = Duration::from_secs(300);
/// Datagrams sent per stream before the loop looks at incoming traffic.
const STREAM_BURST: u64 = 128;
/// Sends per second a rate-limited stream makes at most: faster streams
/// send several datagrams at a time.
pub const PACED_SENDS_PER_S: u64 = 20_000;
/// Datagrams read per turn before streams get their turn.
const RECEIVE_BURST: usize = 256;
/// Datagrams per `UDP_SEGMENT` send at most (the kernel's
/// `UDP_MAX_SEGMENTS` is 64 on older kernels, 128 on newer).
pub const STREAM_SEGMENTS: usize = 64;
/// Reads in flight per `recvmmsg` call, each as large as a super-packet.
const RECEIVE_BATCH: usize = 8;
/// One receive buffer: the largest UDP payload, which bounds a GRO
/// super-packet too.
const RECEIVE_BUFFER: usize = 65536;

/// How to run the peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub bind: SocketAddr,
    /// Threads sharing the port (`SO_REUSEPORT`).
    pub threads: usize,
    /// Flows tracked at most; traffic of further flows is still reflected
    /// or discarded, but not counted per flow.
    pub max_flows: usize,
    /// Read with `UDP_GRO` and stream with `UDP_SEGMENT` where the kernel
    /// offers them (see the module doc).
    pub udp_offload: bool,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            bind: SocketAddr::from((
                std::net::Ipv6Addr::UNSPECIFIED,
                crate::config::DEFAULT_PEER_PORT,
            )),
            threads: 1,
            max_flows: 1 << 20,
            udp_offload: true,
        }
    }
}

/// Totals over all flows and threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerTotals {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub streams_started: u64,
    /// Requests that changed a running stream (its rate, length or size).
    pub streams_changed: u64,
    pub stats_answered: u64,
    /// Datagrams without a valid header.
    pub invalid: u64,
    /// Sends the kernel refused (buffer full: the datagram is lost).
    pub send_errors: u64,
    /// Reads that carried more than one datagram (`UDP_GRO`).
    pub rx_super_packets: u64,
    /// Sends that carried more than one datagram (`UDP_SEGMENT`).
    pub tx_super_packets: u64,
}

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    streams_started: AtomicU64,
    streams_changed: AtomicU64,
    stats_answered: AtomicU64,
    invalid: AtomicU64,
    send_errors: AtomicU64,
    rx_super_packets: AtomicU64,
    tx_super_packets: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> PeerTotals {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PeerTotals {
            rx_packets: g(&self.rx_packets),
            rx_bytes: g(&self.rx_bytes),
            tx_packets: g(&self.tx_packets),
            tx_bytes: g(&self.tx_bytes),
            streams_started: g(&self.streams_started),
            streams_changed: g(&self.streams_changed),
            stats_answered: g(&self.stats_answered),
            invalid: g(&self.invalid),
            send_errors: g(&self.send_errors),
            rx_super_packets: g(&self.rx_super_packets),
            tx_super_packets: g(&self.tx_super_packets),
        }
    }
}

/// A running peer; stopped on drop.
pub struct Peer {
    local_addr: SocketAddr,
    max_segments: usize,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Binds the port and starts the threads (which inherit the calling
    /// thread's network namespace).
    pub fn start(config: &PeerConfig) -> io::Result<Peer> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mut bound = config.bind;
        let mut sockets = Vec::new();
        for _ in 0..config.threads.max(1) {
            let socket = reuseport_udp(bound)?;
            bound = socket.local_addr()?;
            sockets.push(socket);
        }
        let mut max_segments = STREAM_SEGMENTS;
        let tables: FlowTables = Arc::new(
            (0..sockets.len())
                .map(|_| std::sync::Mutex::new(HashMap::new()))
                .collect(),
        );
        let threads = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let stop = stop.clone();
                let counters = counters.clone();
                let max_flows = config.max_flows;
                let io = PeerSocket::new(socket, config.udp_offload)?;
                max_segments = max_segments.min(io.max_segments());
                thread::Builder::new().name(format!("peer-{i}")).spawn({
                    let tables = tables.clone();
                    move || PeerLoop::new(io, counters, (tables, i), max_flows).run(&stop)
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Peer {
            local_addr: bound,
            max_segments,
            stop,
            counters,
            threads,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Datagrams one stream send carries at most (1: no `UDP_SEGMENT`).
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    pub fn totals(&self) -> PeerTotals {
        self.counters.snapshot()
    }

    /// A flag that stops the peer when set (signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Waits until the stop flag is set.
    pub fn wait(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the threads and returns the totals.
    pub fn stop(mut self) -> PeerTotals {
        self.shutdown();
        self.totals()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn reuseport_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // `[::]` serves IPv4 clients too (as v4-mapped addresses),
        // whatever the host's `bindv6only`.
        socket.set_only_v6(false)?;
    }
    // Bulk downstream and many reflecting sessions: big buffers.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One flow table per peer thread, shared for stats requests.
type FlowTables = Arc<Vec<std::sync::Mutex<HashMap<u32, Flow>>>>;

/// A flow table (counters stay usable after a panicking thread).
fn lock(
    table: &std::sync::Mutex<HashMap<u32, Flow>>,
) -> std::sync::MutexGuard<'_, HashMap<u32, Flow>> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Flow {
    stats: FlowStats,
    last_seen: Option<Instant>,
    /// The sequence number a new stream of this flow starts at: where its
    /// last one ended. A request that reaches the peer after the stream
    /// it meant to change has ended (the client's last `--follow` request
    /// of a run, late in a loaded tunnel) starts a new one, and a sequence
    /// from 0 again would read as reordering at the client.
    next_stream_seq: u64,
}

/// One stream of [`Kind::StreamData`] to a client.
struct Stream {
    to: SocketAddr,
    flow: u32,
    /// Datagram buffer: header (re-stamped per send), then padding.
    datagram: Vec<u8>,
    pps: u64,
    /// Destination ports cycled through (1: one flow).
    flows: u16,
    /// When the current rate took effect, and `sent` then: the schedule
    /// counts from there.
    start: Instant,
    sent_at_start: u64,
    end: Instant,
    sent: u64,
}

impl Stream {
    /// When the next datagram is due (rate-limited streams): datagram `k`
    /// at `k / pps` seconds, rounded up to the nanosecond so that
    /// `due() <= now` exactly when [`Stream::due_count`] is at least one.
    /// (Rounded down, at a rate that does not divide 10⁹, the datagram was
    /// due a fraction of a nanosecond before it was owed: the loop sent
    /// empty batches, as zero-length datagrams, until the socket was full.)
    fn due(&self) -> Instant {
        self.due_after(1)
    }

    /// When the `n`th datagram from now (`n >= 1`) is due.
    fn due_after(&self, n: u64) -> Instant {
        if self.pps == 0 {
            return self.start;
        }
        let k = u128::from(self.sent - self.sent_at_start + n.max(1) - 1);
        let nanos = (k * 1_000_000_000).div_ceil(u128::from(self.pps));
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When the next send of `batch` datagrams is due: when the batch's
    /// last one is, except that the last batch before the stream's end
    /// goes when its first one is (waiting for the whole batch, the rest
    /// would never be sent).
    fn next_send(&self, batch: u64) -> Instant {
        let whole = self.due_after(batch);
        if whole >= self.end {
            self.due()
        } else {
            whole
        }
    }

    /// How many datagrams are due at `now` (unlimited streams: any number).
    fn due_count(&self, now: Instant) -> u64 {
        if self.pps == 0 {
            return u64::MAX;
        }
        let elapsed = now.duration_since(self.start).as_nanos();
        let owed = elapsed * u128::from(self.pps) / 1_000_000_000 + 1;
        let sent = u128::from(self.sent - self.sent_at_start);
        u64::try_from(owed.saturating_sub(sent)).unwrap_or(u64::MAX)
    }
}

/// The peer's socket and how it batches: through `quinn-udp` with
/// `UDP_GRO`/`UDP_SEGMENT`, or one datagram per call.
struct PeerSocket {
    socket: UdpSocket,
    /// `None`: one datagram per `recv_from`/`send_to`.
    offload: Option<quinn_udp::UdpSocketState>,
}

impl PeerSocket {
    fn new(socket: UdpSocket, udp_offload: bool) -> io::Result<PeerSocket> {
        let offload = if udp_offload {
            Some(quinn_udp::UdpSocketState::new((&socket).into())?)
        } else {
            None
        };
        Ok(PeerSocket { socket, offload })
    }

    /// Datagrams one send may carry.
    fn max_segments(&self) -> usize {
        self.offload.as_ref().map_or(1, |state| {
            state.max_gso_segments().clamp(1, STREAM_SEGMENTS)
        })
    }

    /// Sends `contents`: one datagram, or `contents.len() / segment`
    /// datagrams of `segment` octets (the last may be shorter).
    fn send(&self, contents: &[u8], segment: usize, to: SocketAddr) -> io::Result<()> {
        match &self.offload {
            Some(state) => state.try_send(
                (&self.socket).into(),
                &quinn_udp::Transmit {
                    destination: to,
                    ecn: None,
                    contents,
                    segment_size: (contents.len() > segment).then_some(segment),
                    src_ip: None,
                },
            ),
            None => self.socket.send_to(contents, to).map(drop),
        }
    }

    /// Reads what is waiting into `buffers`, filling `meta`; returns how
    /// many entries are filled. Each is one datagram or a GRO run of
    /// `stride`-octet datagrams.
    fn recv(&self, buffers: &mut [Vec<u8>], meta: &mut [quinn_udp::RecvMeta]) -> io::Result<usize> {
        match &self.offload {
            Some(state) => {
                let mut slices: Vec<io::IoSliceMut<'_>> =
                    buffers.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
                state.recv((&self.socket).into(), &mut slices, meta)
            }
            None => {
                let (len, addr) = self.socket.recv_from(&mut buffers[0])?;
                let m = &mut meta[0];
                m.addr = addr;
                m.len = len;
                m.stride = len;
                Ok(1)
            }
        }
    }
}

struct PeerLoop {
    io: PeerSocket,
    counters: Arc<Counters>,
    /// Every thread's flow table; this thread writes `tables[me]` only.
    /// A flow whose datagrams come from several source ports (`--flows`)
    /// reaches several threads, so a stats request sums all tables.
    tables: FlowTables,
    me: usize,
    max_flows: usize,
    streams: Vec<Stream>,
    epoch: Instant,
    last_gc: Instant,
    buffers: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
    /// Datagrams of one stream send, back to back.
    batch: Vec<u8>,
    reply: [u8; HEADER_LEN + FLOW_STATS_LEN],
}

impl PeerLoop {
    fn new(
        io: PeerSocket,
        counters: Arc<Counters>,
        (tables, me): (FlowTables, usize),
        max_flows: usize,
    ) -> PeerLoop {
        let now = Instant::now();
        let reads = if io.offload.is_some() {
            RECEIVE_BATCH
        } else {
            1
        };
        PeerLoop {
            io,
            counters,
            tables,
            me,
            max_flows,
            streams: Vec::new(),
            epoch: now,
            last_gc: now,
            buffers: vec![vec![0; RECEIVE_BUFFER]; reads],
            meta: vec![quinn_udp::RecvMeta::default(); reads],
            batch: Vec::new(),
            reply: [0; HEADER_LEN + FLOW_STATS_LEN],
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let received = self.receive_burst();
            let now = Instant::now();
            let next_due = self.pump_streams(now);
            if now.duration_since(self.last_gc) > Duration::from_secs(10) {
                self.gc(now);
            }
            if received == 0 {
                // Sleep until traffic arrives or a stream is due (at most
                // 50 ms, to notice the stop flag).
                let wait = next_due
                    .map(|due| due.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_millis(50))
                    .min(Duration::from_millis(50));
                if !wait.is_zero() {
                    wait_readable(&self.io.socket, wait);
                }
            }
        }
    }

    fn receive_burst(&mut self) -> usize {
        let mut n = 0;
        let mut buffers = std::mem::take(&mut self.buffers);
        let mut meta = std::mem::take(&mut self.meta);
        while n < RECEIVE_BURST {
            let filled = match self.io.recv(&mut buffers, &mut meta) {
                Ok(filled) => filled,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from earlier sends (port unreachable): ignore.
                Err(_) => continue,
            };
            for (buffer, m) in buffers.iter_mut().zip(&meta).take(filled) {
                let stride = m.stride.max(1);
                if m.len > stride {
                    Counters::add(&self.counters.rx_super_packets, 1);
                }
                for datagram in buffer[..m.len].chunks_mut(stride) {
                    n += 1;
                    self.handle(datagram, m.addr);
                }
            }
        }
        self.buffers = buffers;
        self.meta = meta;
        n
    }

    /// Marks `flow` seen (creating it if the table has room) and applies
    /// `update` to its counters.
    fn touch_flow(&self, flow: u32, now: Instant, update: impl FnOnce(&mut FlowStats)) {
        let mut flows = self.own_flows();
        if !flows.contains_key(&flow) && flows.len() >= self.max_flows {
            return;
        }
        let entry = flows.entry(flow).or_default();
        entry.last_seen = Some(now);
        update(&mut entry.stats);
    }

    /// Applies `update` to a flow this thread already tracks.
    fn count_flow(&self, flow: u32, update: impl FnOnce(&mut FlowStats)) {
        if let Some(f) = self.own_flows().get_mut(&flow) {
            update(&mut f.stats);
        }
    }

    fn own_flows(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Flow>> {
        lock(&self.tables[self.me])
    }

    /// A flow's counters summed over every thread's table.
    fn flow_stats(&self, flow: u32) -> FlowStats {
        let mut sum = FlowStats::default();
        for table in self.tables.iter() {
            if let Some(f) = lock(table).get(&flow) {
                sum.rx_packets += f.stats.rx_packets;
                sum.rx_bytes += f.stats.rx_bytes;
                sum.tx_packets += f.stats.tx_packets;
                sum.tx_bytes += f.stats.tx_bytes;
            }
        }
        sum
    }

    /// Answers `datagram`, from `from`.
    fn handle(&mut self, datagram: &mut [u8], from: SocketAddr) {
        let ip_bytes = ip_bytes(datagram.len(), from);
        let Some((header, body)) = Header::parse(datagram) else {
            Counters::add(&self.counters.invalid, 1);
            return;
        };
        let stream_request = StreamRequest::parse(body);
        let now = Instant::now();
        // Data is counted; requests are not, so a flow's counters compare
        // directly with what the client sent and received as data.
        if matches!(header.kind, Kind::Echo | Kind::Discard) {
            Counters::add(&self.counters.rx_packets, 1);
            Counters::add(&self.counters.rx_bytes, ip_bytes);
            self.touch_flow(header.flow, now, |stats| {
                stats.rx_packets += 1;
                stats.rx_bytes += ip_bytes;
            });
        } else {
            // Requests keep the flow alive (and create it).
            self.touch_flow(header.flow, now, |_| {});
        }
        match header.kind {
            Kind::Echo => {
                datagram[4] = Kind::EchoReply as u8;
                if self.send(datagram, from, header.flow) {
                    Counters::add(&self.counters.tx_packets, 1);
                }
            }
            Kind::StreamStart => {
                if let Some(request) = stream_request {
                    self.start_stream(header.flow, from, request, now);
                } else {
                    Counters::add(&self.counters.invalid, 1);
                }
            }
            Kind::StreamStop => {
                let stopped = |s: &Stream| s.flow == header.flow && s.to == from;
                while let Some(i) = self.streams.iter().position(stopped) {
                    self.end_stream(i);
                }
            }
            Kind::StatsRequest => {
                let stats = self.flow_stats(header.flow);
                let mut reply_header = Header::new(Kind::StatsReply, header.flow);
                reply_header.seq = header.seq;
                reply_header.timestamp_ns = header.timestamp_ns;
                reply_header.write(&mut self.reply);
                stats.write(&mut self.reply[HEADER_LEN..]);
                if self.io.send(&self.reply, self.reply.len(), from).is_ok() {
                    Counters::add(&self.counters.stats_answered, 1);
                }
            }
            Kind::Discard | Kind::EchoReply | Kind::StreamData | Kind::StatsReply => {}
        }
    }

    /// Sends `datagram` to `to`, counting it for `flow`.
    fn send(&mut self, datagram: &[u8], to: SocketAddr, flow: u32) -> bool {
        match self.io.send(datagram, datagram.len(), to) {
            Ok(_) => {
                let bytes = ip_bytes(datagram.len(), to);
                Counters::add(&self.counters.tx_bytes, bytes);
                self.count_flow(flow, |stats| {
                    stats.tx_packets += 1;
                    stats.tx_bytes += bytes;
                });
                true
            }
            Err(_) => {
                Counters::add(&self.counters.send_errors, 1);
                false
            }
        }
    }

    /// Starts a stream, or changes the one this flow has: its rate counts
    /// from `now` and its sequence goes on.
    fn start_stream(&mut self, flow: u32, to: SocketAddr, request: StreamRequest, now: Instant) {
        let payload = usize::from(request.payload_len).max(HEADER_LEN);
        let duration = Duration::from_millis(u64::from(request.duration_ms)).min(MAX_STREAM);
        let existing = self
            .streams
            .iter_mut()
            .find(|s| s.flow == flow && s.to == to);
        let sent = match existing {
            Some(stream) if stream.datagram.len() == payload => {
                Counters::add(&self.counters.streams_changed, 1);
                stream.pps = request.pps;
                stream.flows = request.flows.max(1);
                stream.start = now;
                stream.sent_at_start = stream.sent;
                stream.end = now + duration;
                return;
            }
            // Another size: a new buffer, the sequence going on.
            Some(stream) => {
                Counters::add(&self.counters.streams_changed, 1);
                stream.sent
            }
            None => {
                Counters::add(&self.counters.streams_started, 1);
                self.own_flows().get(&flow).map_or(0, |f| f.next_stream_seq)
            }
        };
        self.streams.retain(|s| !(s.flow == flow && s.to == to));
        let mut datagram = vec![0u8; payload];
        Header::new(Kind::StreamData, flow).write(&mut datagram);
        crate::packet::fill_pattern(&mut datagram[HEADER_LEN..]);
        self.streams.push(Stream {
            to,
            flow,
            datagram,
            pps: request.pps,
            flows: request.flows.max(1),
            start: now,
            sent_at_start: sent,
            end: now + duration,
            sent,
        });
    }

    /// Sends what is due on every stream; returns when the next datagram
    /// of a rate-limited stream is due (`now` when some stream is
    /// unlimited and has more to send).
    fn pump_streams(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let max_segments = self.io.max_segments();
        let mut i = 0;
        while i < self.streams.len() {
            let stream = &mut self.streams[i];
            if now >= stream.end {
                self.end_stream(i);
                continue;
            }
            let mut sent_now = 0;
            let size = stream.datagram.len();
            // One send carries what is due, up to the segments the kernel
            // takes and 64 KiB.
            let per_send = if stream.flows > 1 {
                1
            } else {
                max_segments.min((u16::MAX as usize - 128) / size).max(1) as u64
            };
            // A rate-limited stream goes in batches that keep its sends
            // under PACED_SENDS_PER_S (each as a `UDP_SEGMENT` send where
            // the kernel takes them), not datagram by datagram: a send
            // costs about as much at one datagram as at many.
            let batch = (stream.pps / PACED_SENDS_PER_S).clamp(1, per_send);
            while sent_now < STREAM_BURST && stream.next_send(batch) <= now {
                let n = per_send
                    .min(STREAM_BURST - sent_now)
                    .min(stream.due_count(now));
                if n == 0 {
                    // `due` and `due_count` agree; never send an empty batch.
                    break;
                }
                let ts = now.duration_since(self.epoch).as_nanos() as u64;
                self.batch.clear();
                for k in 0..n {
                    let seq = stream.sent + k;
                    stream.datagram[16..24].copy_from_slice(&seq.to_be_bytes());
                    stream.datagram[24..32].copy_from_slice(&ts.to_be_bytes());
                    self.batch.extend_from_slice(&stream.datagram);
                }
                let mut to = stream.to;
                if stream.flows > 1 {
                    let k = (stream.sent % u64::from(stream.flows)) as u16;
                    to.set_port(to.port().wrapping_add(k));
                }
                match self.io.send(&self.batch, size, to) {
                    Ok(()) => {
                        let bytes = n * ip_bytes(size, stream.to);
                        Counters::add(&self.counters.tx_packets, n);
                        if n > 1 {
                            Counters::add(&self.counters.tx_super_packets, 1);
                        }
                        Counters::add(&self.counters.tx_bytes, bytes);
                        if let Some(f) = lock(&self.tables[self.me]).get_mut(&stream.flow) {
                            f.stats.tx_packets += n;
                            f.stats.tx_bytes += bytes;
                        }
                        stream.sent += n;
                        sent_now += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // Not sent: counted as a send error, retried later.
                        Counters::add(&self.counters.send_errors, 1);
                        break;
                    }
                }
            }
            let due = stream.next_send(batch).max(now).min(stream.end);
            next = Some(next.map_or(due, |n| n.min(due)));
            i += 1;
        }
        next
    }

    /// Removes stream `i` (its place taken by the last), keeping where its
    /// sequence ended for the flow's next stream.
    fn end_stream(&mut self, i: usize) {
        let stream = self.streams.swap_remove(i);
        if let Some(f) = self.own_flows().get_mut(&stream.flow) {
            f.next_stream_seq = stream.sent;
        }
    }

    fn gc(&mut self, now: Instant) {
        self.last_gc = now;
        self.own_flows().retain(|_, f| {
            f.last_seen
                .is_some_and(|t| now.duration_since(t) < FLOW_IDLE)
        });
    }
}

/// IP bytes of a datagram with `payload` octets to or from `addr`.
fn ip_bytes(payload: usize, addr: SocketAddr) -> u64 {
    let v4 = match addr {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    (payload
        + if v4 {
            IPV4_UDP_OVERHEAD
        } else {
            IPV6_UDP_OVERHEAD
        }) as u64
}

fn wait_readable(socket: &UdpSocket, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // ppoll, not poll: a stream at hundreds of thousands of datagrams a
    // second is due every few microseconds, and poll's millisecond would
    // send it in bursts the size of a millisecond's worth.
    let timeout = timeout.clamp(Duration::from_micros(1), Duration::from_secs(1));
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and one timespec for the duration of the
    // call; no signal mask.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::STREAM_REQUEST_LEN;

    fn message(kind: Kind, flow: u32, seq: u64, body: &[u8], len: usize) -> Vec<u8> {
        let mut m = vec![0u8; len.max(HEADER_LEN + body.len())];
        let mut h = Header::new(kind, flow);
        h.seq = seq;
        h.write(&mut m);
        m[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
        m
    }

    fn recv(socket: &UdpSocket) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    fn request_stream(client: &UdpSocket, peer: SocketAddr, flow: u32, request: StreamRequest) {
        let mut body = [0u8; STREAM_REQUEST_LEN];
        request.write(&mut body);
        client
            .send_to(&message(Kind::StreamStart, flow, 0, &body, 0), peer)
            .unwrap();
    }

    /// Reads `flow`'s stream data until `quiet` passes without any: each
    /// datagram `len` octets, in order from sequence 0, fewer than `most`
    /// (the stream must end). Returns the sequence numbers.
    fn receive_stream(
        client: &UdpSocket,
        flow: u32,
        len: usize,
        quiet: Duration,
        most: usize,
    ) -> Vec<u64> {
        receive_stream_from(client, (flow, 0), len, quiet, most)
    }

    /// [`receive_stream`] of a stream whose sequence starts at `first`.
    fn receive_stream_from(
        client: &UdpSocket,
        (flow, first): (u32, u64),
        len: usize,
        quiet: Duration,
        most: usize,
    ) -> Vec<u64> {
        client.set_read_timeout(Some(quiet)).unwrap();
        let mut seqs = Vec::new();
        while let Some(d) = recv(client) {
            let (h, _) = Header::parse(&d).unwrap();
            assert_eq!((h.kind, h.flow, d.len()), (Kind::StreamData, flow, len));
            seqs.push(h.seq);
            assert!(seqs.len() < most, "the stream must end");
        }
        let last = first + seqs.len() as u64;
        assert_eq!(seqs, (first..last).collect::<Vec<_>>());
        seqs
    }

    /// `N` sockets on consecutive loopback ports (tried until a free run
    /// is found, so another process's port cannot fail the test).
    fn consecutive_ports<const N: usize>() -> [UdpSocket; N] {
        for _ in 0..100 {
            let first = UdpSocket::bind("127.0.0.1:0").unwrap();
            let base = first.local_addr().unwrap().port();
            let rest: Option<Vec<UdpSocket>> = (1..N as u16)
                .map(|k| {
                    let port = base.checked_add(k)?;
                    UdpSocket::bind(("127.0.0.1", port)).ok()
                })
                .collect();
            if let Some(rest) = rest {
                let mut all = vec![first];
                all.extend(rest);
                return all.try_into().expect("N sockets");
            }
        }
        panic!("no run of {N} free loopback ports in 100 tries");
    }

    fn stats(client: &UdpSocket, peer: SocketAddr, flow: u32) -> FlowStats {
        client
            .send_to(&message(Kind::StatsRequest, flow, 0, &[], 0), peer)
            .unwrap();
        loop {
            let reply = recv(client).expect("stats reply");
            let (h, body) = Header::parse(&reply).unwrap();
            if h.kind == Kind::StatsReply {
                assert_eq!(h.flow, flow);
                return FlowStats::parse(body).unwrap();
            }
        }
    }

    /// A peer on loopback and a client socket with a read timeout.
    fn started(threads: usize, max_flows: usize) -> (Peer, SocketAddr, UdpSocket) {
        started_with(threads, max_flows, true)
    }

    fn started_with(
        threads: usize,
        max_flows: usize,
        udp_offload: bool,
    ) -> (Peer, SocketAddr, UdpSocket) {
        let peer = Peer::start(&PeerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            threads,
            max_flows,
            udp_offload,
        })
        .unwrap();
        let to = peer.local_addr();
        let client = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        // Room for a fast stream's datagrams before the test reads them.
        client.set_recv_buffer_size(8 << 20).unwrap();
        client
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let client: UdpSocket = client.into();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (peer, to, client)
    }

    #[test]
    fn peer_reflects_discards_streams_and_reports_per_flow() {
        let (peer, to, client) = started(2, 16);

        // Echo: reflected with the kind changed, everything else unchanged.
        let echo = message(Kind::Echo, 7, 41, &[], 100);
        client.send_to(&echo, to).unwrap();
        let reply = recv(&client).unwrap();
        assert_eq!(reply.len(), 100);
        assert_eq!(reply[4], Kind::EchoReply as u8);
        assert_eq!(reply[5..], echo[5..]);

        // Discard: nothing comes back, but it is counted.
        for seq in 0..10 {
            client
                .send_to(&message(Kind::Discard, 8, seq, &[], 200), to)
                .unwrap();
        }
        let s = stats(&client, to, 8);
        assert_eq!(
            s,
            FlowStats {
                rx_packets: 10,
                rx_bytes: 10 * (200 + 28),
                tx_packets: 0,
                tx_bytes: 0
            }
        );
        let s = stats(&client, to, 7);
        assert_eq!((s.rx_packets, s.tx_packets), (1, 1));
        assert_eq!((s.rx_bytes, s.tx_bytes), (128, 128));

        // A rate-limited stream: 200 datagrams/s for 100 ms.
        request_stream(
            &client,
            to,
            9,
            StreamRequest {
                pps: 200,
                duration_ms: 100,
                payload_len: 300,
                flows: 0,
            },
        );
        let seqs = receive_stream(&client, 9, 300, Duration::from_secs(1), 1000);
        // 100 ms at 200/s: never more than 21 (the first goes at once).
        assert!((1..=21).contains(&seqs.len()), "{}", seqs.len());
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let s = stats(&client, to, 9);
        assert_eq!(s.tx_packets, seqs.len() as u64);
        assert_eq!(s.tx_bytes, seqs.len() as u64 * 328);

        // Garbage is counted as invalid and not answered.
        client.send_to(b"not a probe", to).unwrap();
        let unknown = stats(&client, to, 12345);
        assert_eq!(unknown, FlowStats::default());
        let totals = peer.stop();
        assert_eq!(totals.invalid, 1);
        assert_eq!(totals.streams_started, 1);
        assert_eq!(totals.stats_answered, 4);
        assert_eq!(totals.rx_packets, 1 + 10, "data only, not requests");
    }

    /// A stream of `pps` from `start` until `end`, nothing sent yet.
    fn paced_stream(pps: u64, start: Instant, end: Instant) -> Stream {
        Stream {
            to: "127.0.0.1:9".parse().unwrap(),
            flow: 1,
            datagram: vec![0; HEADER_LEN],
            pps,
            flows: 1,
            start,
            sent_at_start: 0,
            end,
            sent: 0,
        }
    }

    /// At any rate, a datagram is due (`due() <= now`) exactly when one is
    /// owed (`due_count(now) >= 1`), at the instant it falls due and the
    /// nanosecond before. Rates that do not divide 10⁹ were the case that
    /// broke: 300,000/s sent zero-length datagrams in a spin.
    #[test]
    fn a_datagram_is_due_exactly_when_one_is_owed() {
        let start = Instant::now();
        for pps in [1, 3, 7, 200, 300_000, 450_001, 1_000_000, 3_000_000] {
            let mut stream = paced_stream(pps, start, start + Duration::from_secs(3600));
            for sent in (0..2_000).chain([999_999, 1_000_001, 123_456_789]) {
                stream.sent = sent;
                let due = stream.due();
                assert!(stream.due_count(due) >= 1, "pps {pps}, sent {sent}");
                if let Some(before) = due.checked_sub(Duration::from_nanos(1)) {
                    if before >= start {
                        assert_eq!(stream.due_count(before), 0, "pps {pps}, sent {sent}");
                    }
                }
            }
        }
    }

    /// A stream fast enough that each turn has many datagrams due: with
    /// the offload they leave in `UDP_SEGMENT` batches, without it one by
    /// one; either way the client (whose socket takes no GRO) reads them
    /// as single datagrams, in order, each of the asked size.
    #[test]
    fn fast_streams_arrive_whole_and_in_order_with_and_without_offload() {
        for udp_offload in [true, false] {
            let (peer, to, client) = started_with(1, 16, udp_offload);
            request_stream(
                &client,
                to,
                5,
                StreamRequest {
                    pps: 20_000,
                    duration_ms: 30,
                    payload_len: 1372,
                    flows: 1,
                },
            );
            let seqs = receive_stream(&client, 5, 1372, Duration::from_millis(500), 10_000);
            // 30 ms at 20,000/s: 600 and the first, give or take a turn.
            assert!((100..=700).contains(&seqs.len()), "{}", seqs.len());
            let totals = peer.stop();
            assert_eq!(
                totals.tx_packets,
                seqs.len() as u64,
                "offload {udp_offload}"
            );
            assert_eq!(totals.send_errors, 0);
            assert_eq!(totals.tx_super_packets > 0, udp_offload);
        }
    }

    /// A second request for a running stream changes its rate and length
    /// from then on; its sequence goes on.
    #[test]
    fn a_second_request_changes_the_rate_and_the_sequence_goes_on() {
        let (peer, to, client) = started(1, 16);
        let request = |pps, duration_ms| StreamRequest {
            pps,
            duration_ms,
            payload_len: 300,
            flows: 1,
        };
        request_stream(&client, to, 8, request(1_000, 5_000));
        std::thread::sleep(Duration::from_millis(50));
        request_stream(&client, to, 8, request(20_000, 30));
        // About 50 at 1,000/s, then 600 at 20,000/s for 30 ms, and the
        // stream ends with the second request's length, not the first's.
        let seqs = receive_stream(&client, 8, 300, Duration::from_millis(500), 5_000);
        assert!((300..=800).contains(&seqs.len()), "{}", seqs.len());
        let totals = peer.stop();
        assert_eq!((totals.streams_started, totals.streams_changed), (1, 1));
        assert_eq!(totals.tx_packets, seqs.len() as u64);
    }

    /// A request that arrives after the flow's stream ended starts a new
    /// stream whose sequence goes on from the last one's: `--follow`'s last
    /// request of a run can reach the peer that late, and the client would
    /// count a sequence from 0 again as reordered. The same after a stop.
    #[test]
    fn a_flows_next_stream_goes_on_with_its_sequence() {
        let (peer, to, client) = started(1, 16);
        let request = StreamRequest {
            pps: 2_000,
            duration_ms: 20,
            payload_len: 300,
            flows: 1,
        };
        let quiet = Duration::from_millis(300);
        request_stream(&client, to, 9, request);
        let first = receive_stream(&client, 9, 300, quiet, 1_000);
        assert!(!first.is_empty());
        request_stream(&client, to, 9, request);
        let next = first.len() as u64;
        let second = receive_stream_from(&client, (9, next), 300, quiet, 1_000);
        assert!(!second.is_empty());
        // Stopped early, then asked again: still going on.
        request_stream(
            &client,
            to,
            9,
            StreamRequest {
                duration_ms: 5_000,
                ..request
            },
        );
        std::thread::sleep(Duration::from_millis(20));
        client
            .send_to(&message(Kind::StreamStop, 9, 0, &[], 0), to)
            .unwrap();
        let next = next + second.len() as u64;
        let third = receive_stream_from(&client, (9, next), 300, quiet, 1_000);
        request_stream(&client, to, 9, request);
        let next = next + third.len() as u64;
        assert!(!receive_stream_from(&client, (9, next), 300, quiet, 1_000).is_empty());
        let totals = peer.stop();
        assert_eq!(totals.streams_started, 4);
    }

    /// A batch goes when its last datagram is due, but the last batch
    /// before the end goes when its first is.
    #[test]
    fn a_batch_waits_for_its_last_datagram_but_not_past_the_end() {
        let start = Instant::now();
        let stream = paced_stream(100_000, start, start + Duration::from_micros(95));
        let at = |micros| start + Duration::from_micros(micros);
        // Datagram k is due at 10k µs: a batch of 5 waits for the fifth.
        assert_eq!(stream.next_send(1), at(0));
        assert_eq!(stream.next_send(5), at(40));
        // Datagrams 5..=9 fall due at 50..=90 µs; the end is at 95.
        let stream = Stream { sent: 5, ..stream };
        assert_eq!(stream.next_send(5), at(90));
        // Datagrams 8..=12 would end at 120 µs, past the end: the batch
        // goes when datagram 8 is due.
        let stream = Stream { sent: 8, ..stream };
        assert_eq!(stream.next_send(5), at(80));
    }

    /// A fast rate-limited stream goes in batches: 400,000 datagrams/s
    /// leave in `UDP_SEGMENT` sends of about 20, not one send each.
    #[test]
    fn a_fast_paced_stream_sends_in_batches() {
        let (peer, to, client) = started_with(1, 16, true);
        request_stream(
            &client,
            to,
            6,
            StreamRequest {
                pps: 400_000,
                duration_ms: 20,
                payload_len: 1372,
                flows: 1,
            },
        );
        // Read until the stream ends; at this rate the client's socket may
        // overflow, so what the peer sent is what is judged.
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        while recv(&client).is_some() {}
        let totals = peer.stop();
        assert_eq!(totals.send_errors, 0);
        // 20 ms at 400,000/s is 8,000, and never more than one over.
        let sent = totals.tx_packets;
        assert!((1_000..=8_001).contains(&sent), "{sent}");
        let offers = quinn_udp::UdpSocketState::new((&client).into()).map(|s| s.max_gso_segments());
        if offers.is_ok_and(|segments| segments >= 8) {
            let per_send = totals.tx_packets as f64 / totals.tx_super_packets.max(1) as f64;
            assert!(per_send >= 10.0, "{per_send} datagrams per send");
        }
    }

    /// A stream of several flows cycles the destination port datagram by
    /// datagram, and is never batched (the datagrams differ in address).
    #[test]
    fn a_stream_of_several_flows_cycles_the_destination_port() {
        let (peer, to, _) = started(1, 16);
        let [client, others @ ..] = consecutive_ports::<3>();
        request_stream(
            &client,
            to,
            6,
            StreamRequest {
                pps: 20_000,
                duration_ms: 10,
                payload_len: 200,
                flows: 3,
            },
        );
        std::thread::sleep(Duration::from_millis(300));
        let totals = peer.stop();
        assert!(totals.tx_packets >= 30, "{}", totals.tx_packets);
        assert_eq!(totals.tx_super_packets, 0);
        // Datagram k went to the requester's port + k % 3.
        for (k, socket) in std::iter::once(&client).chain(&others).enumerate() {
            socket.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 512];
            let mut seqs = Vec::new();
            while let Ok(n) = socket.recv(&mut buf) {
                seqs.push(Header::parse(&buf[..n]).unwrap().0.seq);
            }
            assert!(!seqs.is_empty(), "port +{k}");
            assert!(
                seqs.iter().all(|seq| seq % 3 == k as u64),
                "port +{k}: {seqs:?}"
            );
        }
    }

    /// A run of datagrams sent as one `UDP_SEGMENT` super-packet reaches a
    /// peer reading with `UDP_GRO` as one read; each datagram is counted,
    /// and each echo is answered on its own.
    #[test]
    fn a_super_packet_is_split_into_its_datagrams() {
        let (peer, to, client) = started(1, 16);
        let sender = quinn_udp::UdpSocketState::new((&client).into()).unwrap();
        // The state made it non-blocking; the test reads with a timeout.
        client.set_nonblocking(false).unwrap();
        if sender.max_gso_segments() < 8 {
            eprintln!("skipped: this kernel offers no UDP_SEGMENT");
            return;
        }
        let run = |kind: Kind, flow: u32, count: u64| -> Vec<u8> {
            (0..count)
                .flat_map(|seq| message(kind, flow, seq, &[], 500))
                .collect()
        };
        let send = |contents: &[u8]| {
            sender
                .try_send(
                    (&client).into(),
                    &quinn_udp::Transmit {
                        destination: to,
                        ecn: None,
                        contents,
                        segment_size: Some(500),
                        src_ip: None,
                    },
                )
                .unwrap();
        };
        send(&run(Kind::Discard, 3, 8));
        let s = stats(&client, to, 3);
        assert_eq!((s.rx_packets, s.rx_bytes), (8, 8 * (500 + 28)));
        send(&run(Kind::Echo, 4, 8));
        let mut seqs: Vec<u64> = (0..8)
            .map(|_| {
                let reply = recv(&client).expect("an echo reply");
                assert_eq!((reply.len(), reply[4]), (500, Kind::EchoReply as u8));
                Header::parse(&reply).unwrap().0.seq
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..8).collect::<Vec<_>>());
        let totals = peer.stop();
        assert_eq!(totals.invalid, 0);
        assert_eq!(totals.rx_super_packets, 2, "each run was one read");
    }

    #[test]
    fn flows_beyond_the_limit_are_served_but_not_tracked() {
        let (_peer, to, client) = started(1, 1);
        client
            .send_to(&message(Kind::Echo, 1, 0, &[], 40), to)
            .unwrap();
        assert!(recv(&client).is_some());
        client
            .send_to(&message(Kind::Echo, 2, 0, &[], 40), to)
            .unwrap();
        assert!(recv(&client).is_some(), "reflected although untracked");
        assert_eq!(stats(&client, to, 1).rx_packets, 1);
        assert_eq!(stats(&client, to, 2), FlowStats::default());
    }
}
