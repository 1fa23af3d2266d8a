//! The Prometheus endpoint (`[metrics] listen`): `GET /metrics` in the
//! Prometheus text format (version 0.0.4), and `GET /health` for load
//! balancers' health checks (HAProxy `option httpchk GET /health`): 200
//! `ok` while the node takes sessions, 503 `draining` while it drains
//! (`sstpctl drain`, [`crate::app::drain`]), so the balancer sends new
//! clients elsewhere before they are refused.
//!
//! Nothing here touches the workers' data path: at scrape time the
//! [`Exporter`] reads the counters the workers already keep
//! ([`Metrics`]: relaxed atomic loads) and a few gauges read through
//! closures (admission counts, RADIUS queue depths and spool). Encoding is
//! the `prometheus-client` crate's (a [`Collector`] over the live counters,
//! nothing registered per event or per session); there are no per-user
//! labels, so the series count is fixed by the code: one series per
//! [`Event`] (`sstpd_<family>_total{reason="<label>"}`), a handful of
//! totals and gauges, and a few per worker.
//!
//! The HTTP side is a std `TcpListener` on a thread of its own with
//! `httparse` reading the request head. A scrape is one small GET, so a
//! crate such as `tiny_http` would bring its own threads, chunked encoding
//! and a dependency tree for nothing this needs, and hyper/axum would bring
//! a second async runtime next to the workers' io_uring ones. Requests are
//! served one at a time: a connection gets [`REQUEST_DEADLINE`] to deliver
//! its head (at most [`MAX_HEAD`] bytes), and the answer is written under a
//! write timeout, so a client that stalls holds the endpoint for at most a
//! few seconds and never anything of the workers'. Every answer closes the
//! connection (`Connection: close`, RFC 9112 9.6). Refusals are answered
//! with the status RFC 9110 names (400, 404, 405 with `Allow`, 408, 431),
//! logged at debug level and counted (family `metrics_requests`).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::metrics::{
    Event, Family, LatencySnapshot, Metrics, RadiusAuthResult, SetupPhase, WorkerMetrics,
    LATENCY_BUCKETS,
};

/// How long a connection has to deliver its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long writing the answer may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read (a scrape's is a few hundred bytes).
pub const MAX_HEAD: usize = 8 * 1024;
/// The Content-Type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A gauge read at scrape time (`sstpd_<name>`).
pub struct ScrapeGauge {
    name: &'static str,
    help: &'static str,
    read: GaugeRead,
}

/// How a [`ScrapeGauge`] finds its series.
enum GaugeRead {
    /// One series, these constant labels (none, or an info metric's).
    One {
        labels: Vec<(&'static str, &'static str)>,
        read: Box<dyn Fn() -> i64 + Send + Sync>,
    },
    /// A series per worker (`worker="<index>"`).
    PerWorker(Box<dyn Fn(usize) -> i64 + Send + Sync>, usize),
    /// Series found at scrape time, each with its labels (a bounded set,
    /// such as the configured RADIUS servers).
    Series(Box<SeriesRead>),
}

/// The series of a [`GaugeRead::Series`]: label pairs and value of each.
type SeriesRead = dyn Fn() -> Vec<(Vec<(&'static str, String)>, i64)> + Send + Sync;

impl ScrapeGauge {
    /// `read` runs on the endpoint's thread at every scrape: it must be
    /// cheap and must not block (a few atomic loads).
    pub fn new(
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Self {
        ScrapeGauge {
            name,
            help,
            read: GaugeRead::One {
                labels: Vec::new(),
                read: Box::new(read),
            },
        }
    }

    /// A gauge with a series per worker (`worker="0"` ... up to
    /// `workers - 1`), `read(index)` giving each value; the same rules as
    /// [`new`](Self::new).
    pub fn per_worker(
        name: &'static str,
        help: &'static str,
        workers: usize,
        read: impl Fn(usize) -> i64 + Send + Sync + 'static,
    ) -> Self {
        ScrapeGauge {
            name,
            help,
            read: GaugeRead::PerWorker(Box::new(read), workers),
        }
    }

    /// A gauge whose series `read` lists at every scrape, each with its
    /// labels; the same rules as [`new`](Self::new), and the set of
    /// series must stay bounded by the configuration (no per-user
    /// labels).
    pub fn series(
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> Vec<(Vec<(&'static str, String)>, i64)> + Send + Sync + 'static,
    ) -> Self {
        ScrapeGauge {
            name,
            help,
            read: GaugeRead::Series(Box::new(read)),
        }
    }

    /// The gauge's one series carries these constant labels (e.g.
    /// `sstpd_ktls_info{mode="auto",kernel="unavailable"} 1`).
    pub fn with_labels(mut self, labels: Vec<(&'static str, &'static str)>) -> Self {
        if let GaugeRead::One { labels: l, .. } = &mut self.read {
            *l = labels;
        }
        self
    }

    /// Its name (without the `sstpd_` prefix).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its value now (a per-worker gauge's sum over the workers).
    pub fn read(&self) -> i64 {
        match &self.read {
            GaugeRead::One { read, .. } => read(),
            GaugeRead::PerWorker(read, workers) => (0..*workers).map(read).sum(),
            GaugeRead::Series(read) => read().into_iter().map(|(_, v)| v).sum(),
        }
    }
}

impl fmt::Debug for ScrapeGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeGauge")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Encodes the server's counters in the Prometheus text format.
pub struct Exporter {
    registry: Registry,
    draining: Box<dyn Fn() -> bool + Send + Sync>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("registry", &self.registry)
            .field("draining", &(self.draining)())
            .finish()
    }
}

impl Exporter {
    /// An exporter of `metrics` and of `gauges`, all named `sstpd_*`.
    pub fn new(metrics: Metrics, gauges: Vec<ScrapeGauge>) -> Self {
        let mut registry = Registry::with_prefix("sstpd");
        registry.register_collector(Box::new(Counters { metrics, gauges }));
        Exporter {
            registry,
            draining: Box::new(|| false),
        }
    }

    /// `GET /health` answers 503 `draining` while `draining` says so
    /// (200 `ok` otherwise, and without it).
    pub fn with_drain_state(mut self, draining: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.draining = Box::new(draining);
        self
    }

    /// The health check's status line and body.
    fn health(&self) -> (&'static str, &'static str) {
        if (self.draining)() {
            ("503 Service Unavailable", "draining\n")
        } else {
            ("200 OK", "ok\n")
        }
    }

    /// The exposition: what `GET /metrics` answers.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(32 * 1024);
        // Writing into a String cannot fail; the collector never fails.
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("encoding into a String");
        text
    }
}

/// The collector over the live counters.
struct Counters {
    metrics: Metrics,
    gauges: Vec<ScrapeGauge>,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("gauges", &self.gauges)
            .finish_non_exhaustive()
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One unlabelled metric.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Label pairs of one series.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric of several series, each with its labels.
fn labelled<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> fmt::Result {
    let mut m = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One histogram metric, one series per label value.
fn histograms(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = ((&'static str, &'static str), LatencySnapshot)>,
) -> fmt::Result {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (label, h) in series {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS.iter().copied().zip(h.buckets).collect();
        m.encode_family(&[label])?.encode_histogram::<NoLabelSet>(
            h.sum.as_secs_f64(),
            h.count,
            &buckets,
            None,
        )?;
    }
    Ok(())
}

/// The `direction` label's values: packets from clients are written to
/// TUN (the workers' `rx`), packets to clients were read from it (`tx`).
const DIRECTIONS: [&str; 2] = ["from_clients", "to_clients"];

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let snapshot = self.metrics.snapshot();
        let workers: Vec<(String, &WorkerMetrics)> = (0..self.metrics.worker_count())
            .map(|i| (i.to_string(), self.metrics.worker(i)))
            .collect();
        let e = &mut encoder;
        let counter = ConstCounter::new;

        single(
            e,
            "connections_accepted",
            "TCP connections accepted.",
            &counter(snapshot.connections_accepted),
        )?;
        single(
            e,
            "sessions_established",
            "Sessions whose SSTP call connected (crypto binding verified).",
            &counter(snapshot.sessions_established),
        )?;
        single(
            e,
            "sessions_active",
            "Sessions alive (accepted, not yet closed).",
            &ConstGauge::new(snapshot.sessions_active),
        )?;
        single(
            e,
            "ktls_sessions",
            "Sessions alive whose TLS records the kernel seals and opens (kTLS).",
            &ConstGauge::new(snapshot.ktls_sessions),
        )?;
        single(
            e,
            "ktls_send_batches",
            "Kernel TLS send batches: runs of packets sent back to back without waiting, and \
             awaited writes when the socket was full.",
            &counter(snapshot.ktls_send_batches),
        )?;
        single(
            e,
            "ktls_send_packets",
            "SSTP packets sent through kernel TLS, one record each (per batch: how well sends \
             are batched).",
            &counter(snapshot.ktls_send_packets),
        )?;
        let by_direction = |from: u64, to: u64| {
            DIRECTIONS
                .into_iter()
                .zip([from, to])
                .map(|(d, v)| (vec![("direction", d)], counter(v)))
        };
        labelled(
            e,
            "ip_packets",
            "IP packets carried, by direction (from_clients: written to TUN; to_clients: \
             read from TUN and sent).",
            Counter,
            by_direction(snapshot.rx_packets, snapshot.tx_packets),
        )?;
        labelled(
            e,
            "ip_bytes",
            "IP bytes carried, by direction.",
            Counter,
            by_direction(snapshot.rx_bytes, snapshot.tx_bytes),
        )?;
        single(
            e,
            "tun_no_session",
            "Packets read from TUN for an address no session owns.",
            &counter(snapshot.tun_no_session),
        )?;
        single(
            e,
            "handoff_packets",
            "Packets read from TUN by one worker for a session of another.",
            &counter(snapshot.handoff_packets),
        )?;
        labelled(
            e,
            "queue_full_drops",
            "Packets dropped at a full queue, by queue (session_send: a session's send \
             queue; tun_write: a worker's TUN write queue).",
            Counter,
            [
                ("session_send", snapshot.tx_queue_full),
                ("tun_write", snapshot.tun_write_queue_full),
            ]
            .map(|(queue, v)| (vec![("queue", queue)], counter(v))),
        )?;

        // Per worker: the load's spread over the cores.
        labelled(
            e,
            "worker_sessions_active",
            "Sessions alive, by worker.",
            Gauge,
            workers.iter().map(|(i, w)| {
                let active = w.sessions_active.load(Ordering::Relaxed);
                (vec![("worker", i.as_str())], ConstGauge::new(active))
            }),
        )?;
        labelled(
            e,
            "worker_connections_accepted",
            "TCP connections accepted, by worker.",
            Counter,
            workers.iter().map(|(i, w)| {
                let accepted = load(&w.connections_accepted);
                (vec![("worker", i.as_str())], counter(accepted))
            }),
        )?;
        labelled(
            e,
            "worker_ip_packets",
            "IP packets carried, by worker and direction.",
            Counter,
            workers.iter().flat_map(|(i, w)| {
                let values = [load(&w.rx_packets), load(&w.tx_packets)];
                DIRECTIONS
                    .into_iter()
                    .zip(values)
                    .map(|(d, v)| (vec![("worker", i.as_str()), ("direction", d)], counter(v)))
            }),
        )?;

        // Setup latency, by the phase that ended, from accept.
        histograms(
            e,
            "session_setup_seconds",
            "Time from accept to the end of each setup phase (tls, http, sstp, auth, \
             call_connected, ipcp).",
            SetupPhase::ALL.map(|p| (("phase", p.as_str()), self.metrics.setup_histogram(p))),
        )?;
        histograms(
            e,
            "radius_access_seconds",
            "Access-Request round trips, from the session's request to the answer or to \
             giving up, by result.",
            RadiusAuthResult::ALL.map(|r| {
                (
                    ("result", r.as_str()),
                    self.metrics.radius_auth_histogram(r),
                )
            }),
        )?;

        // Every event, zeros included, so that rate() sees a series from
        // the start.
        for family in Family::ALL {
            labelled(
                e,
                family.name(),
                family.help(),
                Counter,
                family.events().iter().map(|&event| {
                    (
                        vec![(label_key(*family), event.label())],
                        counter(snapshot.count(event)),
                    )
                }),
            )?;
        }

        for gauge in &self.gauges {
            match &gauge.read {
                GaugeRead::One { labels, read } if labels.is_empty() => {
                    single(e, gauge.name, gauge.help, &ConstGauge::new(read()))?;
                }
                GaugeRead::One { labels, read } => {
                    let series = [(labels.clone(), ConstGauge::new(read()))];
                    labelled(e, gauge.name, gauge.help, Gauge, series)?;
                }
                GaugeRead::PerWorker(read, workers) => {
                    let names: Vec<String> = (0..*workers).map(|i| i.to_string()).collect();
                    let series = names.iter().enumerate().map(|(i, name)| {
                        (vec![("worker", name.as_str())], ConstGauge::new(read(i)))
                    });
                    labelled(e, gauge.name, gauge.help, Gauge, series)?;
                }
                GaugeRead::Series(read) => {
                    let found = read();
                    let series = found.iter().map(|(labels, value)| {
                        let labels: Labels<'_> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        (labels, ConstGauge::new(*value))
                    });
                    labelled(e, gauge.name, gauge.help, Gauge, series)?;
                }
            }
        }
        Ok(())
    }
}

/// The label an event family's series are told apart by.
fn label_key(family: Family) -> &'static str {
    match family {
        Family::TlsVersions => "version",
        Family::TlsCipherSuites => "cipher_suite",
        _ => "reason",
    }
}

/// Why a request got no exposition. The label is the counted event's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Not an HTTP/1.x request head (RFC 9112 3): 400.
    BadRequest,
    /// The head exceeded [`MAX_HEAD`] or its header count: 431 (RFC 6585 5).
    HeadTooLarge,
    /// A path other than `/metrics` and `/health`: 404.
    NotFound,
    /// A method other than GET or HEAD: 405 with `Allow`.
    MethodNotAllowed,
    /// The head did not arrive within [`REQUEST_DEADLINE`]: 408.
    Timeout,
    /// The connection failed.
    Io,
}

impl RequestError {
    pub fn as_str(self) -> &'static str {
        self.event().label()
    }

    /// The counted event.
    pub fn event(self) -> Event {
        match self {
            RequestError::BadRequest => Event::MetricsBadRequest,
            RequestError::HeadTooLarge => Event::MetricsHeadTooLarge,
            RequestError::NotFound => Event::MetricsNotFound,
            RequestError::MethodNotAllowed => Event::MetricsMethodNotAllowed,
            RequestError::Timeout => Event::MetricsTimeout,
            RequestError::Io => Event::MetricsIoError,
        }
    }

    /// The status line's code and reason, when an answer is sent.
    fn status(self) -> Option<&'static str> {
        match self {
            RequestError::BadRequest => Some("400 Bad Request"),
            RequestError::HeadTooLarge => Some("431 Request Header Fields Too Large"),
            RequestError::NotFound => Some("404 Not Found"),
            RequestError::MethodNotAllowed => Some("405 Method Not Allowed"),
            RequestError::Timeout => Some("408 Request Timeout"),
            RequestError::Io => None,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for RequestError {}

/// What a complete request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wanted {
    /// GET /metrics (with the body) or HEAD /metrics (without).
    Metrics { body: bool },
    /// GET or HEAD /health.
    Health { body: bool },
}

/// Judges a request head: `Ok(None)` while it is incomplete.
fn parse_head(head: &[u8]) -> Result<Option<Wanted>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) if head.len() >= MAX_HEAD => Err(RequestError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(RequestError::HeadTooLarge),
        Err(_) => Err(RequestError::BadRequest),
        Ok(httparse::Status::Complete(_)) => {
            let body = match request.method {
                Some("GET") => true,
                Some("HEAD") => false,
                _ => return Err(RequestError::MethodNotAllowed),
            };
            // The query string (Prometheus sends none) is ignored.
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(path, _)| path);
            match path {
                "/metrics" => Ok(Some(Wanted::Metrics { body })),
                "/health" => Ok(Some(Wanted::Health { body })),
                _ => Err(RequestError::NotFound),
            }
        }
    }
}

/// Reads a request head within [`REQUEST_DEADLINE`].
fn read_request(stream: &mut TcpStream) -> Result<Wanted, RequestError> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut head = [0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RequestError::Timeout);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| RequestError::Io)?;
        match stream.read(&mut head[len..]) {
            // Closed before a whole head.
            Ok(0) => return Err(RequestError::BadRequest),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(RequestError::Timeout)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(RequestError::Io),
        }
        if let Some(wanted) = parse_head(&head[..len])? {
            return Ok(wanted);
        }
    }
}

/// Answers one connection and counts the outcome.
fn serve(mut stream: TcpStream, exporter: &Exporter, metrics: &Metrics) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let answer = match read_request(&mut stream) {
        Ok(Wanted::Metrics { body }) => {
            let text = exporter.encode();
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                text.len()
            );
            if body {
                answer.push_str(&text);
            }
            Ok((Event::MetricsScraped, answer))
        }
        Ok(Wanted::Health { body }) => {
            let (status, text) = exporter.health();
            let mut answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                text.len()
            );
            if body {
                answer.push_str(text);
            }
            Ok((Event::MetricsHealthChecked, answer))
        }
        Err(error) => {
            tracing::debug!(?peer, %error, "metrics endpoint: request refused");
            Err(error)
        }
    };
    let (event, bytes) = match &answer {
        Ok((event, text)) => (*event, Some(text.clone())),
        Err(error) => (
            error.event(),
            error.status().map(|status| {
                let allow = if *error == RequestError::MethodNotAllowed {
                    "Allow: GET, HEAD\r\n"
                } else {
                    ""
                };
                format!(
                    "HTTP/1.1 {status}\r\n{allow}Content-Type: text/plain\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{status}\n",
                    status.len() + 1
                )
            }),
        ),
    };
    let written = match bytes {
        Some(bytes) => stream
            .write_all(bytes.as_bytes())
            .and_then(|()| stream.flush()),
        None => Ok(()),
    };
    match written {
        Err(error) if answer.is_ok() => {
            tracing::debug!(?peer, %error, "metrics endpoint: answer not delivered");
            metrics.global().event(Event::MetricsIoError);
        }
        _ => metrics.global().event(event),
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The endpoint's thread. Stopped (and joined) on drop.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `exporter` on a thread named
    /// `sstpd-metrics`; outcomes are counted in `metrics`' process-wide
    /// events.
    pub fn start(listen: SocketAddr, exporter: Exporter, metrics: Metrics) -> io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sstpd-metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    match stream {
                        Ok(stream) => serve(stream, &exporter, &metrics),
                        Err(error) => {
                            // EMFILE and the like: do not spin on it.
                            tracing::debug!(%error, "metrics endpoint: accept failed");
                            metrics.global().event(Event::MetricsIoError);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        tracing::info!(%addr, "Prometheus metrics endpoint listening");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let woken = TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok();
        if let Some(thread) = self.thread.take() {
            // Without the wake-up the thread stays in accept: leave it to
            // the process's exit rather than hang here.
            if woken {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_judged_by_method_and_path() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(parse_head(get), Ok(Some(Wanted::Metrics { body: true })));
        assert_eq!(
            parse_head(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Ok(Some(Wanted::Metrics { body: false }))
        );
        assert_eq!(parse_head(&get[..10]), Ok(None));
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(RequestError::MethodNotAllowed)
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Err(RequestError::NotFound)
        );
        assert_eq!(
            parse_head(b"\x16\x03\x01\x02\x00"),
            Err(RequestError::BadRequest)
        );
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..40 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Err(RequestError::HeadTooLarge));
        let long = [b'a'; MAX_HEAD];
        let mut long_head = b"GET /".to_vec();
        long_head.extend_from_slice(&long);
        assert_eq!(
            parse_head(&long_head[..MAX_HEAD]),
            Err(RequestError::HeadTooLarge)
        );
    }

    #[test]
    fn the_exposition_has_every_event_and_the_gauges() {
        let metrics = Metrics::new(2);
        metrics.worker(1).event(Event::WrongMac);
        metrics.worker(0).events_n(Event::WrongMac, 2);
        WorkerMetrics::add(&metrics.worker(0).rx_bytes, 1500);
        let tls = SetupPhase::Tls;
        metrics.worker(0).setup_phase(tls, Duration::from_millis(5));
        metrics.worker(1).setup_phase(tls, Duration::from_secs(60));
        let reject = RadiusAuthResult::Reject;
        metrics
            .global()
            .radius_auth(reject, Duration::from_millis(30));
        metrics
            .worker(1)
            .sessions_active
            .fetch_add(3, Ordering::Relaxed);
        let exporter = Exporter::new(
            metrics,
            vec![ScrapeGauge::new(
                "radius_accounting_spooled",
                "Spooled.",
                || 7,
            )],
        );
        let text = exporter.encode();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(r#"sstpd_sessions_closed_total{reason="wrong_mac"} 3"#),
            "{text}"
        );
        assert!(has(
            r#"sstpd_sessions_closed_total{reason="hello_timeout"} 0"#
        ));
        assert!(has("# TYPE sstpd_sessions_closed_total counter"), "{text}");
        assert!(has(
            r#"sstpd_ip_bytes_total{direction="from_clients"} 1500"#
        ));
        assert!(has("sstpd_sessions_active 3"));
        assert!(has(r#"sstpd_worker_sessions_active{worker="1"} 3"#));
        assert!(has(r#"sstpd_worker_sessions_active{worker="0"} 0"#));
        assert!(has("sstpd_radius_accounting_spooled 7"));
        assert!(
            has("# TYPE sstpd_session_setup_seconds histogram"),
            "{text}"
        );
        assert!(
            has(r#"sstpd_session_setup_seconds_bucket{phase="tls",le="0.01"} 1"#),
            "{text}"
        );
        assert!(has(
            r#"sstpd_session_setup_seconds_bucket{phase="tls",le="+Inf"} 2"#
        ));
        assert!(has(
            r#"sstpd_session_setup_seconds_bucket{phase="tls",le="0.001"} 0"#
        ));
        assert!(has(r#"sstpd_session_setup_seconds_count{phase="tls"} 2"#));
        assert!(has(
            r#"sstpd_session_setup_seconds_sum{phase="tls"} 60.005"#
        ));
        assert!(has(r#"sstpd_session_setup_seconds_count{phase="ipcp"} 0"#));
        assert!(has(
            r#"sstpd_radius_access_seconds_count{result="reject"} 1"#
        ));
        assert!(has(
            r#"sstpd_radius_access_seconds_bucket{result="reject",le="0.05"} 1"#
        ));
        assert!(has(
            r#"sstpd_radius_access_seconds_bucket{result="reject",le="0.025"} 0"#
        ));
        assert!(has(
            r#"sstpd_radius_access_seconds_count{result="no_answer"} 0"#
        ));
        for event in Event::ALL {
            let prefix = format!(
                "sstpd_{}_total{{{}=\"{}\"}} ",
                event.family().name(),
                label_key(event.family()),
                event.label()
            );
            assert!(
                text.lines().any(|l| l.starts_with(&prefix)),
                "{event:?} missing"
            );
        }
    }

    /// Sends `request` to the endpoint at `addr`; the whole answer.
    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn the_endpoint_answers_scrapes_and_refuses_the_rest() {
        let metrics = Metrics::new(1);
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Exporter::new(metrics.clone(), Vec::new()),
            metrics.clone(),
        )
        .unwrap();
        let ask = |request: &[u8]| ask(server.local_addr(), request);
        let ok = ask(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE));
        assert!(ok.contains("sstpd_sessions_active 0"));
        let head = ask(b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let post = ask(b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        assert!(ask(b"GET /x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let health = ask(b"GET /health HTTP/1.1\r\n\r\n");
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
        assert!(ask(b"\x16\x03\x01\x00\x00\r\n\r\n").starts_with("HTTP/1.1 400 "));
        // A client that never finishes its head is cut off with 408.
        let mut slow = TcpStream::connect(server.local_addr()).unwrap();
        slow.write_all(b"GET /metr").unwrap();
        let mut answer = String::new();
        slow.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        drop(server);
        let s = metrics.snapshot();
        assert_eq!(s.event("metrics_scraped"), 2, "{s}");
        assert_eq!(s.event("metrics_health_checked"), 1, "{s}");
        assert_eq!(s.event("metrics_method_not_allowed"), 1, "{s}");
        assert_eq!(s.event("metrics_not_found"), 1, "{s}");
        assert_eq!(s.event("metrics_bad_request"), 1, "{s}");
        assert_eq!(s.event("metrics_timeout"), 1, "{s}");
    }

    #[test]
    fn health_says_draining_with_503() {
        let metrics = Metrics::new(1);
        let draining = Arc::new(AtomicBool::new(false));
        let probe = draining.clone();
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Exporter::new(metrics.clone(), Vec::new())
                .with_drain_state(move || probe.load(Ordering::Relaxed)),
            metrics.clone(),
        )
        .unwrap();
        let ask = |request: &[u8]| ask(server.local_addr(), request);
        assert!(ask(b"GET /health HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
        draining.store(true, Ordering::Relaxed);
        let answer = ask(b"GET /health?x HTTP/1.1\r\nHost: lb\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{answer}"
        );
        assert!(answer.ends_with("\r\n\r\ndraining\n"), "{answer}");
        let head = ask(b"HEAD /health HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 503 ") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        draining.store(false, Ordering::Relaxed);
        assert!(ask(b"GET /health HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
        drop(server);
        assert_eq!(metrics.snapshot().event("metrics_health_checked"), 4);
    }
}
