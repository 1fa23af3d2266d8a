//! Dynamic authorization ([RFC 5176]) in the workers: the sessions they
//! register for the listener to find ([`crate::aaa::dae::registry`]), and
//! the actions it sends them.
//!
//! An action travels on the control lane of the session's worker's
//! mailbox ([`WorkerMsg::Dae`]), never dropped for a backlog of packets;
//! the worker carries it out at once (a close, or new timers) and confirms
//! through its [`ActionReply`]. Nothing here waits: the listener answers
//! the client when the confirmations are in.
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::net::{IpAddr, Ipv4Addr};

use super::mailbox::MailboxSender;
use super::{send_control, Worker, WorkerMsg};
use crate::aaa::dae::{ActionOutcome, ActionReply, DaeAction, SessionControl};
use crate::metrics::Event;
use crate::routing::session_table::SessionRef;

/// The workers' [`SessionControl`]: each action goes to the mailbox of the
/// worker that owns the session.
pub(crate) struct WorkerControl {
    mailboxes: Vec<MailboxSender<WorkerMsg>>,
}

impl WorkerControl {
    pub(crate) fn new(mailboxes: Vec<MailboxSender<WorkerMsg>>) -> Self {
        WorkerControl { mailboxes }
    }
}

impl SessionControl for WorkerControl {
    fn act(&self, location: SessionRef, action: DaeAction, reply: ActionReply) {
        match self.mailboxes.get(usize::from(location.worker)) {
            // A worker that has stopped drops the message, and with it the
            // reply, which then confirms `Unavailable`.
            Some(mailbox) => send_control(
                mailbox,
                WorkerMsg::Dae {
                    to: location,
                    action,
                    reply,
                },
            ),
            None => reply.send(ActionOutcome::Gone),
        }
    }
}

impl Worker {
    /// Carries out a dynamic authorization action for session `to` of this
    /// worker and confirms it.
    pub(super) fn dae_action(&self, to: SessionRef, action: DaeAction, reply: ActionReply) {
        let session = self.sessions.borrow().get(to).cloned();
        let outcome = match session {
            Some(session) => session.dae_action(self, action),
            None => ActionOutcome::Gone,
        };
        reply.send(outcome);
    }

    /// Registers an authenticated session for dynamic authorization (when
    /// the listener runs).
    pub(super) fn dae_register(
        &self,
        acct_session_id: &str,
        user: &str,
        peer: IpAddr,
        at: SessionRef,
    ) {
        let Some(registry) = &self.shared.dae_sessions else {
            return;
        };
        if registry.register(acct_session_id, user, peer, at).is_err() {
            self.metrics().event(Event::DaeRegistryFull);
            tracing::warn!(
                acct_session_id,
                "dynamic authorization registry full: this session cannot be disconnected or changed by RADIUS"
            );
        }
    }

    /// Records the session's IPv4 tunnel address (`None`: IPCP is down).
    pub(super) fn dae_framed_ip(&self, acct_session_id: &str, ip: Option<Ipv4Addr>) {
        if let Some(registry) = &self.shared.dae_sessions {
            registry.set_framed_ip(acct_session_id, ip);
        }
    }

    /// Forgets a session that is closing.
    pub(super) fn dae_unregister(&self, acct_session_id: &str) {
        if let Some(registry) = &self.shared.dae_sessions {
            registry.unregister(acct_session_id);
        }
    }
}
