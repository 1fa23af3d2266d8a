//! References measured in the same run as the figures they stand beside.
//!
//! This machine is shared and noisy: an absolute rate means little on its
//! own, so every scenario figure is reported next to what the bare TLS
//! stack does on the same machine a moment earlier, and as a ratio to it.
//! See [`tls`] for what is measured and why it is the fair comparison.

pub mod tls;

use std::fmt;
use std::time::Duration;

use crate::results::{Better, Figure, Params, ReferenceResult};

/// Why a reference could not be measured.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReferenceError {
    Io(std::io::Error),
    Tls(String),
    /// Parameters out of range.
    Params(String),
    /// The measurement ended without doing what it should have.
    Incomplete(String),
}

impl ReferenceError {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReferenceError::Io(_) => "io",
            ReferenceError::Tls(_) => "tls",
            ReferenceError::Params(_) => "params",
            ReferenceError::Incomplete(_) => "incomplete",
        }
    }
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Io(e) => write!(f, "io: {e}"),
            ReferenceError::Tls(e) => write!(f, "tls: {e}"),
            ReferenceError::Params(e) => write!(f, "bad parameters: {e}"),
            ReferenceError::Incomplete(e) => write!(f, "incomplete: {e}"),
        }
    }
}

impl std::error::Error for ReferenceError {}

impl From<std::io::Error> for ReferenceError {
    fn from(e: std::io::Error) -> Self {
        ReferenceError::Io(e)
    }
}

/// CPU time (user + system) of the calling thread, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    cpu_clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0.0)
}

/// Reads the CPU clock `clock` (a thread's, a process's), in seconds;
/// `None` if it cannot be read (its process is gone).
pub fn cpu_clock_seconds(clock: libc::clockid_t) -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// Which references to measure and how.
#[derive(Clone, Debug)]
pub struct ReferencePlan {
    pub stream: Option<tls::StreamParams>,
    pub handshakes: Option<tls::HandshakeParams>,
    pub ping_pong: Option<tls::PingPongParams>,
    /// The ping-pong paced at a rate (`tls_ping_pong_paced_at_<rate>`).
    pub paced_ping_pong: Option<tls::PacedPingPongParams>,
}

impl ReferencePlan {
    /// All three, each running for `duration`.
    pub fn all(duration: Duration) -> Self {
        ReferencePlan {
            stream: Some(tls::StreamParams {
                duration,
                ..Default::default()
            }),
            handshakes: Some(tls::HandshakeParams {
                duration,
                ..Default::default()
            }),
            ping_pong: Some(tls::PingPongParams {
                duration,
                ..Default::default()
            }),
            paced_ping_pong: None,
        }
    }
}

/// Name of the bulk TLS reference in results files.
pub const TLS_STREAM: &str = "tls_stream";
/// Name of the handshake-rate reference.
pub const TLS_HANDSHAKE: &str = "tls_handshake";
/// Name of the handshake reference that also makes a session setup's
/// request/response exchanges (the `setup` scenario's shape-matched one).
pub const TLS_HANDSHAKE_EXCHANGES: &str = "tls_handshake_exchanges";
/// Name of the ping-pong latency reference.
pub const TLS_PING_PONG: &str = "tls_ping_pong";
/// Prefix of the paced ping-pong references: a latency point `10pct`'s is
/// `tls_ping_pong_paced_10pct`.
pub const TLS_PING_PONG_PACED: &str = "tls_ping_pong_paced";

/// Runs the planned references one after the other (never concurrently:
/// they would share the two cores) and records them.
pub fn measure(plan: &ReferencePlan) -> Result<Vec<ReferenceResult>, ReferenceError> {
    let mut out = Vec::new();
    if let Some(p) = &plan.stream {
        out.push(stream_reference(TLS_STREAM, p)?);
    }
    if let Some(p) = &plan.handshakes {
        out.push(handshake_reference(p)?);
    }
    if let Some(p) = &plan.ping_pong {
        out.push(ping_pong_reference(p)?);
    }
    if let Some(p) = &plan.paced_ping_pong {
        let name = format!("{TLS_PING_PONG_PACED}_at_{:.0}", p.rate);
        out.push(paced_ping_pong_reference(&name, p)?);
    }
    Ok(out)
}

/// The name of a stream reference with `record_size`-byte records, as the
/// scenarios record it: `tls_stream_1408`.
pub fn stream_name(record_size: usize) -> String {
    format!("{TLS_STREAM}_{record_size}")
}

fn duration_param(d: Duration) -> (String, String) {
    ("duration_s".into(), format!("{:.1}", d.as_secs_f64()))
}

/// [`tls::stream`], recorded under `name`: throughput, records per
/// second, and the CPU each side spent per GB and per record (the
/// receiving server's and the sending client's).
pub fn stream_reference(
    name: &str,
    p: &tls::StreamParams,
) -> Result<ReferenceResult, ReferenceError> {
    let r = tls::stream(p)?;
    let records = r.bytes.div_ceil(p.record_size.max(1) as u64);
    let per_record_ns = |seconds: f64| {
        if records == 0 {
            0.0
        } else {
            seconds * 1e9 / records as f64
        }
    };
    Ok(ReferenceResult {
        name: name.into(),
        params: Params::from_iter([
            ("suite".into(), p.suite.clone()),
            ("record_size".into(), p.record_size.to_string()),
            ("write_size".into(), p.write_size.to_string()),
            ("certificate".into(), p.cert.describe()),
            duration_param(p.duration),
        ]),
        figures: vec![
            Figure::new("throughput", "Gbit/s", r.gbit_per_s, Better::Higher),
            Figure::new(
                "records_per_s",
                "records/s",
                if r.seconds > 0.0 {
                    records as f64 / r.seconds
                } else {
                    0.0
                },
                Better::Higher,
            ),
            Figure::new(
                "server_cpu_per_gb",
                "s/GB",
                r.server_cpu_s_per_gb(),
                Better::Lower,
            ),
            Figure::new(
                "sender_cpu_per_gb",
                "s/GB",
                r.client_cpu_s_per_gb(),
                Better::Lower,
            ),
            Figure::new(
                "server_cpu_per_record",
                "ns",
                per_record_ns(r.server_cpu_seconds),
                Better::Lower,
            ),
            Figure::new(
                "sender_cpu_per_record",
                "ns",
                per_record_ns(r.client_cpu_seconds),
                Better::Lower,
            ),
            Figure::new("bytes", "B", r.bytes as f64, Better::Neither),
        ],
        latency: None,
    })
}

/// [`tls::handshakes`] as the `tls_handshake` reference, or with
/// exchanges as `tls_handshake_exchanges`.
pub fn handshake_reference(p: &tls::HandshakeParams) -> Result<ReferenceResult, ReferenceError> {
    let r = tls::handshakes(p)?;
    if r.failures > 0 {
        return Err(ReferenceError::Incomplete(format!(
            "{} of the handshake clients' attempts failed",
            r.failures
        )));
    }
    let mut params = Params::from_iter([
        (
            "suite".into(),
            p.suite.clone().unwrap_or_else(|| "sstpd defaults".into()),
        ),
        ("clients".into(), p.clients.to_string()),
        ("certificate".into(), p.cert.describe()),
        duration_param(p.duration),
    ]);
    let name = if p.exchanges == 0 {
        TLS_HANDSHAKE
    } else {
        params.insert("exchanges".into(), p.exchanges.to_string());
        params.insert("message_size".into(), p.message_size.to_string());
        TLS_HANDSHAKE_EXCHANGES
    };
    Ok(ReferenceResult {
        name: name.into(),
        params,
        figures: vec![
            Figure::new(
                "handshake_rate",
                "handshakes/s",
                r.per_second,
                Better::Higher,
            ),
            Figure::new(
                "server_cpu_per_1000",
                "s/1000 handshakes",
                r.server_cpu_s_per_1000(),
                Better::Lower,
            ),
            Figure::new("handshakes", "count", r.handshakes as f64, Better::Neither),
        ],
        latency: None,
    })
}

/// [`tls::paced_ping_pong`] as the reference `name`: the latency
/// percentiles, the rate of echoes, and the share of messages sent late.
pub fn paced_ping_pong_reference(
    name: &str,
    p: &tls::PacedPingPongParams,
) -> Result<ReferenceResult, ReferenceError> {
    let r = tls::paced_ping_pong(p)?;
    let mut figures = r.latency.figures();
    figures.push(Figure::new(
        "round_trip_rate",
        "round trips/s",
        crate::units::per_second(r.received, r.seconds),
        Better::Neither,
    ));
    figures.push(Figure::new(
        "sent_late",
        "ratio",
        if r.sent > 0 {
            r.sent_late as f64 / r.sent as f64
        } else {
            0.0
        },
        Better::Lower,
    ));
    Ok(ReferenceResult {
        name: name.into(),
        params: Params::from_iter([
            ("suite".into(), p.suite.clone()),
            ("message_size".into(), p.message_size.to_string()),
            ("connections".into(), p.connections.to_string()),
            ("rate".into(), format!("{:.0}", p.rate)),
            duration_param(p.duration),
        ]),
        figures,
        latency: Some(r.latency),
    })
}

/// [`tls::ping_pong`] as the `tls_ping_pong` reference.
pub fn ping_pong_reference(p: &tls::PingPongParams) -> Result<ReferenceResult, ReferenceError> {
    let r = tls::ping_pong(p)?;
    let mut figures = r.latency.figures();
    figures.push(Figure::new(
        "round_trips",
        "count",
        r.round_trips as f64,
        Better::Neither,
    ));
    Ok(ReferenceResult {
        name: TLS_PING_PONG.into(),
        params: Params::from_iter([
            ("suite".into(), p.suite.clone()),
            ("message_size".into(), p.message_size.to_string()),
            duration_param(p.duration),
        ]),
        figures,
        latency: Some(r.latency),
    })
}
