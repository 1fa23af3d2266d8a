//! What ends the process: a worker thread that dies (panics, fails, or
//! returns without being asked to stop) or a TUN queue that is lost leaves
//! the server unable to carry its sessions' traffic, for good. Rather than
//! log it and limp on, the first such failure is recorded in [`Fatal`],
//! which wakes whoever waits on it ([`crate::app::run`]): the server then
//! shuts down and the process exits non-zero, for its service manager to
//! restart it.
//!
//! A worker can also hang without dying (a busy loop, a blocking call on
//! its thread): [`Heartbeats`] records when each worker's runtime last ran
//! its heartbeat task, and systemd's watchdog ping is sent only while all of
//! them are recent (see `app::systemd`).

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often each worker's heartbeat task runs.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// Each worker's last heartbeat: one relaxed store per worker every
/// [`HEARTBEAT_INTERVAL`], read by the systemd watchdog thread.
pub(crate) struct Heartbeats {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last beat, plus one; 0: never.
    beats: Box<[AtomicU64]>,
}

impl Heartbeats {
    pub fn new(workers: usize) -> Self {
        Heartbeats {
            epoch: Instant::now(),
            beats: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Worker `index` is alive at `now`.
    pub fn beat(&self, index: usize, now: Instant) {
        if let Some(beat) = self.beats.get(index) {
            let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
            beat.store(ms + 1, Ordering::Relaxed);
        }
    }

    /// Whether every worker has beaten at least once (its runtime runs).
    pub fn all_started(&self) -> bool {
        self.beats.iter().all(|b| b.load(Ordering::Relaxed) != 0)
    }

    /// The workers that have not beaten within `within` before `now`.
    pub fn stale(&self, now: Instant, within: Duration) -> Vec<usize> {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let within_ms = within.as_millis() as u64;
        self.beats
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                let last = b.load(Ordering::Relaxed);
                last == 0 || now_ms.saturating_sub(last - 1) > within_ms
            })
            .map(|(i, _)| i)
            .collect()
    }
}

type Hook = Box<dyn FnOnce() + Send>;

/// The first failure the server cannot recover from, and who to tell.
#[derive(Default)]
pub(crate) struct Fatal {
    state: Mutex<FatalState>,
}

#[derive(Default)]
struct FatalState {
    error: Option<String>,
    hooks: Vec<Hook>,
}

impl Fatal {
    /// Records `error` (the first one only; later ones are logged) and
    /// calls the waiting hooks.
    pub fn report(&self, error: String) {
        let hooks = {
            let mut state = self.lock();
            if state.error.is_some() {
                tracing::debug!(%error, "another failure after the first");
                return;
            }
            tracing::error!("{error}");
            state.error = Some(error);
            std::mem::take(&mut state.hooks)
        };
        for hook in hooks {
            hook();
        }
    }

    /// The failure, once there is one.
    pub fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Calls `hook` once there is a failure (at once if there is one).
    pub fn on_report(&self, hook: Hook) {
        let mut state = self.lock();
        if state.error.is_some() {
            drop(state);
            hook();
        } else {
            state.hooks.push(hook);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FatalState> {
        // A hook that panicked does not make the record unreadable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs worker `index` (`body`, the worker's whole life on its thread) and
/// reports to `fatal` how it ended, unless it ended because `stopping` was
/// set: a panic, an error, or a return nobody asked for.
pub(crate) fn watch_worker(
    index: usize,
    fatal: &Fatal,
    stopping: &AtomicBool,
    body: impl FnOnce() -> io::Result<()>,
) {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) if stopping.load(Ordering::SeqCst) => return,
        Ok(Ok(())) => "stopped unexpectedly".to_string(),
        Ok(Err(e)) => format!("failed: {e}"),
        Err(panic) => format!("panicked: {}", panic_message(&*panic)),
    };
    fatal.report(format!("worker {index} {failure}"));
}

/// One of a worker's own tasks (accepting on a listener, the TUN queue's
/// reader and writer, handing packets to other workers), watched: without
/// it the worker cannot do its job, so its end while `stopping()` is false,
/// by a panic (tokio catches it and drops the task) or by a return, is
/// reported to `report` as `"<what> ended"`. Before, such a task ended
/// alone and the worker went on without it, its heartbeat still beating.
pub(crate) fn watch_task(
    what: String,
    stopping: impl Fn() -> bool + 'static,
    report: impl Fn(String) + 'static,
    task: impl Future<Output = ()> + 'static,
) -> impl Future<Output = ()> + 'static {
    struct Watch<S: Fn() -> bool, R: Fn(String)> {
        what: String,
        stopping: S,
        report: R,
    }
    impl<S: Fn() -> bool, R: Fn(String)> Drop for Watch<S, R> {
        fn drop(&mut self) {
            if !(self.stopping)() {
                (self.report)(format!("{} ended", self.what));
            }
        }
    }
    let watch = Watch {
        what,
        stopping,
        report,
    };
    async move {
        task.await;
        drop(watch);
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn a_dying_worker_is_reported_once_and_wakes_the_waiters() {
        let fatal = Fatal::default();
        let stopping = AtomicBool::new(false);
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        fatal.on_report(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        // A worker asked to stop ends quietly.
        stopping.store(true, Ordering::SeqCst);
        watch_worker(0, &fatal, &stopping, || Ok(()));
        assert_eq!(fatal.error(), None);
        stopping.store(false, Ordering::SeqCst);

        watch_worker(3, &fatal, &stopping, || panic!("boom"));
        let error = fatal.error().expect("reported");
        assert!(error.starts_with("worker 3 panicked: boom"), "{error}");
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // Later failures do not replace the first; late waiters are told
        // at once.
        watch_worker(1, &fatal, &stopping, || Err(io::Error::other("ring")));
        assert_eq!(fatal.error(), Some(error));
        let w = woken.clone();
        fatal.on_report(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_worker_task_that_ends_unasked_is_reported_and_one_asked_to_is_not() {
        use std::cell::{Cell, RefCell};
        use std::rc::Rc;
        let reports = Rc::new(RefCell::new(Vec::<String>::new()));
        let stopping = Rc::new(Cell::new(false));
        let watched = |what: &str, task: std::pin::Pin<Box<dyn Future<Output = ()>>>| {
            let (reports, stopping) = (reports.clone(), stopping.clone());
            watch_task(
                what.to_string(),
                move || stopping.get(),
                move |m| reports.borrow_mut().push(m),
                task,
            )
        };
        tokio_uring::start(async {
            // A panic: tokio catches it, the task ends.
            let panicked = tokio_uring::spawn(watched(
                "worker 0: its accept task",
                Box::pin(async { panic!("a refused submission") }),
            ));
            assert!(panicked.await.is_err());
            // A return nobody asked for.
            tokio_uring::spawn(watched("worker 1: its TUN writer", Box::pin(async {})))
                .await
                .unwrap();
            // A return while the worker stops, and a task dropped with
            // its runtime as it stops: nothing to report.
            stopping.set(true);
            tokio_uring::spawn(watched("worker 2: its TUN reader", Box::pin(async {})))
                .await
                .unwrap();
            tokio_uring::spawn(watched(
                "worker 3: its hand-over",
                Box::pin(std::future::pending()),
            ));
        });
        assert_eq!(
            *reports.borrow(),
            [
                "worker 0: its accept task ended",
                "worker 1: its TUN writer ended"
            ]
        );
    }

    #[test]
    fn a_worker_that_stops_beating_is_stale() {
        let beats = Heartbeats::new(2);
        let t0 = beats.epoch;
        let within = Duration::from_secs(2);
        assert!(!beats.all_started());
        assert_eq!(beats.stale(t0, within), [0, 1]);
        beats.beat(0, t0);
        beats.beat(1, t0 + Duration::from_millis(500));
        assert!(beats.all_started());
        assert!(beats.stale(t0 + Duration::from_secs(2), within).is_empty());
        // Worker 1 keeps beating, worker 0 hangs.
        beats.beat(1, t0 + Duration::from_millis(2500));
        assert_eq!(beats.stale(t0 + Duration::from_millis(2001), within), [0]);
        assert_eq!(beats.stale(t0 + Duration::from_millis(2600), within), [0]);
        // It recovers.
        beats.beat(0, t0 + Duration::from_millis(2700));
        assert!(beats
            .stale(t0 + Duration::from_millis(2800), within)
            .is_empty());
        // An index out of range is ignored.
        beats.beat(9, t0);
    }

    #[test]
    fn a_worker_that_fails_or_returns_unasked_is_reported() {
        for (body, expected) in [
            (
                Box::new(|| Err(io::Error::other("ring setup"))) as Box<dyn FnOnce() -> _>,
                "worker 0 failed: ring setup",
            ),
            (Box::new(|| Ok(())), "worker 0 stopped unexpectedly"),
            (
                Box::new(|| std::panic::panic_any(String::from("formatted 7"))),
                "worker 0 panicked: formatted 7",
            ),
        ] {
            let fatal = Fatal::default();
            watch_worker(0, &fatal, &AtomicBool::new(false), body);
            let error = fatal.error().unwrap();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
