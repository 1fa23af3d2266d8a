//! [`DaeServer`]: the Dynamic Authorization Server's logic without IO
//! ([RFC 5176]), in the manner of the protocol core: datagrams, worker
//! confirmations and `now` go in; datagrams to send, actions for the
//! workers and the next deadline come out. [`super::DaeListener`] drives
//! it with real sockets; the tests drive it directly.
//!
//! Per datagram, in order:
//!
//! 1. the source must be a `[[radius.dae.client]]` (else dropped,
//!    `dae_unknown_client`), which gives the secret;
//! 2. a retransmission (same source address and port, identifier and
//!    authenticator, [RFC 5080] 2.2.2) gets the cached answer again
//!    (`dae_duplicate_answered`), or nothing while the first copy still
//!    waits for the workers (`dae_duplicate_in_progress`);
//! 3. the codec verifies it ([`crate::radius::dae::verify_request`]: the
//!    Request Authenticator, the Message-Authenticator, required by
//!    default) and its Event-Timestamp; a failure drops it, counted by
//!    why (no answer: RFC 5176 3 says to discard what does not verify);
//! 4. [`super::request::parse`] reads it, or gives the Error-Cause of a
//!    NAK; then the registry finds its sessions (none: NAK 503);
//! 5. each session's action goes to its worker ([`DaeServer::poll_job`]),
//!    and the answer waits for them all: ACK, or NAK 506 if a worker
//!    could not be reached or `answer_timeout` passed first. More than
//!    `max_pending` requests waiting: NAK 506 at once.
//!
//! Every answer is cached for `duplicate_window`, at most `max_cached`
//! of them (the oldest evicted first, `dae_cache_evicted`).
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
//! [RFC 5080]: https://www.rfc-editor.org/rfc/rfc5080

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::registry::SessionRegistry;
use super::request::{self, DaeRequest, Kind, NasIdentity};
use super::{ActionOutcome, DaeAction};
use crate::config::{Config, DaeSection};
use crate::metrics::{Event, Metrics, RateLimitedLog};
use crate::radius::attr::ErrorCause;
use crate::radius::dae::{self, DaeError};
use crate::radius::packet::{Packet, HEADER_LEN};
use crate::routing::session_table::SessionRef;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The index of the socket the request came in on.
    pub socket: usize,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// An action for the worker that owns a session; confirm it with
/// [`DaeServer::handle_outcome`] and `token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub token: u64,
    pub location: SessionRef,
    pub action: DaeAction,
}

/// Who sent a request: (source, identifier, Request Authenticator).
type DuplicateKey = (SocketAddr, u8, [u8; 16]);

/// The counter for a datagram the codec refused.
pub fn dropped_event(error: &DaeError) -> Event {
    match error {
        DaeError::UnexpectedCode(_) => Event::DaeUnexpectedCode,
        DaeError::BadAuthenticator => Event::DaeBadAuthenticator,
        DaeError::MissingMessageAuthenticator => Event::DaeMissingMessageAuthenticator,
        DaeError::BadMessageAuthenticator => Event::DaeBadMessageAuthenticator,
        DaeError::MissingEventTimestamp => Event::DaeMissingEventTimestamp,
        DaeError::StaleEventTimestamp => Event::DaeStaleEventTimestamp,
        _ => Event::DaeMalformed,
    }
}

/// The counter for a NAK with `cause`.
pub fn nak_event(cause: ErrorCause) -> Event {
    match cause {
        ErrorCause::UnsupportedAttribute => Event::DaeNakUnsupportedAttribute,
        ErrorCause::MissingAttribute => Event::DaeNakMissingAttribute,
        ErrorCause::NasIdentificationMismatch => Event::DaeNakNasIdentificationMismatch,
        ErrorCause::InvalidRequest => Event::DaeNakInvalidRequest,
        ErrorCause::UnsupportedService => Event::DaeNakUnsupportedService,
        ErrorCause::InvalidAttributeValue => Event::DaeNakInvalidAttributeValue,
        ErrorCause::SessionContextNotFound => Event::DaeNakSessionContextNotFound,
        // The only other cause sstpd sends.
        _ => Event::DaeNakResourcesUnavailable,
    }
}

/// Answers kept for retransmissions, and the requests still being acted
/// on (see the module documentation).
#[derive(Debug)]
struct DuplicateCache {
    entries: HashMap<DuplicateKey, Cached>,
    /// Answered entries by expiry (one lifetime for all: insertion order).
    order: VecDeque<(Instant, DuplicateKey)>,
    answered: usize,
    max: usize,
    lifetime: Duration,
}

#[derive(Debug)]
enum Cached {
    InProgress,
    Answered {
        expires: Instant,
        socket: usize,
        payload: Vec<u8>,
    },
}

impl DuplicateCache {
    fn new(max: usize, lifetime: Duration) -> Self {
        DuplicateCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            answered: 0,
            max,
            lifetime,
        }
    }

    fn get(&self, key: &DuplicateKey) -> Option<&Cached> {
        self.entries.get(key)
    }

    fn begin(&mut self, key: DuplicateKey) {
        self.remove(&key);
        self.entries.insert(key, Cached::InProgress);
    }

    fn remove(&mut self, key: &DuplicateKey) {
        if let Some(Cached::Answered { .. }) = self.entries.remove(key) {
            self.answered -= 1;
        }
    }

    /// Keeps `payload` as the answer to `key`; returns how many older
    /// answers made way for it.
    fn answered(
        &mut self,
        now: Instant,
        key: DuplicateKey,
        socket: usize,
        payload: Vec<u8>,
    ) -> u64 {
        self.remove(&key);
        let expires = now + self.lifetime;
        self.entries.insert(
            key,
            Cached::Answered {
                expires,
                socket,
                payload,
            },
        );
        self.order.push_back((expires, key));
        self.answered += 1;
        let mut evicted = 0;
        while self.answered > self.max {
            if self.pop_oldest() {
                evicted += 1;
            }
        }
        evicted
    }

    /// Removes the oldest entry of `order`; true if it was still cached.
    fn pop_oldest(&mut self) -> bool {
        let Some((expires, key)) = self.order.pop_front() else {
            return false;
        };
        // The key may have been answered again since, with a later expiry.
        if matches!(self.entries.get(&key), Some(Cached::Answered { expires: e, .. }) if *e == expires)
        {
            self.remove(&key);
            return true;
        }
        false
    }

    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(at, _)| *at <= now) {
            self.pop_oldest();
        }
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|(at, _)| *at)
    }
}

/// A request the workers are acting on.
#[derive(Debug)]
struct Pending {
    key: DuplicateKey,
    request: Packet,
    kind: Kind,
    secret: Arc<[u8]>,
    socket: usize,
    /// Confirmations still to come, and what came.
    waiting: usize,
    done: usize,
    gone: usize,
    unavailable: usize,
}

/// The Dynamic Authorization Server without IO (see the module
/// documentation).
#[derive(Debug)]
pub struct DaeServer {
    section: DaeSection,
    /// The clients' secrets, in `section.client` order.
    secrets: Vec<Arc<[u8]>>,
    nas: NasIdentity,
    registry: Arc<SessionRegistry>,
    metrics: Metrics,
    cache: DuplicateCache,
    pending: HashMap<u64, Pending>,
    /// Pending tokens by deadline (one timeout for all: insertion order).
    deadlines: VecDeque<(Instant, u64)>,
    next_token: u64,
    transmits: VecDeque<Transmit>,
    jobs: VecDeque<Job>,
    /// At most one line per second for dropped datagrams (the counters
    /// have them all).
    drop_log: RateLimitedLog,
}

impl DaeServer {
    /// The server `config.radius.dae` describes, finding sessions in
    /// `registry` and counting into `metrics`' global table.
    pub fn new(config: &Config, registry: Arc<SessionRegistry>, metrics: Metrics) -> Self {
        let section = config.radius.dae.clone();
        let secrets = section
            .client
            .iter()
            .map(|c| Arc::from(c.secret.0.as_bytes()))
            .collect();
        DaeServer {
            cache: DuplicateCache::new(section.max_cached, section.duplicate_window),
            secrets,
            nas: NasIdentity {
                identifier: config.radius.nas_identifier.clone(),
                ipv4: config.radius.nas_ip_address,
            },
            section,
            registry,
            metrics,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            next_token: 0,
            transmits: VecDeque::new(),
            jobs: VecDeque::new(),
            drop_log: RateLimitedLog::new(Duration::from_secs(1)),
        }
    }

    fn count(&self, event: Event) {
        self.metrics.global().event(event);
    }

    /// A datagram from `from` arrived on socket `socket` (bound to
    /// `local`); `unix_now` is the wall clock in seconds since 1970, for
    /// Event-Timestamp.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        unix_now: u64,
        socket: usize,
        local: SocketAddr,
        from: SocketAddr,
        data: &[u8],
    ) {
        let Some(client) = self.section.client_index_for(from.ip()) else {
            self.dropped(
                now,
                Event::DaeUnknownClient,
                from,
                "not a [[radius.dae.client]]",
            );
            return;
        };
        let secret = self.secrets[client].clone();
        let key = duplicate_key(from, data);
        if let Some(key) = &key {
            self.cache.expire(now);
            match self.cache.get(key) {
                Some(Cached::Answered {
                    socket, payload, ..
                }) => {
                    self.transmits.push_back(Transmit {
                        socket: *socket,
                        to: from,
                        payload: payload.clone(),
                    });
                    self.count(Event::DaeDuplicateAnswered);
                    tracing::debug!(%from, id = key.1, "retransmitted request: answering again");
                    return;
                }
                Some(Cached::InProgress) => {
                    self.count(Event::DaeDuplicateInProgress);
                    tracing::debug!(%from, id = key.1, "retransmitted request still in progress");
                    return;
                }
                None => {}
            }
        }
        let verified =
            dae::verify_request(data, &secret, self.section.require_message_authenticator)
                .and_then(|packet| {
                    dae::check_event_timestamp(
                        &packet,
                        unix_now,
                        self.section.event_timestamp_window.as_secs(),
                        self.section.require_event_timestamp,
                    )
                    .map(|()| packet)
                });
        let packet = match verified {
            Ok(packet) => packet,
            Err(error) => {
                self.dropped(now, dropped_event(&error), from, error.as_str());
                return;
            }
        };
        // Verified, so the header is there and `key` is too.
        let key = key.unwrap_or((from, packet.identifier, packet.authenticator));
        let request = match request::parse(&packet, &self.nas, local.ip()) {
            Ok(request) => request,
            Err(cause) => {
                tracing::info!(%from, request = %packet.code, cause = cause.as_str(), "dynamic authorization refused");
                self.answer_nak(now, key, socket, &packet, &secret, cause);
                return;
            }
        };
        self.act(now, key, socket, packet, secret, request);
    }

    /// Hands the request's sessions to their workers, or answers at once.
    fn act(
        &mut self,
        now: Instant,
        key: DuplicateKey,
        socket: usize,
        packet: Packet,
        secret: Arc<[u8]>,
        request: DaeRequest,
    ) {
        let from = key.0;
        let sessions = self.registry.select(&request.selector);
        let refusal = if sessions.is_empty() {
            tracing::info!(%from, request = request.kind.as_str(), selector = ?request.selector, "dynamic authorization: no such session");
            Some(ErrorCause::SessionContextNotFound)
        } else if self.pending.len() >= self.section.max_pending {
            tracing::warn!(%from, pending = self.pending.len(), "dynamic authorization: too many requests waiting for the workers");
            Some(ErrorCause::ResourcesUnavailable)
        } else {
            None
        };
        if let Some(cause) = refusal {
            self.answer_nak(now, key, socket, &packet, &secret, cause);
            return;
        }
        let action = match request.kind {
            Kind::Disconnect => DaeAction::Disconnect,
            Kind::Coa => DaeAction::Change(request.change),
        };
        let token = self.next_token;
        self.next_token += 1;
        for session in &sessions {
            tracing::info!(
                %from,
                request = request.kind.as_str(),
                user = session.user,
                acct_session_id = session.acct_session_id,
                change = ?request.change,
                "dynamic authorization"
            );
            self.jobs.push_back(Job {
                token,
                location: session.location,
                action,
            });
        }
        let deadline = now + self.section.answer_timeout;
        self.pending.insert(
            token,
            Pending {
                key,
                request: packet,
                kind: request.kind,
                secret,
                socket,
                waiting: sessions.len(),
                done: 0,
                gone: 0,
                unavailable: 0,
            },
        );
        self.deadlines.push_back((deadline, token));
        self.cache.begin(key);
    }

    /// A worker confirmed one action of request `token` (a late one, for
    /// a request already answered, is ignored).
    pub fn handle_outcome(&mut self, now: Instant, token: u64, outcome: ActionOutcome) {
        let Some(pending) = self.pending.get_mut(&token) else {
            tracing::debug!(
                token,
                outcome = outcome.as_str(),
                "late confirmation of an answered request"
            );
            return;
        };
        pending.waiting = pending.waiting.saturating_sub(1);
        match outcome {
            ActionOutcome::Done => pending.done += 1,
            ActionOutcome::Gone => pending.gone += 1,
            ActionOutcome::Unavailable => pending.unavailable += 1,
        }
        if pending.waiting == 0 {
            self.finish(now, token, false);
        }
    }

    /// Answers requests whose workers did not confirm in time, and forgets
    /// expired answers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, token)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.pending.contains_key(&token) {
                self.finish(now, token, true);
            }
        }
        self.cache.expire(now);
    }

    /// When [`DaeServer::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self
            .deadlines
            .iter()
            .find(|(_, token)| self.pending.contains_key(token))
            .map(|(at, _)| *at);
        [deadline, self.cache.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next action for a worker.
    pub fn poll_job(&mut self) -> Option<Job> {
        self.jobs.pop_front()
    }

    /// Requests waiting for the workers.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn finish(&mut self, now: Instant, token: u64, timed_out: bool) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        let from = p.key.0;
        let cause = if timed_out || p.unavailable > 0 {
            Some(ErrorCause::ResourcesUnavailable)
        } else if p.kind == Kind::Coa && p.done == 0 {
            // Every session ended before the change reached it.
            Some(ErrorCause::SessionContextNotFound)
        } else {
            // A Disconnect of sessions already ending has what it asked.
            None
        };
        tracing::info!(
            %from,
            request = p.kind.as_str(),
            done = p.done,
            gone = p.gone,
            unavailable = p.unavailable,
            timed_out,
            answer = cause.map_or("ack", |c| c.as_str()),
            "dynamic authorization answered"
        );
        match cause {
            Some(cause) => self.answer_nak(now, p.key, p.socket, &p.request, &p.secret, cause),
            None => {
                let event = match p.kind {
                    Kind::Disconnect => Event::DaeDisconnectAck,
                    Kind::Coa => Event::DaeCoaAck,
                };
                let answer = dae::ack(&p.request, &p.secret);
                self.answer(now, p.key, p.socket, answer, event);
            }
        }
    }

    fn answer_nak(
        &mut self,
        now: Instant,
        key: DuplicateKey,
        socket: usize,
        request: &Packet,
        secret: &[u8],
        cause: ErrorCause,
    ) {
        let answer = dae::nak(request, cause, secret);
        self.answer(now, key, socket, answer, nak_event(cause));
    }

    fn answer(
        &mut self,
        now: Instant,
        key: DuplicateKey,
        socket: usize,
        answer: Result<Vec<u8>, dae::ResponseError>,
        event: Event,
    ) {
        match answer {
            Ok(payload) => {
                self.count(event);
                self.transmits.push_back(Transmit {
                    socket,
                    to: key.0,
                    payload: payload.clone(),
                });
                let evicted = self.cache.answered(now, key, socket, payload);
                self.metrics
                    .global()
                    .events_n(Event::DaeCacheEvicted, evicted);
            }
            Err(error) => {
                self.cache.remove(&key);
                self.count(Event::DaeAnswerTooLong);
                tracing::warn!(from = %key.0, error = %error, "dynamic authorization answer cannot be encoded");
            }
        }
    }

    /// Counts a dropped datagram; logs at most one line a second.
    fn dropped(&mut self, now: Instant, event: Event, from: SocketAddr, why: &str) {
        self.count(event);
        if let Some(suppressed) = self.drop_log.due(now) {
            tracing::warn!(%from, reason = event.label(), suppressed, "dynamic authorization request dropped: {why}");
        }
    }
}

fn duplicate_key(from: SocketAddr, data: &[u8]) -> Option<DuplicateKey> {
    let authenticator = data.get(4..HEADER_LEN)?.try_into().ok()?;
    Some((from, data[1], authenticator))
}

#[cfg(test)]
mod tests;
