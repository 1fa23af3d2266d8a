//! The two steps every session writer repeats, for the server's sessions
//! and the client runtime alike: run the protocol's due timers and collect
//! what it wants to send, then sleep until there is new work or the next
//! timer is due; and, after closing, to linger for the peer's close.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::proto::session::Session;
use crate::proto::sstp::Transmit;

/// Fires the session's timers if they are due and appends everything it
/// wants to send to `out`. Returns the next timer deadline.
pub(crate) fn collect_output(
    proto: &RefCell<Session>,
    out: &mut Transmit,
    now: Instant,
) -> Option<Instant> {
    let mut proto = proto.borrow_mut();
    if proto.poll_timeout().is_some_and(|t| t <= now) {
        proto.handle_timeout(now);
    }
    proto.poll_transmit(now, out);
    proto.poll_timeout()
}

/// Waits until `wake` is notified or `deadline` passes (no deadline: only
/// the notification). Both futures are cancel-safe.
pub(crate) async fn wait_for_work(wake: &Notify, deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => {
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                _ = wake.notified() => {}
                _ = sleep => {}
            }
        }
        None => wake.notified().await,
    }
}

/// How long a session that has sent its close_notify and FIN waits for
/// the peer's.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// After our close_notify and FIN: waits, at most [`CLOSE_LINGER`], until
/// the reader has seen the peer's end of the stream (`reader_done`, each
/// change announced by `notify_one` on `wake`). Closing the socket before
/// the peer's close_notify and FIN arrive makes the kernel answer them
/// with a reset, which clients report as an error.
pub(crate) async fn linger(reader_done: &Cell<bool>, wake: &Notify) {
    let deadline = Instant::now() + CLOSE_LINGER;
    while !reader_done.get() && Instant::now() < deadline {
        wait_for_work(wake, Some(deadline)).await;
    }
}
