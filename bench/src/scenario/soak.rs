//! The soak scenario (`run soak`, issue 17): sstpd under a steady mix of
//! held, talking and churning sessions for a long time (30 minutes by
//! default), sampled every interval, to catch what a short run misses:
//! memory, file descriptors, pool addresses or timers that leak a little
//! per session.
//!
//! The load, all real `sstp-loadgen` runs against the testbed's sstpd:
//!
//! * held for the whole soak: an `idle` run (keepalives only; most of the
//!   sessions) and a `bulk --direction both` run at a modest packet rate
//!   through the peer;
//! * every interval, side by side: an `echo` run (ICMP echo to the
//!   gateway: the interval's round-trip percentiles) and a `churn` run
//!   (loops connecting, holding, disconnecting: the interval's setup
//!   percentiles; pool addresses, timers and per-session state are
//!   recycled continuously).
//!
//! Consecutive per-interval runs rather than one long run with periodic
//! output: the load generator reports percentiles per run, so each
//! interval's percentiles are its own, and the echo sessions' coming and
//! going at each interval is churn too.
//!
//! Between intervals, when the interval's runs have ended and the server
//! holds exactly the held sessions again (it waits, bounded, until
//! `sessions_active` says so), the server is sampled: RSS (`/proc`), open
//! file descriptors (`/proc/PID/fd`), sessions and pool addresses in use
//! (the control socket's `stats`), its CPU over the interval. Sampling at
//! the same number of sessions every time makes the points comparable:
//! descriptors and pool addresses must come back to the same value
//! exactly, and memory within a noise band.
//!
//! The verdict "flat at the end" ([`verdict`]) compares the last point
//! with the first after the warm-up. It is a figure for people to read
//! before a release, not a timed test.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sstp_loadgen::{Direction, Mode, Report};

use super::catalog::{fig, Outcome};
use super::loadgen::{LoadChild, LoadSpec};
use super::process::{ProcessSample, SstpdProcess};
use super::testbed::Testbed;
use super::ScenarioError;
use crate::results::{Better, Params, ScenarioResult, Series, SeriesPoint};

/// RSS may grow this share of the baseline's between the baseline and the
/// last point (allocator noise) ...
pub const RSS_BAND: f64 = 0.05;
/// ... or this many bytes, whichever is larger.
pub const RSS_BAND_FLOOR: u64 = 4 << 20;
/// How long the server gets to close the interval's sessions before it is
/// sampled anyway (the point then shows the difference).
const SETTLE: Duration = Duration::from_secs(30);
/// Most intervals in one soak (a day of minutes).
pub const MAX_INTERVALS: u64 = 1440;
/// Most sessions of a soak (the pool sstp-bench gives sstpd holds them).
pub const MAX_SOAK_SESSIONS: u64 = 60_000;
/// Highest packet rate per session of the echo and bulk shares.
pub const MAX_PPS: f64 = 10_000.0;

/// What a soak runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SoakOptions {
    pub duration: Duration,
    /// Time between samples (each interval's echo and churn runs last
    /// this long).
    pub interval: Duration,
    /// Sessions at once: held (idle and bulk), echo, and churn loops.
    pub sessions: u64,
    /// Sessions of each interval's echo run.
    pub echo_sessions: u64,
    /// Echo requests per second per echo session.
    pub echo_pps: f64,
    /// Sessions held with bulk traffic both ways.
    pub bulk_sessions: u64,
    /// Packets per second per bulk session, each way.
    pub bulk_pps: f64,
    /// Concurrent connect-hold-disconnect loops.
    pub churn_loops: u64,
    /// How long each churn session is held.
    pub churn_hold: Duration,
    /// Where the SVG charts go.
    pub report_dir: PathBuf,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            duration: Duration::from_secs(30 * 60),
            interval: Duration::from_secs(60),
            sessions: 2000,
            echo_sessions: 100,
            echo_pps: 2.0,
            bulk_sessions: 20,
            bulk_pps: 100.0,
            churn_loops: 8,
            churn_hold: Duration::from_secs(1),
            report_dir: PathBuf::from("sstp-bench-soak"),
        }
    }
}

impl SoakOptions {
    /// Sessions up all the time: idle and bulk.
    pub fn held(&self) -> u64 {
        self.sessions - self.echo_sessions - self.churn_loops
    }

    /// Held sessions without traffic.
    pub fn idle(&self) -> u64 {
        self.held() - self.bulk_sessions
    }

    /// Samples taken: the duration in whole intervals (at least one).
    pub fn intervals(&self) -> u64 {
        let n = self.duration.as_secs_f64() / self.interval.as_secs_f64();
        (n.ceil() as u64).max(1)
    }

    /// Refuses settings outside the bounds.
    pub fn check(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) || self.interval > self.duration {
            return Err("--soak-interval must be at least 1 s and at most --soak-duration".into());
        }
        if self.duration > Duration::from_secs(24 * 3600) || self.intervals() > MAX_INTERVALS {
            return Err(format!(
                "--soak-duration: at most 24 hours and {MAX_INTERVALS} intervals"
            ));
        }
        if self.sessions > MAX_SOAK_SESSIONS {
            return Err(format!("--soak-sessions: at most {MAX_SOAK_SESSIONS}"));
        }
        if self.echo_sessions == 0 || self.churn_loops == 0 {
            return Err("--soak-echo-sessions and --soak-churn-loops must be at least 1".into());
        }
        if self.churn_loops > 1024 {
            return Err("--soak-churn-loops: at most 1024".into());
        }
        let busy = self.echo_sessions + self.churn_loops + self.bulk_sessions;
        if self.sessions <= busy {
            return Err(format!(
                "--soak-sessions ({}) must exceed the echo, churn and bulk sessions ({busy}): \
                 the rest are held idle",
                self.sessions
            ));
        }
        for (name, pps) in [("echo", self.echo_pps), ("bulk", self.bulk_pps)] {
            if !(pps > 0.0 && pps <= MAX_PPS) {
                return Err(format!("--soak-{name}-pps must be in (0, {MAX_PPS}]"));
            }
        }
        if self.churn_hold > self.interval {
            return Err("--soak-churn-hold must not exceed --soak-interval".into());
        }
        Ok(())
    }
}

/// The server and the interval's runs at the end of one interval.
#[derive(Clone, Debug, PartialEq)]
pub struct SoakPoint {
    /// Seconds since the held sessions were all up.
    pub t_s: f64,
    pub rss_bytes: u64,
    pub fds: u64,
    pub sessions_active: i64,
    pub pool_in_use: i64,
    pub pool_size: i64,
    /// sstpd's CPU over the interval, in cores.
    pub server_cores: f64,
    /// Churn sessions set up in the interval, and their setup times.
    pub setups: u64,
    pub setup_p50_us: u64,
    pub setup_p99_us: u64,
    /// Echo replies in the interval and their round trips.
    pub echo_replies: u64,
    pub echo_p50_us: u64,
    pub echo_p99_us: u64,
    pub echo_lost: u64,
    /// Sessions of the interval's runs that failed or were dropped.
    pub failures: u64,
}

/// Whether the soak ended flat, and if not, which figures are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The point the last one is compared with (after the warm-up).
    pub baseline: usize,
    /// One line per figure that is not flat; empty: flat.
    pub not_flat: Vec<String>,
}

impl Verdict {
    pub fn is_flat(&self) -> bool {
        self.not_flat.is_empty()
    }
}

/// The first point after the warm-up: a tenth of the run, at least the
/// first interval, leaving the last point to compare with.
pub fn baseline_index(points: usize) -> usize {
    (points / 10).max(1).min(points.saturating_sub(2))
}

/// Flat at the end: the last point against the baseline
/// ([`baseline_index`]) with `held` sessions held at every point. RSS
/// within [`RSS_BAND`] (at least [`RSS_BAND_FLOOR`]); descriptors and pool
/// addresses exactly back (the same sessions are held); sessions and pool
/// addresses in use equal to `held` at every point; the pool empty once
/// every session ended (`pool_after`); no session failed
/// (`held_failures`: of the held runs).
pub fn verdict(points: &[SoakPoint], held: u64, held_failures: u64, pool_after: i64) -> Verdict {
    let mut not_flat = Vec::new();
    let baseline = baseline_index(points.len());
    if let (Some(base), Some(last)) = (points.get(baseline), points.last()) {
        let band = ((base.rss_bytes as f64 * RSS_BAND) as u64).max(RSS_BAND_FLOOR);
        let growth = last.rss_bytes as i64 - base.rss_bytes as i64;
        if growth > band as i64 {
            not_flat.push(format!(
                "rss: grew {} from interval {} to the last (band {})",
                mib(growth.unsigned_abs()),
                baseline + 1,
                mib(band)
            ));
        }
        if last.fds != base.fds {
            not_flat.push(format!(
                "fds: {} at interval {}, {} at the last",
                base.fds,
                baseline + 1,
                last.fds
            ));
        }
        if last.pool_in_use != base.pool_in_use {
            not_flat.push(format!(
                "pool: {} addresses in use at interval {}, {} at the last",
                base.pool_in_use,
                baseline + 1,
                last.pool_in_use
            ));
        }
    }
    let off: Vec<String> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.sessions_active != held as i64 || p.pool_in_use != held as i64)
        .map(|(i, p)| {
            format!(
                "interval {}: {} sessions, {} addresses",
                i + 1,
                p.sessions_active,
                p.pool_in_use
            )
        })
        .collect();
    if !off.is_empty() {
        not_flat.push(format!(
            "sessions: {held} held, but {}",
            off.into_iter().take(3).collect::<Vec<_>>().join("; ")
        ));
    }
    if pool_after != 0 {
        not_flat.push(format!(
            "pool: {pool_after} addresses still in use after every session ended"
        ));
    }
    let failures: u64 = points.iter().map(|p| p.failures).sum::<u64>() + held_failures;
    if failures > 0 {
        not_flat.push(format!("failures: {failures} sessions failed or dropped"));
    }
    Verdict { baseline, not_flat }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The per-interval table (header first).
pub fn table_rows(points: &[SoakPoint]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "interval",
        "t",
        "sessions",
        "pool",
        "RSS",
        "fds",
        "cores",
        "setups",
        "setup p50/p99 ms",
        "echo p50/p99 ms",
        "echo lost",
        "failures",
    ]
    .map(String::from)
    .to_vec()];
    for (i, p) in points.iter().enumerate() {
        rows.push(table_row(i, p));
    }
    rows
}

/// A row of the table as it is printed during the run (fixed widths: the
/// rows come one per interval).
fn live_line(cells: &[String]) -> String {
    const WIDTHS: [usize; 12] = [8, 6, 8, 11, 10, 6, 5, 6, 16, 15, 9, 8];
    let mut line = String::from("  ");
    for (cell, width) in cells.iter().zip(WIDTHS) {
        let _ = write!(line, "{cell:>width$}  ");
    }
    line.trim_end().to_owned()
}

fn table_row(i: usize, p: &SoakPoint) -> Vec<String> {
    vec![
        (i + 1).to_string(),
        format!("{:.0}s", p.t_s),
        p.sessions_active.to_string(),
        format!("{}/{}", p.pool_in_use, p.pool_size),
        mib(p.rss_bytes),
        p.fds.to_string(),
        format!("{:.2}", p.server_cores),
        p.setups.to_string(),
        format!("{}/{}", ms(p.setup_p50_us), ms(p.setup_p99_us)),
        format!("{}/{}", ms(p.echo_p50_us), ms(p.echo_p99_us)),
        p.echo_lost.to_string(),
        p.failures.to_string(),
    ]
}

/// The points as series, one chart per figure (`soak-rss`, ...).
pub fn series(points: &[SoakPoint]) -> Vec<Series> {
    type Value = fn(&SoakPoint) -> f64;
    let lines: [(&str, &str, &str, Value); 10] = [
        ("soak-rss", "sstpd RSS", "MiB", |p| {
            p.rss_bytes as f64 / (1u64 << 20) as f64
        }),
        ("soak-fds", "sstpd open fds", "count", |p| p.fds as f64),
        ("soak-pool", "pool addresses in use", "count", |p| {
            p.pool_in_use as f64
        }),
        ("soak-pool", "sessions active", "count", |p| {
            p.sessions_active as f64
        }),
        ("soak-churn", "churn sessions set up", "count", |p| {
            p.setups as f64
        }),
        ("soak-setup", "setup p50", "ms", |p| {
            p.setup_p50_us as f64 / 1000.0
        }),
        ("soak-setup", "setup p99", "ms", |p| {
            p.setup_p99_us as f64 / 1000.0
        }),
        ("soak-echo", "echo p50", "ms", |p| {
            p.echo_p50_us as f64 / 1000.0
        }),
        ("soak-echo", "echo p99", "ms", |p| {
            p.echo_p99_us as f64 / 1000.0
        }),
        ("soak-cpu", "sstpd CPU", "cores", |p| p.server_cores),
    ];
    lines
        .iter()
        .map(|&(chart, name, unit, value)| Series {
            scenario: "soak".into(),
            chart: chart.into(),
            name: name.into(),
            unit: unit.into(),
            points: points
                .iter()
                .map(|p| SeriesPoint {
                    t_s: p.t_s,
                    value: value(p),
                })
                .collect(),
        })
        .collect()
}

/// The server's sessions and pool addresses in use, and the pool's size.
fn gauges(server: &SstpdProcess) -> Result<(i64, i64, i64), ScenarioError> {
    let stats = server.stats()?;
    let gauge = |name: &str| stats.gauges.get(name).copied().unwrap_or_default();
    Ok((
        gauge("sessions_active"),
        gauge("pool_ipv4_in_use"),
        gauge("pool_ipv4_size"),
    ))
}

/// The server's open descriptors once a control exchange just made has
/// let go of its connection (the server closes it after our side does):
/// the smaller of two readings a moment apart.
fn quiet_fds(server: &SstpdProcess) -> Result<u64, ScenarioError> {
    std::thread::sleep(Duration::from_millis(100));
    let first = server.open_fds()?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(first.min(server.open_fds()?))
}

/// Waits (at most `bound`) until the server has `sessions` sessions; the
/// count it has then. Held runs that exit meanwhile are an error.
fn settle(
    server: &SstpdProcess,
    held: &mut [LoadChild],
    sessions: i64,
    bound: Duration,
    interrupt: &AtomicBool,
) -> Result<i64, ScenarioError> {
    let deadline = Instant::now() + bound;
    loop {
        let (active, _, _) = gauges(server)?;
        if active == sessions || Instant::now() >= deadline {
            return Ok(active);
        }
        if interrupt.load(Ordering::Acquire) {
            return Err(ScenarioError::Interrupted);
        }
        for child in held.iter_mut() {
            if let Some(status) = child.try_wait()? {
                return Err(ScenarioError::Loadgen(format!(
                    "a held run exited ({status}) during the soak:\n{}",
                    child.log_tail(20)
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a held run of `n` sessions and waits until the server has
/// `total` sessions.
fn hold(
    bed: &mut Testbed,
    mut spec: LoadSpec,
    concurrency: usize,
    held: &mut Vec<LoadChild>,
    total: u64,
    interrupt: &AtomicBool,
) -> Result<(), ScenarioError> {
    spec.setup_concurrency = Some(concurrency);
    let bound = spec.deadline() - spec.duration;
    held.push(bed.start_load(&spec)?);
    let server = bed
        .server()
        .ok_or_else(|| ScenarioError::Setup("no local sstpd".into()))?;
    let active = settle(server, held, total as i64, bound, interrupt)?;
    if active < total as i64 {
        return Err(ScenarioError::Loadgen(format!(
            "{active} of {total} held sessions came up within {:.0} s",
            bound.as_secs_f64()
        )));
    }
    Ok(())
}

fn failures(report: &Report) -> u64 {
    report.sessions.failed + report.sessions.dropped
}

/// Runs the soak on `bed` (a local sstpd).
pub fn soak(
    bed: &mut Testbed,
    soak: &SoakOptions,
    concurrency: usize,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    let Some(server) = bed.server() else {
        return Err(ScenarioError::Setup(
            "soak needs a local sstpd: it samples the server's memory, descriptors and pool".into(),
        ));
    };
    let empty = server.sample()?;
    let empty_fds = server.open_fds()?;
    let (held_n, idle_n) = (soak.held(), soak.idle());
    let intervals = soak.intervals();
    // The held runs end by SIGINT after the last interval; their own
    // duration only bounds them.
    let hold_for = soak.duration * 2 + Duration::from_secs(600);
    print(&format!(
        "  {idle_n} idle sessions and {} with bulk traffic ({} packets/s each way each) coming \
         up ...",
        soak.bulk_sessions, soak.bulk_pps
    ));
    let mut held: Vec<LoadChild> = Vec::new();
    hold(
        bed,
        LoadSpec::new(Mode::Idle, idle_n, hold_for),
        concurrency,
        &mut held,
        idle_n,
        interrupt,
    )?;
    if soak.bulk_sessions > 0 {
        let mut spec = LoadSpec::new(
            Mode::Bulk {
                to: None,
                direction: Direction::Both,
                flows: 1,
                follow: false,
            },
            soak.bulk_sessions,
            hold_for,
        );
        spec.pps = Some(soak.bulk_pps);
        hold(bed, spec, concurrency, &mut held, held_n, interrupt)?;
    }
    print(&format!(
        "  {held_n} held; {intervals} interval(s) of {:.0} s, each with {} echo sessions \
         ({} requests/s each) and {} churn loops (hold {} ms) ...",
        soak.interval.as_secs_f64(),
        soak.echo_sessions,
        soak.echo_pps,
        soak.churn_loops,
        soak.churn_hold.as_millis()
    ));
    let started = Instant::now();
    let mut points: Vec<SoakPoint> = Vec::new();
    print(&live_line(&table_rows(&[])[0]));
    for i in 0..intervals {
        let server = bed.server().expect("checked above");
        let before = server.sample()?;
        let mut echo = LoadSpec::new(Mode::Echo { to: None }, soak.echo_sessions, soak.interval);
        echo.pps = Some(soak.echo_pps);
        echo.setup_concurrency = Some(concurrency);
        let churn = LoadSpec::new(
            Mode::Churn {
                hold: soak.churn_hold,
            },
            soak.churn_loops,
            soak.interval,
        );
        let echo_run = bed.start_load(&echo)?;
        let churn_run = bed.start_load(&churn)?;
        let echo_report = echo_run.wait(interrupt);
        let churn_report = churn_run.wait(interrupt)?;
        let echo_report = echo_report?;
        let server = bed.server().expect("checked above");
        let active = settle(server, &mut held, held_n as i64, SETTLE, interrupt)?;
        let after = server.sample()?;
        let (_, pool_in_use, pool_size) = gauges(server)?;
        let fds = quiet_fds(server)?;
        let seconds = after.at.duration_since(before.at).as_secs_f64();
        let point = SoakPoint {
            t_s: started.elapsed().as_secs_f64(),
            rss_bytes: after.rss_bytes,
            fds,
            sessions_active: active,
            pool_in_use,
            pool_size,
            server_cores: if seconds > 0.0 {
                after.cpu_since(&before) / seconds
            } else {
                0.0
            },
            setups: churn_report.sessions.established,
            setup_p50_us: churn_report.setup.total.p50_us,
            setup_p99_us: churn_report.setup.total.p99_us,
            echo_replies: echo_report.rtt.count,
            echo_p50_us: echo_report.rtt.p50_us,
            echo_p99_us: echo_report.rtt.p99_us,
            echo_lost: echo_report.loss.round_trip.as_ref().map_or(0, |l| l.lost),
            failures: failures(&echo_report) + failures(&churn_report),
        };
        print(&live_line(&table_row(i as usize, &point)));
        points.push(point);
    }
    let mut held_failures = 0;
    for mut child in held {
        child.signal(libc::SIGINT);
        held_failures += failures(&child.wait(interrupt)?);
    }
    // Everything ended: the pool must be empty again.
    let server = bed.server().expect("checked above");
    settle(server, &mut [], 0, SETTLE, interrupt)?;
    let (_, pool_after, _) = gauges(server)?;
    let end = server.sample()?;
    let end_fds = quiet_fds(server)?;
    let verdict = verdict(&points, held_n, held_failures, pool_after);
    let result = soak_result(
        soak,
        &points,
        &verdict,
        held_failures,
        pool_after,
        (empty, empty_fds),
        (end, end_fds),
    );
    let mut summary = crate::table::render(&table_rows(&points), |i| i != 0);
    let _ = write!(
        summary,
        "  {}",
        if verdict.is_flat() {
            format!(
                "flat at the end: the last interval against interval {} (after the warm-up)",
                verdict.baseline + 1
            )
        } else {
            format!(
                "NOT flat at the end (the last interval against interval {}):\n    {}",
                verdict.baseline + 1,
                verdict.not_flat.join("\n    ")
            )
        }
    );
    print(&summary);
    let mut outcome = Outcome::single(result, Vec::new(), print);
    outcome.series = series(&points);
    Ok(outcome)
}

/// The soak's result: the last point against the baseline, the verdict.
fn soak_result(
    soak: &SoakOptions,
    points: &[SoakPoint],
    verdict: &Verdict,
    held_failures: u64,
    pool_after: i64,
    (empty, empty_fds): (ProcessSample, u64),
    (end, end_fds): (ProcessSample, u64),
) -> ScenarioResult {
    let mut figures = Vec::new();
    let count = |metric: &str, value: f64| fig(metric, "count", value, Better::Neither);
    if let (Some(base), Some(last)) = (points.get(verdict.baseline), points.last()) {
        figures.extend([
            fig(
                "server_rss_growth",
                "B",
                last.rss_bytes as f64 - base.rss_bytes as f64,
                Better::Lower,
            ),
            fig("server_rss_end", "B", last.rss_bytes as f64, Better::Lower),
            fig(
                "server_rss_baseline",
                "B",
                base.rss_bytes as f64,
                Better::Neither,
            ),
            count("fds_growth", last.fds as f64 - base.fds as f64),
            count("fds_end", last.fds as f64),
            count("pool_in_use_end", last.pool_in_use as f64),
            fig(
                "setup_latency_p50",
                "us",
                last.setup_p50_us as f64,
                Better::Lower,
            ),
            fig(
                "setup_latency_p99",
                "us",
                last.setup_p99_us as f64,
                Better::Lower,
            ),
            fig("echo_rtt_p50", "us", last.echo_p50_us as f64, Better::Lower),
            fig("echo_rtt_p99", "us", last.echo_p99_us as f64, Better::Lower),
        ]);
    }
    let failures: u64 = points.iter().map(|p| p.failures).sum::<u64>() + held_failures;
    figures.extend([
        count("sessions_held", soak.held() as f64),
        count(
            "churn_sessions",
            points.iter().map(|p| p.setups).sum::<u64>() as f64,
        ),
        count("failed_sessions", failures as f64),
        count(
            "echo_lost",
            points.iter().map(|p| p.echo_lost).sum::<u64>() as f64,
        ),
        count("pool_in_use_after", pool_after as f64),
        fig(
            "server_rss_empty",
            "B",
            empty.rss_bytes as f64,
            Better::Neither,
        ),
        fig(
            "server_rss_after",
            "B",
            end.rss_bytes as f64,
            Better::Neither,
        ),
        count("fds_empty", empty_fds as f64),
        count("fds_after", end_fds as f64),
    ]);
    let mut params = Params::new();
    params.insert(
        "verdict".into(),
        if verdict.is_flat() {
            "flat".into()
        } else {
            format!("not flat: {}", verdict.not_flat.join("; "))
        },
    );
    params.insert(
        "baseline_interval".into(),
        (verdict.baseline + 1).to_string(),
    );
    for (key, value) in [
        ("duration_s", soak.duration.as_secs_f64().to_string()),
        ("interval_s", soak.interval.as_secs_f64().to_string()),
        ("intervals", points.len().to_string()),
        ("sessions", soak.sessions.to_string()),
        ("idle_sessions", soak.idle().to_string()),
        ("bulk_sessions", soak.bulk_sessions.to_string()),
        ("bulk_pps", soak.bulk_pps.to_string()),
        ("echo_sessions", soak.echo_sessions.to_string()),
        ("echo_pps", soak.echo_pps.to_string()),
        ("churn_loops", soak.churn_loops.to_string()),
        ("churn_hold_ms", soak.churn_hold.as_millis().to_string()),
    ] {
        params.insert(key.into(), value);
    }
    ScenarioResult {
        name: "soak".into(),
        params,
        figures,
        server: None,
        latency: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(rss_mib: u64, fds: u64, sessions: i64) -> SoakPoint {
        SoakPoint {
            t_s: 60.0,
            rss_bytes: rss_mib << 20,
            fds,
            sessions_active: sessions,
            pool_in_use: sessions,
            pool_size: 4093,
            server_cores: 0.1,
            setups: 400,
            setup_p50_us: 3000,
            setup_p99_us: 9000,
            echo_replies: 100,
            echo_p50_us: 300,
            echo_p99_us: 900,
            echo_lost: 0,
            failures: 0,
        }
    }

    #[test]
    fn the_sessions_are_split_into_held_echo_and_churn() {
        let soak = SoakOptions::default();
        assert_eq!(soak.check(), Ok(()));
        assert_eq!(soak.held(), 2000 - 100 - 8);
        assert_eq!(soak.idle(), 2000 - 100 - 8 - 20);
        assert_eq!(soak.intervals(), 30);
        let odd = SoakOptions {
            duration: Duration::from_secs(100),
            interval: Duration::from_secs(30),
            ..SoakOptions::default()
        };
        assert_eq!(odd.intervals(), 4);
        for bad in [
            SoakOptions {
                sessions: 128,
                ..SoakOptions::default()
            },
            SoakOptions {
                interval: Duration::from_millis(500),
                ..SoakOptions::default()
            },
            SoakOptions {
                interval: Duration::from_secs(3600),
                ..SoakOptions::default()
            },
            SoakOptions {
                echo_pps: 0.0,
                ..SoakOptions::default()
            },
            SoakOptions {
                churn_loops: 0,
                ..SoakOptions::default()
            },
            SoakOptions {
                duration: Duration::from_secs(48 * 3600),
                ..SoakOptions::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_baseline_follows_the_warm_up_and_leaves_a_last_point() {
        assert_eq!(baseline_index(1), 0);
        assert_eq!(baseline_index(2), 0);
        assert_eq!(baseline_index(3), 1);
        assert_eq!(baseline_index(30), 3);
    }

    #[test]
    fn steady_points_are_flat() {
        let points = [
            point(60, 2100, 1892),
            point(80, 2100, 1892),
            point(81, 2100, 1892),
            point(83, 2100, 1892),
        ];
        let v = verdict(&points, 1892, 0, 0);
        assert!(v.is_flat(), "{v:?}");
        assert_eq!(v.baseline, 1);
    }

    #[test]
    fn each_figure_that_moved_is_named() {
        let mut last = point(100, 2105, 1891);
        last.pool_in_use = 1893;
        last.failures = 2;
        let points = [point(60, 2100, 1892), point(80, 2100, 1892), last];
        let v = verdict(&points, 1892, 1, 3);
        let named: Vec<&str> = v
            .not_flat
            .iter()
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(
            named,
            ["rss", "fds", "pool", "sessions", "pool", "failures"]
        );
        assert!(v.not_flat[0].contains("grew 20.0 MiB"), "{v:?}");
        assert!(v.not_flat[5].contains("3 sessions"), "{v:?}");
    }

    #[test]
    fn the_series_have_one_point_per_interval_by_chart() {
        let points = [point(60, 2100, 1892), point(61, 2100, 1892)];
        let series = series(&points);
        let charts: Vec<&str> = series.iter().map(|s| s.chart.as_str()).collect();
        assert_eq!(
            charts,
            [
                "soak-rss",
                "soak-fds",
                "soak-pool",
                "soak-pool",
                "soak-churn",
                "soak-setup",
                "soak-setup",
                "soak-echo",
                "soak-echo",
                "soak-cpu"
            ]
        );
        assert!(series.iter().all(|s| s.points.len() == 2));
        assert_eq!(series[0].points[1].value, 61.0);
        assert_eq!(series[4].points[0].value, 400.0);
        assert_eq!(series[6].points[0].value, 9.0);
        let rows = table_rows(&points);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][3], "1892/4093");
        assert_eq!(rows[1][8], "3.00/9.00");
        assert_eq!(rows[1][10..], ["0", "0"]);
    }
}
