use std::net::Ipv4Addr;

use super::*;
use crate::config::{ClientAddress, DaeClient, Secret};
use crate::radius::attr::{self, Attributes};
use crate::radius::crypt;
use crate::radius::packet::Code;

const SECRET: &str = "dae-secret";
const LOCAL: &str = "127.0.0.1:3799";
const NAS: &str = "127.0.0.1:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn at(slot: u32) -> SessionRef {
    SessionRef {
        worker: 0,
        slot,
        generation: 1,
    }
}

struct Harness {
    server: DaeServer,
    registry: Arc<SessionRegistry>,
    metrics: Metrics,
    now: Instant,
    next_id: u8,
}

fn harness_with(edit: impl FnOnce(&mut Config)) -> Harness {
    let mut config = Config::default();
    config.radius.dae.client = vec![DaeClient {
        address: "127.0.0.0/8".parse::<ClientAddress>().unwrap(),
        secret: Secret(SECRET.into()),
    }];
    edit(&mut config);
    let registry = Arc::new(SessionRegistry::new(100));
    registry
        .register("s-alice-1", "alice", "198.51.100.7".parse().unwrap(), at(1))
        .unwrap();
    registry
        .register("s-alice-2", "alice", "198.51.100.8".parse().unwrap(), at(2))
        .unwrap();
    registry
        .register("s-bob", "bob", "198.51.100.9".parse().unwrap(), at(3))
        .unwrap();
    registry.set_framed_ip("s-bob", Some(Ipv4Addr::new(10, 99, 0, 9)));
    let metrics = Metrics::new(1);
    Harness {
        server: DaeServer::new(&config, registry.clone(), metrics.clone()),
        registry,
        metrics,
        now: Instant::now(),
        next_id: 0,
    }
}

fn harness() -> Harness {
    harness_with(|_| {})
}

/// A signed request as radclient sends it (Message-Authenticator first).
fn request(code: Code, id: u8, attrs: &[(u8, &[u8])], secret: &str, with_ma: bool) -> Vec<u8> {
    let mut attributes = Attributes::new();
    if with_ma {
        attributes
            .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
            .unwrap();
    }
    for (kind, value) in attrs {
        attributes.push(*kind, value).unwrap();
    }
    let mut bytes = Packet {
        code,
        identifier: id,
        authenticator: [0; 16],
        attributes,
    }
    .encode()
    .unwrap();
    crypt::sign_request(&mut bytes, secret.as_bytes());
    bytes
}

impl Harness {
    fn send_from(&mut self, from: &str, bytes: &[u8]) {
        self.server
            .handle_datagram(self.now, 1_700_000_000, 0, addr(LOCAL), addr(from), bytes);
    }

    /// Sends a fresh request from the NAS address; returns its bytes.
    fn send(&mut self, code: Code, attrs: &[(u8, &[u8])]) -> Vec<u8> {
        self.next_id = self.next_id.wrapping_add(1);
        let bytes = request(code, self.next_id, attrs, SECRET, true);
        self.send_from(NAS, &bytes);
        bytes
    }

    fn jobs(&mut self) -> Vec<Job> {
        std::iter::from_fn(|| self.server.poll_job()).collect()
    }

    fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.server.poll_transmit()).collect()
    }

    /// The one answer sent, verified as radclient verifies it (over the
    /// request's authenticator, Message-Authenticator required).
    fn answer(&mut self, request: &[u8]) -> Packet {
        let sent = self.transmits();
        assert_eq!(sent.len(), 1, "one answer: {sent:?}");
        assert_eq!(sent[0].to, addr(NAS));
        let authenticator: [u8; 16] = request[4..20].try_into().unwrap();
        crypt::verify_response(&sent[0].payload, &authenticator, SECRET.as_bytes(), true)
            .expect("the answer verifies");
        let answer = Packet::decode(&sent[0].payload).unwrap();
        assert_eq!(answer.identifier, request[1]);
        answer
    }

    fn count(&self, label: &str) -> u64 {
        self.metrics.snapshot().event(label)
    }
}

fn error_cause(answer: &Packet) -> Option<u32> {
    answer.attributes.u32(attr::ERROR_CAUSE)
}

#[test]
fn disconnect_by_user_name_acts_on_every_session_then_acks() {
    let mut h = harness();
    let req = h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"alice")]);
    let jobs = h.jobs();
    assert_eq!(
        jobs.iter().map(|j| j.location).collect::<Vec<_>>(),
        [at(1), at(2)]
    );
    assert!(jobs.iter().all(|j| j.action == DaeAction::Disconnect));
    assert!(
        h.transmits().is_empty(),
        "no answer before the workers confirm"
    );
    assert_eq!(h.server.pending(), 1);
    h.server
        .handle_outcome(h.now, jobs[0].token, ActionOutcome::Done);
    assert!(h.transmits().is_empty());
    h.server
        .handle_outcome(h.now, jobs[1].token, ActionOutcome::Gone);
    let answer = h.answer(&req);
    assert_eq!(answer.code, Code::DisconnectAck);
    assert_eq!(error_cause(&answer), None);
    assert_eq!(h.count("dae_disconnect_ack"), 1);
    assert_eq!(h.server.pending(), 0);
}

#[test]
fn coa_by_acct_session_id_carries_the_change() {
    let mut h = harness();
    let req = h.send(
        Code::CoaRequest,
        &[
            (attr::ACCT_SESSION_ID, b"s-bob"),
            (attr::SESSION_TIMEOUT, &30u32.to_be_bytes()),
        ],
    );
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].location, at(3));
    let DaeAction::Change(change) = jobs[0].action else {
        panic!("{:?}", jobs[0].action);
    };
    assert_eq!(
        change.session_timeout,
        Some(super::super::TimeoutChange::Set(Duration::from_secs(30)))
    );
    h.server
        .handle_outcome(h.now, jobs[0].token, ActionOutcome::Done);
    assert_eq!(h.answer(&req).code, Code::CoaAck);
    assert_eq!(h.count("dae_coa_ack"), 1);
}

#[test]
fn naks_carry_their_error_cause() {
    let mut h = harness();
    type Case<'a> = (Code, &'a [(u8, &'a [u8])], Code, u32, &'a str);
    let cases: &[Case] = &[
        (
            Code::DisconnectRequest,
            &[(attr::USER_NAME, b"carol")],
            Code::DisconnectNak,
            503,
            "dae_nak_session_context_not_found",
        ),
        (
            Code::DisconnectRequest,
            &[
                (attr::USER_NAME, b"bob"),
                (attr::FRAMED_IP_ADDRESS, &[10, 99, 0, 8]),
            ],
            Code::DisconnectNak,
            503,
            "dae_nak_session_context_not_found",
        ),
        (
            Code::DisconnectRequest,
            &[(attr::NAS_IDENTIFIER, b"sstpd")],
            Code::DisconnectNak,
            402,
            "dae_nak_missing_attribute",
        ),
        (
            Code::CoaRequest,
            &[(attr::USER_NAME, b"bob"), (attr::FILTER_ID, b"gold")],
            Code::CoaNak,
            401,
            "dae_nak_unsupported_attribute",
        ),
        (
            Code::CoaRequest,
            &[
                (attr::USER_NAME, b"bob"),
                (attr::NAS_IDENTIFIER, b"other-nas"),
            ],
            Code::CoaNak,
            403,
            "dae_nak_nas_identification_mismatch",
        ),
    ];
    for (code, attrs, answer_code, cause, label) in cases {
        let req = h.send(*code, attrs);
        assert!(h.jobs().is_empty(), "{attrs:?} reached no worker");
        let answer = h.answer(&req);
        assert_eq!(answer.code, *answer_code, "{attrs:?}");
        assert_eq!(error_cause(&answer), Some(*cause), "{attrs:?}");
        assert!(h.count(label) >= 1, "{label}");
    }
    assert_eq!(h.count("dae_nak_session_context_not_found"), 2);
}

#[test]
fn what_does_not_verify_is_dropped_unanswered_and_counted() {
    let mut h = harness();
    let user: &[(u8, &[u8])] = &[(attr::USER_NAME, b"alice")];
    // An unknown source, even with the right secret.
    let good = request(Code::DisconnectRequest, 1, user, SECRET, true);
    h.send_from("192.0.2.1:5000", &good);
    // The wrong secret.
    h.send_from(
        NAS,
        &request(Code::DisconnectRequest, 2, user, "wrong", true),
    );
    // No Message-Authenticator (required by default).
    h.send_from(
        NAS,
        &request(Code::DisconnectRequest, 3, user, SECRET, false),
    );
    // Not a Disconnect/CoA-Request, and not RADIUS at all.
    h.send_from(NAS, &request(Code::AccessRequest, 4, user, SECRET, true));
    h.send_from(NAS, b"\x28\x05\x00");
    // A tampered Message-Authenticator.
    let mut tampered = request(Code::DisconnectRequest, 5, user, SECRET, true);
    tampered[22] ^= 1;
    h.send_from(NAS, &tampered);
    assert!(h.transmits().is_empty() && h.jobs().is_empty());
    for label in [
        "dae_unknown_client",
        "dae_missing_message_authenticator",
        "dae_unexpected_code",
        "dae_malformed",
    ] {
        assert_eq!(h.count(label), 1, "{label}");
    }
    // The wrong secret, and the tampered MAC: that breaks the Request
    // Authenticator first.
    assert_eq!(h.count("dae_bad_authenticator"), 2);
    assert_eq!(h.count("dae_bad_message_authenticator"), 0);
    let mut h = harness();
    // With the check off, the Request Authenticator alone will do.
    let mut h_lax = harness_with(|c| c.radius.dae.require_message_authenticator = false);
    let bare = request(Code::DisconnectRequest, 6, user, SECRET, false);
    h_lax.send_from(NAS, &bare);
    assert_eq!(h_lax.jobs().len(), 2);
    // A Message-Authenticator that is wrong although the Request
    // Authenticator is right (signed after the tampering).
    let mut bytes = request(Code::DisconnectRequest, 7, user, SECRET, true);
    bytes[22] ^= 1;
    bytes[4..20].fill(0);
    let hash = crypt::packet_hash(&bytes, &[0; 16], SECRET.as_bytes());
    bytes[4..20].copy_from_slice(&hash);
    h.send_from(NAS, &bytes);
    assert_eq!(h.count("dae_bad_message_authenticator"), 1);
}

#[test]
fn event_timestamp_is_checked_when_present_or_required() {
    let mut h = harness();
    let stale = 1_700_000_000u32 - 301;
    h.send(
        Code::DisconnectRequest,
        &[
            (attr::USER_NAME, b"alice"),
            (attr::EVENT_TIMESTAMP, &stale.to_be_bytes()),
        ],
    );
    assert!(h.jobs().is_empty() && h.transmits().is_empty());
    assert_eq!(h.count("dae_stale_event_timestamp"), 1);
    let fresh = 1_700_000_000u32 - 10;
    h.send(
        Code::DisconnectRequest,
        &[
            (attr::USER_NAME, b"alice"),
            (attr::EVENT_TIMESTAMP, &fresh.to_be_bytes()),
        ],
    );
    assert_eq!(h.jobs().len(), 2);

    let mut strict = harness_with(|c| c.radius.dae.require_event_timestamp = true);
    strict.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"alice")]);
    assert_eq!(strict.count("dae_missing_event_timestamp"), 1);
    assert!(strict.jobs().is_empty());
}

#[test]
fn a_retransmission_gets_the_same_answer_and_acts_once() {
    let mut h = harness();
    let req = h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"bob")]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1);
    // While the worker acts: the copy is dropped.
    h.send_from(NAS, &req);
    assert!(h.jobs().is_empty() && h.transmits().is_empty());
    assert_eq!(h.count("dae_duplicate_in_progress"), 1);
    h.server
        .handle_outcome(h.now, jobs[0].token, ActionOutcome::Done);
    let first = h.transmits();
    assert_eq!(first.len(), 1);
    // After: the same bytes again, and no second action.
    h.now += Duration::from_secs(9);
    h.send_from(NAS, &req);
    assert!(h.jobs().is_empty());
    assert_eq!(h.transmits(), first);
    assert_eq!(h.count("dae_duplicate_answered"), 1);
    assert_eq!(h.count("dae_disconnect_ack"), 1);
    // The same request from another port is another request.
    h.send_from("127.0.0.1:40001", &req);
    assert_eq!(h.jobs().len(), 1);
    // Past duplicate_window (10 s), it is a new request too.
    h.now += Duration::from_secs(2);
    h.server.handle_timeout(h.now);
    h.send_from(NAS, &req);
    assert_eq!(h.jobs().len(), 1);
}

#[test]
fn workers_that_do_not_confirm_in_time_get_a_nak_506() {
    let mut h = harness();
    let req = h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"alice")]);
    let jobs = h.jobs();
    h.server
        .handle_outcome(h.now, jobs[0].token, ActionOutcome::Done);
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.now + Duration::from_secs(1))
    );
    h.now += Duration::from_millis(999);
    h.server.handle_timeout(h.now);
    assert!(h.transmits().is_empty());
    h.now += Duration::from_millis(1);
    h.server.handle_timeout(h.now);
    let answer = h.answer(&req);
    assert_eq!(answer.code, Code::DisconnectNak);
    assert_eq!(error_cause(&answer), Some(506));
    assert_eq!(h.count("dae_nak_resources_unavailable"), 1);
    // The late confirmation changes nothing.
    h.server
        .handle_outcome(h.now, jobs[1].token, ActionOutcome::Done);
    assert!(h.transmits().is_empty());
    assert_eq!(h.count("dae_disconnect_ack"), 0);
    // Now only the cached answer's expiry is due.
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
}

#[test]
fn an_unreachable_worker_or_sessions_gone_before_a_coa_nak() {
    let mut h = harness();
    let req = h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"bob")]);
    let job = h.jobs()[0];
    h.server
        .handle_outcome(h.now, job.token, ActionOutcome::Unavailable);
    assert_eq!(error_cause(&h.answer(&req)), Some(506));

    let req = h.send(
        Code::CoaRequest,
        &[
            (attr::USER_NAME, b"alice"),
            (attr::IDLE_TIMEOUT, &[0, 0, 0, 60]),
        ],
    );
    for job in h.jobs() {
        h.server
            .handle_outcome(h.now, job.token, ActionOutcome::Gone);
    }
    let answer = h.answer(&req);
    assert_eq!(answer.code, Code::CoaNak);
    assert_eq!(error_cause(&answer), Some(503));
}

#[test]
fn requests_beyond_max_pending_are_refused_at_once() {
    let mut h = harness_with(|c| c.radius.dae.max_pending = 1);
    h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"bob")]);
    assert_eq!(h.jobs().len(), 1);
    let req = h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"alice")]);
    assert!(h.jobs().is_empty());
    assert_eq!(error_cause(&h.answer(&req)), Some(506));
}

#[test]
fn the_duplicate_cache_is_bounded() {
    let mut h = harness_with(|c| c.radius.dae.max_cached = 2);
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(h.send(Code::DisconnectRequest, &[(attr::USER_NAME, b"carol")]));
        h.transmits();
    }
    assert_eq!(h.count("dae_cache_evicted"), 1);
    // The first was evicted: sent again, it is a new request (answered
    // anew, not as a duplicate).
    h.send_from(NAS, &sent[0]);
    assert_eq!(h.transmits().len(), 1);
    assert_eq!(h.count("dae_duplicate_answered"), 0);
    assert_eq!(h.count("dae_nak_session_context_not_found"), 4);
    // The third is still cached.
    h.send_from(NAS, &sent[2]);
    assert_eq!(h.count("dae_duplicate_answered"), 1);
}

#[test]
fn the_session_registry_decides_what_matches() {
    let mut h = harness();
    h.registry.unregister("s-bob");
    let req = h.send(
        Code::DisconnectRequest,
        &[(attr::FRAMED_IP_ADDRESS, &[10, 99, 0, 9])],
    );
    assert_eq!(error_cause(&h.answer(&req)), Some(503));
    let req = h.send(
        Code::DisconnectRequest,
        &[(attr::CALLING_STATION_ID, b"198.51.100.8")],
    );
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].location, at(2));
    h.server
        .handle_outcome(h.now, jobs[0].token, ActionOutcome::Done);
    assert_eq!(h.answer(&req).code, Code::DisconnectAck);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn attribute() -> impl Strategy<Value = (u8, Vec<u8>)> {
        let kinds = prop_oneof![
            Just(attr::USER_NAME),
            Just(attr::ACCT_SESSION_ID),
            Just(attr::FRAMED_IP_ADDRESS),
            Just(attr::CALLING_STATION_ID),
            Just(attr::NAS_IDENTIFIER),
            Just(attr::NAS_IP_ADDRESS),
            Just(attr::SESSION_TIMEOUT),
            Just(attr::IDLE_TIMEOUT),
            Just(attr::SERVICE_TYPE),
            Just(attr::PROXY_STATE),
            any::<u8>(),
        ];
        let values = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..8),
            Just(b"alice".to_vec()),
            Just(b"s-bob".to_vec()),
            Just(vec![10, 99, 0, 9]),
        ];
        (kinds, values)
    }

    proptest! {
        /// Whatever a client that knows the secret sends, sstpd neither
        /// panics nor stays silent: one answer at once, or actions for the
        /// workers and then one answer.
        #[test]
        fn every_verified_request_gets_one_answer(
            coa in any::<bool>(),
            attrs in prop::collection::vec(attribute(), 0..8),
        ) {
            let mut h = harness();
            let attrs: Vec<(u8, Vec<u8>)> = attrs
                .into_iter()
                .filter(|(kind, _)| *kind != attr::MESSAGE_AUTHENTICATOR && *kind != attr::EVENT_TIMESTAMP)
                .collect();
            let borrowed: Vec<(u8, &[u8])> = attrs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let code = if coa { Code::CoaRequest } else { Code::DisconnectRequest };
            let req = h.send(code, &borrowed);
            for job in h.jobs() {
                h.server.handle_outcome(h.now, job.token, ActionOutcome::Done);
            }
            let answer = h.answer(&req);
            let acked = matches!(answer.code, Code::CoaAck | Code::DisconnectAck);
            prop_assert_eq!(acked, error_cause(&answer).is_none());
        }

        /// Arbitrary bytes from a known client: never a panic, never an
        /// action.
        #[test]
        fn arbitrary_datagrams_are_harmless(data in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut h = harness();
            h.send_from(NAS, &data);
            prop_assert!(h.jobs().is_empty());
        }
    }
}
