//! What every authentication machine hands back to its owner: packets to
//! send, events, and its two timers (retransmission and phase bound).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::machine::{AuthConfig, AuthEvent, AuthFailure};

/// The [`AuthConfig`] numbers a machine works with (counts of zero are
/// taken as one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) restart_interval: Duration,
    pub(crate) max_transmissions: u32,
    pub(crate) max_attempts: u32,
}

impl Limits {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        Limits {
            restart_interval: config.restart_interval,
            max_transmissions: config.max_transmissions.max(1),
            max_attempts: config.max_attempts.max(1),
        }
    }
}

/// Queued output and timers shared by the PAP and CHAP machines.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    packets: VecDeque<Vec<u8>>,
    events: VecDeque<AuthEvent>,
    /// When the outstanding packet is sent again.
    pub(crate) retransmit_at: Option<Instant>,
    /// When the phase ends in [`AuthFailure::Timeout`] if no verdict came.
    pub(crate) phase_deadline: Option<Instant>,
    /// A verdict ([`AuthEvent::Success`] or [`AuthEvent::Failure`]) has
    /// been reported; no further verdict is reported, except a failure
    /// after a success (a failed re-challenge).
    pub(crate) verdict: Option<Verdict>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    Failure,
}

impl Outbox {
    pub(crate) fn new(phase_deadline: Instant) -> Self {
        Outbox {
            phase_deadline: Some(phase_deadline),
            ..Outbox::default()
        }
    }

    pub(crate) fn send(&mut self, packet: Vec<u8>) {
        self.packets.push_back(packet);
    }

    pub(crate) fn emit(&mut self, event: AuthEvent) {
        self.events.push_back(event);
    }

    /// Reports success: stops both timers.
    pub(crate) fn succeed(&mut self, event: AuthEvent) {
        self.retransmit_at = None;
        self.phase_deadline = None;
        self.verdict = Some(Verdict::Success);
        self.events.push_back(event);
    }

    /// Reports failure (once): stops both timers.
    pub(crate) fn fail(&mut self, failure: AuthFailure) {
        self.retransmit_at = None;
        self.phase_deadline = None;
        if self.verdict != Some(Verdict::Failure) {
            self.verdict = Some(Verdict::Failure);
            self.events.push_back(AuthEvent::Failure(failure));
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.verdict == Some(Verdict::Failure)
    }

    pub(crate) fn succeeded(&self) -> bool {
        self.verdict == Some(Verdict::Success)
    }

    /// True when the phase bound has passed: the caller then fails.
    pub(crate) fn phase_expired(&self, now: Instant) -> bool {
        self.phase_deadline.is_some_and(|deadline| now >= deadline)
    }

    pub(crate) fn retransmit_due(&self, now: Instant) -> bool {
        self.retransmit_at.is_some_and(|at| now >= at)
    }

    #[must_use]
    pub(crate) fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.packets.pop_front() {
            Some(packet) => {
                buf.extend_from_slice(&packet);
                true
            }
            None => false,
        }
    }

    /// Gives back the memory of the empty queues (the link calls this
    /// through the machine once the session has been quiet; nothing
    /// waiting is lost).
    pub(crate) fn release_idle_capacity(&mut self) {
        crate::proto::release_if_empty(&mut self.packets);
        crate::proto::release_if_empty(&mut self.events);
    }

    #[must_use]
    pub(crate) fn poll_event(&mut self) -> Option<AuthEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.retransmit_at, self.phase_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::AuthFailure;

    /// Empty queues give their memory back; a queue with something in it
    /// keeps it, and the outbox works as before afterwards.
    #[test]
    fn idle_queues_give_their_memory_back_and_nothing_waiting_is_lost() {
        let mut outbox = Outbox::new(Instant::now());
        for i in 0..8u8 {
            outbox.send(vec![i; 40]);
        }
        outbox.fail(AuthFailure::Timeout);
        outbox.release_idle_capacity();
        let mut buf = Vec::new();
        assert!(outbox.poll_transmit(&mut buf));
        assert_eq!(buf, [0; 40]);
        assert!(matches!(outbox.poll_event(), Some(AuthEvent::Failure(_))));
        while outbox.poll_transmit(&mut buf) {}
        outbox.release_idle_capacity();
        assert_eq!(outbox.packets.capacity(), 0);
        assert_eq!(outbox.events.capacity(), 0);
        outbox.send(vec![9; 4]);
        buf.clear();
        assert!(outbox.poll_transmit(&mut buf));
        assert_eq!(buf, [9; 4]);
    }
}
