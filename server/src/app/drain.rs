//! Graceful drain of a node (`sstpctl drain`): take it out of a pool of
//! sstpd nodes behind a load balancer without a burst of failures.
//!
//! While draining, the node
//!
//! 1. takes no new sessions: its listeners stay open and keep accepting,
//!    and each new connection is closed at once with a FIN (counted
//!    `refused_draining`; see `worker::session`). Closing the listeners
//!    instead would make the kernel reset every connection still in their
//!    accept queues, and a `SO_REUSEPORT` group that is closed and bound
//!    again may not get the same place back; kept open, `--cancel` is one
//!    flag. A load balancer moves new clients away on the health check:
//!    `GET /health` on the metrics endpoint answers 503 `draining`;
//! 2. reports itself as draining: `/health`, the gauge `sstpd_draining`,
//!    `sstpctl stats` and `sstpctl sessions`;
//! 3. disconnects its sessions one by one, spread evenly over the period
//!    ([`DrainSchedule`]), each as a server-initiated close (LCP
//!    Terminate-Request, then SSTP Call Disconnect), counted as
//!    `sessions_closed{reason="drain"}` and accounted with
//!    Acct-Terminate-Cause Admin-Reboot (the operator is ending service on
//!    this NAS, RFC 2866 5.10, as SIGTERM does);
//! 4. stays up once its sessions are gone, until it is stopped or
//!    resumed (`sstpctl drain --cancel`).
//!
//! Spreading the disconnects matters because each one makes a client
//! reconnect (to another node), authenticate and send accounting Start:
//! all at once they arrive as one burst at the load balancer, the other
//! nodes' TLS handshakes and the shared RADIUS server.
//!
//! The schedule is pure (`now` comes in); `Drainer` runs it on a thread
//! of its own (`sstpd-drain`), sending each disconnect on the owning
//! worker's control lane at its time.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Event;
use crate::routing::session_table::SessionRef;
use crate::worker::{send_control, Shared, WorkerMsg};

/// When each session of a drain is disconnected.
///
/// Session `k` of `n` goes at `start + over * k / n`: the first at once,
/// then one every `over / n`, the last at `over - over / n`, so the
/// disconnects (and the reconnects elsewhere they cause) arrive at an
/// even rate. The sessions are taken round robin over the workers, so
/// every worker closes its share at every point of the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainSchedule {
    due: VecDeque<(Instant, SessionRef)>,
    interval: Duration,
}

impl DrainSchedule {
    /// The schedule for `sessions`, starting at `start`, spread over
    /// `over`.
    pub fn new(
        sessions: impl IntoIterator<Item = SessionRef>,
        start: Instant,
        over: Duration,
    ) -> Self {
        let mut by_worker: BTreeMap<u16, VecDeque<SessionRef>> = BTreeMap::new();
        for session in sessions {
            by_worker
                .entry(session.worker)
                .or_default()
                .push_back(session);
        }
        let mut ordered = Vec::new();
        while !by_worker.is_empty() {
            by_worker.retain(|_, queue| {
                if let Some(session) = queue.pop_front() {
                    ordered.push(session);
                }
                !queue.is_empty()
            });
        }
        let count = u32::try_from(ordered.len()).unwrap_or(u32::MAX).max(1);
        let interval = over / count;
        let due = ordered
            .into_iter()
            .enumerate()
            .map(|(k, session)| {
                let k = u32::try_from(k).unwrap_or(u32::MAX);
                (
                    start + over.mul_f64(f64::from(k) / f64::from(count)),
                    session,
                )
            })
            .collect();
        DrainSchedule { due, interval }
    }

    /// The sessions whose time has come by `now`, in order; each is handed
    /// out once.
    pub fn take_due(&mut self, now: Instant) -> Vec<SessionRef> {
        let mut taken = Vec::new();
        while let Some(&(at, session)) = self.due.front() {
            if at > now {
                break;
            }
            self.due.pop_front();
            taken.push(session);
        }
        taken
    }

    /// When the next session is due; `None` once every one was handed out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.front().map(|&(at, _)| at)
    }

    /// Sessions not yet handed out.
    pub fn remaining(&self) -> usize {
        self.due.len()
    }

    /// The time between two disconnects.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// What `sstpctl drain` started: the sessions on the schedule and its pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DrainStarted {
    pub sessions: usize,
    pub interval: Duration,
}

/// The running drain, if any; owned by the control thread.
#[derive(Default)]
pub(crate) struct Drainer {
    run: Mutex<Option<DrainRun>>,
}

struct DrainRun {
    /// Dropped to stop the thread.
    _cancel: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Drainer {
    /// Starts draining: refuse new connections, then disconnect
    /// `sessions` (listed after the refusal began) over `over`. A drain
    /// already running is replaced (its remaining sessions are on the new
    /// list).
    pub(crate) fn start(
        &self,
        shared: &Arc<Shared>,
        over: Duration,
        list: impl Fn() -> Vec<SessionRef> + Send + 'static,
    ) -> std::io::Result<DrainStarted> {
        self.stop_run();
        shared.draining.store(true, Ordering::Release);
        let sessions = list();
        let schedule = DrainSchedule::new(sessions, Instant::now(), over);
        let started = DrainStarted {
            sessions: schedule.remaining(),
            interval: schedule.interval(),
        };
        shared
            .drain_pending
            .store(schedule.remaining(), Ordering::Relaxed);
        tracing::info!(
            sessions = started.sessions,
            over = ?over,
            interval = ?started.interval,
            "draining: refusing new connections, disconnecting the sessions over the period"
        );
        let (cancel, cancelled) = crossbeam_channel::bounded(0);
        let running = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sstpd-drain".into())
            .spawn(move || run(&running, schedule, &cancelled, list))?;
        *self.lock() = Some(DrainRun {
            _cancel: cancel,
            thread,
        });
        Ok(started)
    }

    /// Stops draining: the sessions not yet disconnected stay, new
    /// connections are taken again. Returns how many were left.
    pub(crate) fn resume(&self, shared: &Shared) -> usize {
        self.stop_run();
        shared.draining.store(false, Ordering::Release);
        let left = shared.drain_pending.swap(0, Ordering::Relaxed);
        tracing::info!(left, "drain cancelled: taking new sessions again");
        left
    }

    fn stop_run(&self) {
        let run = self.lock().take();
        if let Some(DrainRun { _cancel, thread }) = run {
            drop(_cancel);
            let _ = thread.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<DrainRun>> {
        self.run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        self.stop_run();
    }
}

/// The `sstpd-drain` thread: disconnects each session at its time until
/// the schedule is done, the drain is cancelled or the server stops. Once
/// the schedule is done, sessions that were being set up while it was
/// made (accepted before the refusal began) are disconnected too.
fn run(
    shared: &Shared,
    mut schedule: DrainSchedule,
    cancelled: &crossbeam_channel::Receiver<()>,
    list: impl Fn() -> Vec<SessionRef>,
) {
    let mut stragglers_checked = false;
    let mut disconnected = HashSet::new();
    loop {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        for session in schedule.take_due(Instant::now()) {
            disconnect(shared, session);
            disconnected.insert(session);
        }
        shared
            .drain_pending
            .store(schedule.remaining(), Ordering::Relaxed);
        let deadline = match schedule.next_deadline() {
            Some(deadline) => deadline,
            None if stragglers_checked => {
                tracing::info!("drained: every session was disconnected; new ones are refused until `sstpctl drain --cancel`");
                return;
            }
            None => {
                stragglers_checked = true;
                // Those disconnected above may still be closing.
                let stragglers = list().into_iter().filter(|s| !disconnected.contains(s));
                schedule = DrainSchedule::new(stragglers, Instant::now(), Duration::ZERO);
                continue;
            }
        };
        match cancelled.recv_deadline(deadline) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            // Cancelled or replaced (the sender is dropped).
            _ => return,
        }
    }
}

fn disconnect(shared: &Shared, to: SessionRef) {
    if let Some(mailbox) = shared.mailboxes.get(usize::from(to.worker)) {
        send_control(
            mailbox,
            WorkerMsg::Disconnect {
                to,
                reason: Event::Drain,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(worker: u16, slot: u32) -> SessionRef {
        SessionRef {
            worker,
            slot,
            generation: 0,
        }
    }

    #[test]
    fn disconnects_are_spread_evenly_over_the_period() {
        let start = Instant::now();
        let over = Duration::from_secs(10);
        let mut schedule = DrainSchedule::new((0..5).map(|s| session(0, s)), start, over);
        assert_eq!(schedule.interval(), Duration::from_secs(2));
        assert_eq!(schedule.remaining(), 5);
        // The first at once, then one every over / n.
        assert_eq!(schedule.take_due(start), [session(0, 0)]);
        assert_eq!(
            schedule.next_deadline(),
            Some(start + Duration::from_secs(2))
        );
        assert!(schedule
            .take_due(start + Duration::from_millis(1999))
            .is_empty());
        assert_eq!(
            schedule.take_due(start + Duration::from_secs(2)),
            [session(0, 1)]
        );
        // Late: everything due by now comes out at once, in order.
        assert_eq!(
            schedule.take_due(start + Duration::from_secs(7)),
            [session(0, 2), session(0, 3)]
        );
        assert_eq!(
            schedule.next_deadline(),
            Some(start + Duration::from_secs(8))
        );
        assert_eq!(
            schedule.take_due(start + Duration::from_secs(60)),
            [session(0, 4)]
        );
        assert_eq!(schedule.next_deadline(), None);
        assert_eq!(schedule.remaining(), 0);
        assert!(schedule
            .take_due(start + Duration::from_secs(60))
            .is_empty());
    }

    #[test]
    fn every_worker_gives_its_share_all_through_the_period() {
        let start = Instant::now();
        let sessions = [
            session(0, 1),
            session(0, 2),
            session(0, 3),
            session(0, 4),
            session(1, 1),
            session(1, 2),
            session(2, 1),
        ];
        let mut schedule = DrainSchedule::new(sessions, start, Duration::from_secs(7));
        let mut order = Vec::new();
        for second in 0..7 {
            let due = schedule.take_due(start + Duration::from_secs(second));
            assert_eq!(due.len(), 1, "one per interval");
            order.extend(due);
        }
        assert_eq!(
            order,
            [
                session(0, 1),
                session(1, 1),
                session(2, 1),
                session(0, 2),
                session(1, 2),
                session(0, 3),
                session(0, 4),
            ]
        );
    }

    #[test]
    fn an_empty_or_instant_drain_is_due_at_once() {
        let start = Instant::now();
        let mut empty = DrainSchedule::new([], start, Duration::from_secs(60));
        assert_eq!(empty.next_deadline(), None);
        assert!(empty.take_due(start).is_empty());
        let mut instant = DrainSchedule::new([session(0, 0), session(1, 0)], start, Duration::ZERO);
        assert_eq!(instant.take_due(start).len(), 2);
        // One session over a period goes at its start.
        let one = DrainSchedule::new([session(3, 9)], start, Duration::from_secs(60));
        assert_eq!(one.next_deadline(), Some(start));
        assert_eq!(one.interval(), Duration::from_secs(60));
    }
}
