//! Fault injection into the running server, for the tests of what the
//! runtime does when one of its own tasks fails. Compiled only with the
//! `testing` feature (and in the crate's unit tests): the shipped server
//! has none of these hooks.
//!
//! The hooks are global to the process: one server per test process
//! (nextest runs each test in its own).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Which of a session's two tasks panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionTask {
    /// The task that reads the socket and feeds the protocol: it panics
    /// after handling the next input.
    Reader,
    /// The task that writes and runs the timers: it panics the next time
    /// it has something to send.
    Writer,
}

static SESSION_PANIC: Mutex<Option<(String, SessionTask)>> = Mutex::new(None);
/// Whether [`SESSION_PANIC`] is armed: sessions ask on every input and
/// write, so asking is one relaxed load while nothing is (a lock shared by
/// every worker's sessions would be a cost in the benchmarks of a build
/// with these hooks).
static SESSION_ARMED: AtomicBool = AtomicBool::new(false);

/// Makes `task` of the next session of `user` with an IPv4 address panic
/// once (then the hook is spent).
pub fn panic_session_of(user: &str, task: SessionTask) {
    *lock() = Some((user.to_string(), task));
    SESSION_ARMED.store(true, Ordering::SeqCst);
}

/// Whether `task` of a session of `user` is to panic now; spends the hook.
#[cfg(feature = "runtime")]
pub(crate) fn session_should_panic(user: Option<&str>, task: SessionTask) -> bool {
    if !SESSION_ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let mut armed = lock();
    let hit = matches!(
        (&*armed, user),
        (Some((victim, t)), Some(user)) if victim == user && *t == task
    );
    if hit {
        *armed = None;
        SESSION_ARMED.store(false, Ordering::SeqCst);
    }
    hit
}

fn lock() -> std::sync::MutexGuard<'static, Option<(String, SessionTask)>> {
    SESSION_PANIC
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which of a worker's own tasks (those whose end is fatal) panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerTask {
    /// An accept loop (of a listener without the PROXY protocol): it
    /// panics once it has handed on the next connection it admits.
    Accept,
    /// The TUN reader: it panics after reading the next packet from the
    /// TUN device, before routing it.
    TunReader,
    /// The TUN writer: it panics when it is about to write the next
    /// packets to the TUN device.
    TunWriter,
    /// The hand-over: it panics when it is about to send the next packets
    /// read for another worker's sessions to that worker.
    HandOver,
}

/// One flag per [`WorkerTask`]: the TUN tasks ask on every read or batch,
/// so asking is one relaxed load while nothing is armed.
static WORKER_PANIC: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];

/// Makes `task` of the next worker that gets to it panic once (then the
/// hook is spent).
pub fn panic_worker_task(task: WorkerTask) {
    WORKER_PANIC[task as usize].store(true, Ordering::SeqCst);
}

/// Whether `task` is to panic now; spends the hook.
#[cfg(feature = "runtime")]
pub(crate) fn worker_task_should_panic(task: WorkerTask) -> bool {
    let armed = &WORKER_PANIC[task as usize];
    armed.load(Ordering::Relaxed) && armed.swap(false, Ordering::SeqCst)
}
