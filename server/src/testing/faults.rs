//! Fault injection into the running server, for the tests of what the
//! runtime does when one of its own tasks fails. Compiled only with the
//! `testing` feature (and in the crate's unit tests): the shipped server
//! has none of these hooks.

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

/// Makes `task` of the next session of `user` with an IPv4 address panic
/// once (then the hook is spent).
pub fn panic_session_of(user: &str, task: SessionTask) {
    *lock() = Some((user.to_string(), task));
}

/// Whether `task` of a session of `user` is to panic now; spends the hook.
#[cfg(feature = "runtime")]
pub(crate) fn session_should_panic(user: Option<&str>, task: SessionTask) -> bool {
    let mut armed = lock();
    let hit = matches!(
        (&*armed, user),
        (Some((victim, t)), Some(user)) if victim == user && *t == task
    );
    if hit {
        *armed = None;
    }
    hit
}

fn lock() -> std::sync::MutexGuard<'static, Option<(String, SessionTask)>> {
    SESSION_PANIC
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
