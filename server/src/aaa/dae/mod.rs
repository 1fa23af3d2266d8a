//! Dynamic authorization ([RFC 5176]): the Disconnect-Request and
//! CoA-Request listener, the Dynamic Authorization Server side of a NAS.
//!
//! A RADIUS server or a billing system (the Dynamic Authorization Client)
//! asks sstpd to end sessions (Disconnect-Request) or to change their
//! Session-Timeout and Idle-Timeout (CoA-Request); sstpd answers ACK, or
//! NAK with an Error-Cause (RFC 5176 3.5).
//!
//! * [`registry`]: the live sessions by Acct-Session-Id, User-Name,
//!   Framed-IP-Address and Calling-Station-Id, which the workers keep and
//!   the listener looks up;
//! * [`request`]: what a verified request asks, or the Error-Cause that
//!   refuses it (pure functions);
//! * [`server`]: [`DaeServer`], the listener's logic without IO: client
//!   and secret by source address, verification (the codec's
//!   [`crate::radius::dae`]), duplicate detection, the requests waiting
//!   for the workers and their deadline;
//! * [`listener`]: [`DaeListener`], the thread with the UDP sockets around
//!   it.
//!
//! The workers never wait for the listener, nor it for them: it hands
//! each matched session's action to the session's worker through
//! [`SessionControl`] (the worker's control lane), and the worker confirms
//! through the one-shot [`ActionReply`]. The answer goes out once every
//! worker confirmed, or as NAK Resources Unavailable (506) when
//! `radius.dae.answer_timeout` passes first.
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

pub mod listener;
pub mod registry;
pub mod request;
pub mod server;

use std::fmt;
use std::time::Duration;

use crate::routing::session_table::SessionRef;

pub use listener::DaeListener;
pub use registry::{Selector, SessionRegistry};
pub use server::DaeServer;

/// What a request asks of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaeAction {
    /// End it (Disconnect-Request, [RFC 5176] 2.1): LCP Terminate, SSTP
    /// Call Disconnect, counted and accounted as `admin_reset`.
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    Disconnect,
    /// Change its timers (CoA-Request, [RFC 5176] 2.2).
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    Change(PolicyChange),
}

/// The timers a CoA-Request changes; `None` leaves one as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyChange {
    /// Session-Timeout ([RFC 2865] 5.27).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub session_timeout: Option<TimeoutChange>,
    /// Idle-Timeout ([RFC 2865] 5.28).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub idle_timeout: Option<TimeoutChange>,
}

impl PolicyChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.session_timeout.is_none() && self.idle_timeout.is_none()
    }
}

/// A new value for a session timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutChange {
    /// No limit any more (the attribute's value 0).
    Remove,
    /// Counted from when the session's worker applies it: Session-Timeout
    /// ends the session this long after the CoA; Idle-Timeout starts
    /// watching afresh.
    Set(Duration),
}

impl TimeoutChange {
    /// The change an attribute value (seconds) asks for.
    pub fn from_seconds(seconds: u32) -> Self {
        match seconds {
            0 => TimeoutChange::Remove,
            s => TimeoutChange::Set(Duration::from_secs(u64::from(s))),
        }
    }
}

/// What the worker did with an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionOutcome {
    /// Done: the session is closing, or its timers are changed.
    Done,
    /// The session had ended (or was ending) before the action reached it.
    Gone,
    /// The worker could not be reached (it has stopped).
    Unavailable,
}

impl ActionOutcome {
    /// Short snake_case name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionOutcome::Done => "done",
            ActionOutcome::Gone => "gone",
            ActionOutcome::Unavailable => "unavailable",
        }
    }
}

/// The one-shot confirmation of an action, called from the session's
/// worker. Dropped without being sent (the worker's mailbox is gone), it
/// confirms [`ActionOutcome::Unavailable`], so the request is answered at
/// once rather than at its deadline.
pub struct ActionReply(Option<Box<dyn FnOnce(ActionOutcome) + Send>>);

impl ActionReply {
    /// Wraps the function that takes the outcome back to the listener.
    pub fn new(f: impl FnOnce(ActionOutcome) + Send + 'static) -> Self {
        ActionReply(Some(Box::new(f)))
    }

    /// Confirms the action.
    pub fn send(mut self, outcome: ActionOutcome) {
        if let Some(f) = self.0.take() {
            f(outcome);
        }
    }
}

impl Drop for ActionReply {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(ActionOutcome::Unavailable);
        }
    }
}

impl fmt::Debug for ActionReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActionReply(..)")
    }
}

/// Hands an action to the worker that owns a session (the runtime's
/// workers implement it with their control lane). Must not block; the
/// reply is sent exactly once, from whichever thread.
pub trait SessionControl: Send + Sync {
    /// Asks the session at `location` to carry out `action`.
    fn act(&self, location: SessionRef, action: DaeAction, reply: ActionReply);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_reply_is_sent_once_and_a_dropped_one_says_unavailable() {
        let (tx, rx) = mpsc::channel();
        let sender = tx.clone();
        ActionReply::new(move |o| sender.send(o).unwrap()).send(ActionOutcome::Done);
        drop(ActionReply::new(move |o| tx.send(o).unwrap()));
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got, [ActionOutcome::Done, ActionOutcome::Unavailable]);
        assert_eq!(
            TimeoutChange::from_seconds(0),
            TimeoutChange::Remove,
            "0 lifts the limit"
        );
        assert_eq!(
            TimeoutChange::from_seconds(30),
            TimeoutChange::Set(Duration::from_secs(30))
        );
    }
}
