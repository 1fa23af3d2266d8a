//! systemd's service notification protocol (sd_notify(3), `Type=notify`):
//! `READY=1` once every worker runs, `RELOADING=1` + `MONOTONIC_USEC=` and
//! `READY=1` around a reload, `STOPPING=1` on shutdown, `STATUS=` with the
//! session count, and `WATCHDOG=1` at half of `WATCHDOG_USEC` while every
//! worker is alive.
//!
//! The datagrams are sent with the `sd-notify` crate. Its
//! `watchdog_enabled` wants `WATCHDOG_PID` to be set; libsystemd's
//! `sd_watchdog_enabled(3)` also accepts it unset, so [`watchdog_interval`]
//! reads the two variables itself, with libsystemd's rules.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) nothing is sent and no
//! thread is started.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::worker::Shared;

/// How often `STATUS=` is refreshed (sent only when its text changed).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// A worker whose last heartbeat is older than this (or than the watchdog
/// ping interval, if longer) is taken as hung.
const HEARTBEAT_STALE: Duration = Duration::from_secs(2);

/// Whether the service manager listens (`NOTIFY_SOCKET` is set).
pub fn notify_socket_set() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

/// Sends `states` in one datagram; a failure is logged (debug) and
/// otherwise ignored: the service manager may be gone.
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` with `STATUS=`.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with `MONOTONIC_USEC=` (systemd 253 and later insist on
/// it with `Type=notify-reload`; older ones ignore it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::debug!(error = %e, "no monotonic clock for MONOTONIC_USEC");
            notify(&[NotifyState::Reloading]);
        }
    }
}

/// `STOPPING=1` with `STATUS=`.
pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Half of `WATCHDOG_USEC` when the watchdog is on for this process: the
/// variable is set and `WATCHDOG_PID` is unset or names this process
/// (sd_watchdog_enabled(3)).
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        None => {}
        Some(Ok(pid)) if pid == own => {}
        Some(_) => return None,
    }
    Some(Duration::from_micros(usec / 2))
}

/// The `STATUS=` text.
pub fn status_text(sessions: i64) -> String {
    match sessions.max(0) {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    }
}

/// The thread that pings the watchdog and refreshes `STATUS=`; stopped
/// (and joined) on drop.
#[derive(Debug)]
pub struct Monitor {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    pub(crate) fn start(shared: Arc<Shared>, watchdog: Option<Duration>) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sstpd-systemd".into())
            .spawn(move || monitor(&shared, watchdog, &stopped))?;
        Ok(Monitor {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn monitor(shared: &Shared, watchdog: Option<Duration>, stopped: &mpsc::Receiver<()>) {
    let start = Instant::now();
    let mut next_ping = watchdog.map(|_| start);
    let mut next_status = start;
    let mut last_status = String::new();
    let mut withheld = false;
    loop {
        let now = Instant::now();
        if let (Some(due), Some(interval)) = (next_ping, watchdog) {
            if due <= now {
                let within = interval.max(HEARTBEAT_STALE);
                let stale = shared.heartbeats.stale(now, within);
                let failed = shared.fatal.error().is_some();
                if stale.is_empty() && !failed {
                    notify(&[NotifyState::Watchdog]);
                    withheld = false;
                } else if !withheld {
                    tracing::error!(
                        ?stale,
                        failed,
                        "a worker is not running: withholding the systemd watchdog ping"
                    );
                    withheld = true;
                }
                next_ping = Some((due + interval).max(now));
            }
        }
        if next_status <= now {
            let status = status_text(shared.metrics.sessions_active());
            if status != last_status {
                notify(&[NotifyState::Status(&status)]);
                last_status = status;
            }
            next_status = (next_status + STATUS_INTERVAL).max(now);
        }
        let next = next_ping.map_or(next_status, |p| p.min(next_status));
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_of_watchdog_usec_for_this_process_only() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval_from(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("-5"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
    }

    #[test]
    fn status_names_the_session_count() {
        assert_eq!(status_text(0), "0 sessions");
        assert_eq!(status_text(1), "1 session");
        assert_eq!(status_text(1234), "1234 sessions");
        assert_eq!(status_text(-1), "0 sessions");
    }
}
