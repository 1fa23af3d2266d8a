//! The two steps every session writer repeats, for the server's sessions
//! and the client runtime alike: run the protocol's due timers and collect
//! what it wants to send, then sleep until there is new work or the next
//! timer is due; and, after closing, to linger for the peer's close. And
//! for both readers, when a read may wait without a buffer
//! ([`QuietReads`]).

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::net::uring_tls::TlsConn;
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

/// A session writer's timer, for [`wait_for_work`]: one `Sleep` kept for
/// the writer's life and moved to each new deadline. A `Sleep` made per
/// wait enters the runtime's timer wheel when first polled and leaves it
/// when dropped, both under the time driver's lock: about 20 times a
/// session during its setup, for a deadline that mostly stays where it
/// was (the negotiation's restart timer, the pre-authentication window).
/// A kept one stays registered; moving it later costs nothing, earlier
/// one registration. Not polled before its first deadline, it holds no
/// place in the wheel.
pub(crate) fn writer_timer() -> tokio::time::Sleep {
    // Never reached: reset before it is first polled.
    const NOT_YET: Duration = Duration::from_secs(365 * 24 * 3600);
    tokio::time::sleep(NOT_YET)
}

/// Waits until `wake` is notified or `deadline` passes (no deadline: only
/// the notification), on `timer` ([`writer_timer`]). Both are
/// cancel-safe. Once `timer` has fired it stays fired until it is moved to
/// another deadline: the writer runs its timers before it waits again.
pub(crate) async fn wait_for_work(
    wake: &Notify,
    mut timer: Pin<&mut tokio::time::Sleep>,
    deadline: Option<Instant>,
) {
    match deadline {
        Some(deadline) => {
            let deadline = tokio::time::Instant::from_std(deadline);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = timer => {}
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
pub(crate) async fn linger(
    reader_done: &Cell<bool>,
    wake: &Notify,
    mut timer: Pin<&mut tokio::time::Sleep>,
) {
    let deadline = Instant::now() + CLOSE_LINGER;
    while !reader_done.get() && Instant::now() < deadline {
        wait_for_work(wake, timer.as_mut(), Some(deadline)).await;
    }
}

/// When a session's reads wait for data without holding a buffer
/// ([`TlsConn::mark_quiet`], [`TlsConn::small_reads_are_quiet`]), for the
/// server's sessions and the client's alike. Such a read costs a poll
/// first: worth it for a session that is idle (its keepalives), not for
/// its setup, whose answers come at once, nor once it carries IP, packet
/// after packet. So: from the moment the session is up (IPCP or IPv6CP
/// open) until its first IP packet, the first read waits quietly and so
/// does each one after a small read; before and after, none does (a read
/// that waited a second for data still marks the next one quiet, see
/// `uring_tls`).
#[derive(Debug, Default)]
pub(crate) struct QuietReads {
    up: bool,
    carried_ip: bool,
}

/// What a reader does to its connection after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietStep {
    /// [`TlsConn::small_reads_are_quiet`] from now on.
    pub small_reads_are_quiet: bool,
    /// [`TlsConn::mark_quiet`] now: the session has just come up.
    pub mark_quiet: bool,
}

impl QuietReads {
    /// Whether the session has carried IP (from then on nothing changes).
    #[cfg(test)]
    fn carried_ip(&self) -> bool {
        self.carried_ip
    }

    /// After an input: `up` whether IPCP or IPv6CP is open, `carried_ip`
    /// whether any IP packet went either way.
    pub(crate) fn after_input(&mut self, up: bool, carried_ip: bool) -> QuietStep {
        let carried_ip = self.carried_ip || carried_ip;
        let step = QuietStep {
            small_reads_are_quiet: up && !carried_ip,
            mark_quiet: up && !self.up && !carried_ip,
        };
        self.up = up;
        self.carried_ip = carried_ip;
        step
    }

    /// After an input: [`Self::after_input`] with what `proto` says (up,
    /// carried IP), applied to `tls`. Once the session has carried IP,
    /// nothing to look at.
    pub(crate) fn apply(&mut self, tls: &TlsConn, proto: &RefCell<Session>) {
        if self.carried_ip {
            return;
        }
        let (up, carried_ip) = {
            let proto = proto.borrow();
            let up = proto.ipv4().is_some() || proto.ipv6().is_some();
            (up, proto.stats().ip_packets() > 0)
        };
        let step = self.after_input(up, carried_ip);
        tls.small_reads_are_quiet(step.small_reads_are_quiet);
        if step.mark_quiet {
            tls.mark_quiet();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUD: QuietStep = QuietStep {
        small_reads_are_quiet: false,
        mark_quiet: false,
    };

    #[test]
    fn the_setup_reads_with_a_buffer_and_the_idle_session_without() {
        let mut reads = QuietReads::default();
        // LCP, authentication, the control protocols: answers come at
        // once, no poll before a read.
        for _ in 0..6 {
            assert_eq!(reads.after_input(false, false), LOUD);
        }
        // Up: the next read waits without a buffer, and so does each one
        // after a small read (its keepalives).
        assert_eq!(
            reads.after_input(true, false),
            QuietStep {
                small_reads_are_quiet: true,
                mark_quiet: true
            }
        );
        assert_eq!(
            reads.after_input(true, false),
            QuietStep {
                small_reads_are_quiet: true,
                mark_quiet: false
            }
        );
        assert!(!reads.carried_ip());
    }

    #[test]
    fn a_session_that_carries_ip_reads_with_a_buffer_for_good() {
        let mut reads = QuietReads::default();
        reads.after_input(true, false);
        assert_eq!(reads.after_input(true, true), LOUD);
        assert!(reads.carried_ip());
        // Down and up again (IPCP renegotiated): still no poll per packet.
        assert_eq!(reads.after_input(false, false), LOUD);
        assert_eq!(reads.after_input(true, false), LOUD);
    }

    /// The writer's one timer follows the deadline it is given: moved
    /// later it waits for the later one, moved earlier it fires at the
    /// earlier one, and a notification ends a wait at once. Bounds only
    /// from below, plus a generous ceiling against a hang.
    #[test]
    fn the_writer_timer_follows_its_deadline_both_ways() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            const CEILING: Duration = Duration::from_secs(5);
            let wake = Notify::new();
            let mut timer = std::pin::pin!(writer_timer());
            // Registered at a deadline far away, then moved earlier.
            let start = Instant::now();
            let far = start + Duration::from_secs(30);
            let near = start + Duration::from_millis(20);
            let early = tokio::time::timeout(Duration::from_millis(1), async {
                wait_for_work(&wake, timer.as_mut(), Some(far)).await;
            });
            assert!(early.await.is_err(), "returned long before its deadline");
            tokio::time::timeout(CEILING, wait_for_work(&wake, timer.as_mut(), Some(near)))
                .await
                .expect("moved earlier: fires at the earlier deadline");
            assert!(Instant::now() >= near);
            // Fired, then moved later: waits for the later deadline.
            let later = Instant::now() + Duration::from_millis(30);
            tokio::time::timeout(CEILING, wait_for_work(&wake, timer.as_mut(), Some(later)))
                .await
                .expect("moved later: fires");
            assert!(Instant::now() >= later, "fired at the old deadline");
            // A notification ends a wait whose deadline is far away.
            wake.notify_one();
            tokio::time::timeout(CEILING, wait_for_work(&wake, timer.as_mut(), Some(far)))
                .await
                .expect("a notification ends the wait");
            assert!(Instant::now() < far);
        });
    }

    #[test]
    fn ip_in_the_input_that_brings_the_session_up_skips_the_quiet_read() {
        let mut reads = QuietReads::default();
        assert_eq!(reads.after_input(true, true), LOUD);
    }
}
