//! The automaton against the state transition table of [RFC 1661] 4.1,
//! cell by cell, plus the counters and timers of 4.6 on a virtual clock.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::proto::ppp::frame::parse_frame;
use crate::proto::ppp::packet::{write_control, write_option};

const PROTO: u16 = 0x8021;
const ECHO_REQUEST: u8 = 9;
const ECHO_REPLY: u8 = 10;

/// A minimal option handler: requests option 1, acknowledges option 1,
/// Naks option 2 and rejects everything else; knows one extra code
/// (9, answered with 10 in Opened, like LCP Echo).
#[derive(Debug, Default)]
struct Probe {
    starts: u32,
    acked: u32,
    naked: u32,
    rejected: u32,
    fail_on_nak: Option<NegotiationFailure>,
}

impl OptionHandler for Probe {
    const PROTOCOL: u16 = PROTO;

    fn start_negotiation(&mut self, _rng: &mut dyn RngCore) {
        self.starts += 1;
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        write_option(1, &[0xaa, 0xbb], out);
    }

    fn judge_request(&mut self, options: Options<'_>, verdict: &mut Verdict, _: &mut dyn RngCore) {
        for option in options {
            match option.kind {
                1 => {}
                2 => verdict.nak(&option, &[0x00]),
                _ => verdict.reject(&option),
            }
        }
    }

    fn request_acked(&mut self, _options: Options<'_>) {
        self.acked += 1;
    }

    fn request_naked(
        &mut self,
        _: Options<'_>,
        _: &mut dyn RngCore,
    ) -> Result<(), NegotiationFailure> {
        self.naked += 1;
        self.fail_on_nak.map_or(Ok(()), Err)
    }

    fn request_rejected(&mut self, _options: Options<'_>) -> Result<(), NegotiationFailure> {
        self.rejected += 1;
        Ok(())
    }

    fn handle_other_code(
        &mut self,
        _now: Instant,
        packet: &ControlPacket<'_>,
        opened: bool,
        out: &mut Outbox,
    ) -> CodeOutcome {
        match packet.code {
            ECHO_REQUEST if opened => {
                out.send_control(PROTO, ECHO_REPLY, packet.identifier, &[packet.data]);
                CodeOutcome::Handled
            }
            ECHO_REQUEST => CodeOutcome::NotOpened,
            _ => CodeOutcome::Unknown,
        }
    }
}

struct Harness {
    fsm: Fsm<Probe>,
    out: Outbox,
    rng: StdRng,
    base: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let base = Instant::now();
        Harness {
            fsm: Fsm::new(Probe::default(), FsmConfig::default()),
            out: Outbox::default(),
            rng: StdRng::from_seed([7; 32]),
            base,
            now: base,
        }
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut Fsm<Probe>, &mut Ctx<'_>) -> R) -> R {
        let mut ctx = Ctx {
            now: self.now,
            out: &mut self.out,
            rng: &mut self.rng,
        };
        f(&mut self.fsm, &mut ctx)
    }

    fn receive(&mut self, code: u8, identifier: u8, data: &[u8]) -> Result<(), ControlDrop> {
        let mut info = Vec::new();
        write_control(code, identifier, &[data], &mut info);
        self.with(|fsm, ctx| fsm.receive(ctx, &info))
    }

    /// Drains the outbox: (code, identifier, data) of each packet.
    fn sent(&mut self) -> Vec<(u8, u8, Vec<u8>)> {
        let mut packets = Vec::new();
        let mut buf = Vec::new();
        while self.out.pop_into(&mut buf) {
            let frame = parse_frame(&buf).unwrap();
            assert_eq!(frame.protocol, PROTO);
            let packet = parse_control(frame.information).unwrap();
            packets.push((packet.code, packet.identifier, packet.data.to_vec()));
            buf.clear();
        }
        packets
    }

    fn signals(&mut self) -> Vec<LayerSignal> {
        std::iter::from_fn(|| self.fsm.poll_signal()).collect()
    }

    fn advance_to_deadline(&mut self) {
        self.now = self.fsm.poll_timeout().expect("restart timer running");
        self.with(|fsm, ctx| fsm.handle_timeout(ctx));
    }
}

// ---- The state transition table ----

#[derive(Clone, Copy, Debug)]
enum Event {
    Up,
    Down,
    Open,
    Close,
    TimeoutPlus,
    TimeoutMinus,
    RcrPlus,
    RcrMinus,
    Rca,
    Rcn,
    Rtr,
    Rta,
    Ruc,
    RxjPlus,
    RxjMinus,
    Rxr,
}

const STATES: [State; 10] = [
    State::Initial,
    State::Starting,
    State::Closed,
    State::Stopped,
    State::Closing,
    State::Stopping,
    State::ReqSent,
    State::AckRcvd,
    State::AckSent,
    State::Opened,
];

/// [RFC 1661] 4.1, transcribed: one row per event, one column per state
/// (0 Initial .. 9 Opened). Footnote letters (r, x, p) are kept as in the
/// RFC and ignored when checking.
#[rustfmt::skip]
const TABLE: [(Event, [&str; 10]); 16] = [
    //                     Initial  Starting     Closed       Stopped          Closing  Stopping Req-Sent     Ack-Rcvd     Ack-Sent     Opened
    (Event::Up,           ["2",     "irc,scr/6", "-",         "-",             "-",     "-",     "-",         "-",         "-",         "-"]),
    (Event::Down,         ["-",     "-",         "0",         "tls/1",         "0",     "1",     "1",         "1",         "1",         "tld/1"]),
    (Event::Open,         ["tls/1", "1",         "irc,scr/6", "3r",            "5r",    "5r",    "6",         "7",         "8",         "9r"]),
    (Event::Close,        ["0",     "tlf/0",     "2",         "2",             "4",     "4",     "irc,str/4", "irc,str/4", "irc,str/4", "tld,irc,str/4"]),
    (Event::TimeoutPlus,  ["-",     "-",         "-",         "-",             "str/4", "str/5", "scr/6",     "scr/6",     "scr/8",     "-"]),
    (Event::TimeoutMinus, ["-",     "-",         "-",         "-",             "tlf/2", "tlf/3", "tlf/3p",    "tlf/3p",    "tlf/3p",    "-"]),
    (Event::RcrPlus,      ["-",     "-",         "sta/2",     "irc,scr,sca/8", "4",     "5",     "sca/8",     "sca,tlu/9", "sca/8",     "tld,scr,sca/8"]),
    (Event::RcrMinus,     ["-",     "-",         "sta/2",     "irc,scr,scn/6", "4",     "5",     "scn/6",     "scn/7",     "scn/6",     "tld,scr,scn/6"]),
    (Event::Rca,          ["-",     "-",         "sta/2",     "sta/3",         "4",     "5",     "irc/7",     "scr/6x",    "irc,tlu/9", "tld,scr/6x"]),
    (Event::Rcn,          ["-",     "-",         "sta/2",     "sta/3",         "4",     "5",     "irc,scr/6", "scr/6x",    "irc,scr/8", "tld,scr/6x"]),
    (Event::Rtr,          ["-",     "-",         "sta/2",     "sta/3",         "sta/4", "sta/5", "sta/6",     "sta/6",     "sta/6",     "tld,zrc,sta/5"]),
    (Event::Rta,          ["-",     "-",         "2",         "3",             "tlf/2", "tlf/3", "6",         "6",         "8",         "tld,scr/6"]),
    (Event::Ruc,          ["-",     "-",         "scj/2",     "scj/3",         "scj/4", "scj/5", "scj/6",     "scj/7",     "scj/8",     "scj/9"]),
    (Event::RxjPlus,      ["-",     "-",         "2",         "3",             "4",     "5",     "6",         "6",         "8",         "9"]),
    (Event::RxjMinus,     ["-",     "-",         "tlf/2",     "tlf/3",         "tlf/2", "tlf/3", "tlf/3",     "tlf/3",     "tlf/3",     "tld,irc,str/5"]),
    (Event::Rxr,          ["-",     "-",         "2",         "3",             "4",     "5",     "6",         "7",         "8",         "ser/9"]),
];

fn apply(h: &mut Harness, event: Event) {
    let request_id = h.fsm.request_identifier();
    let request = {
        let mut options = Vec::new();
        write_option(1, &[0xaa, 0xbb], &mut options);
        options
    };
    let _ = match event {
        Event::Up => {
            h.with(|fsm, ctx| fsm.up(ctx));
            Ok(())
        }
        Event::Down => {
            h.fsm.down();
            Ok(())
        }
        Event::Open => {
            h.with(|fsm, ctx| fsm.open(ctx));
            Ok(())
        }
        Event::Close => {
            h.with(|fsm, ctx| fsm.close(ctx));
            Ok(())
        }
        Event::TimeoutPlus | Event::TimeoutMinus => {
            let count = if matches!(event, Event::TimeoutPlus) {
                1
            } else {
                0
            };
            h.fsm.set_restart_count(count);
            if let Some(deadline) = h.fsm.poll_timeout() {
                h.now = deadline;
            }
            h.with(|fsm, ctx| fsm.handle_timeout(ctx));
            Ok(())
        }
        Event::RcrPlus => h.receive(CONFIGURE_REQUEST, 0x40, &request),
        Event::RcrMinus => h.receive(CONFIGURE_REQUEST, 0x41, &[0x63, 0x02]),
        Event::Rca => h.receive(CONFIGURE_ACK, request_id, &request),
        Event::Rcn => h.receive(CONFIGURE_NAK, request_id, &[0x01, 0x04, 0x00, 0x01]),
        Event::Rtr => h.receive(TERMINATE_REQUEST, 0x42, &[]),
        Event::Rta => h.receive(TERMINATE_ACK, 0x43, &[]),
        Event::Ruc => h.receive(0x33, 0x44, &[1, 2, 3]),
        Event::RxjPlus => h.receive(CODE_REJECT, 0x45, &[ECHO_REQUEST, 1, 0, 4]),
        Event::RxjMinus => h.receive(CODE_REJECT, 0x46, &[TERMINATE_REQUEST, 1, 0, 4]),
        Event::Rxr => h.receive(ECHO_REQUEST, 0x47, &[0, 0, 0, 0]),
    };
}

fn state_number(state: State) -> usize {
    STATES.iter().position(|&s| s == state).unwrap()
}

#[test]
fn state_transition_table_of_rfc1661_4_1() {
    let mut checked = 0;
    for (event, row) in TABLE {
        for (column, cell) in row.iter().enumerate() {
            let mut h = Harness::new();
            h.with(|fsm, ctx| fsm.force_state(STATES[column], ctx));
            let count_before = h.fsm.restart_count();
            apply(&mut h, event);
            let context = format!("{event:?} in {:?} (cell {cell:?})", STATES[column]);

            let sent: Vec<u8> = h.sent().iter().map(|p| p.0).collect();
            let signals = h.signals();
            if *cell == "-" {
                assert!(sent.is_empty(), "{context}: illegal event sent {sent:?}");
                assert!(
                    signals.is_empty(),
                    "{context}: illegal event signalled {signals:?}"
                );
                assert_eq!(
                    h.fsm.state(),
                    STATES[column],
                    "{context}: illegal event moved"
                );
                checked += 1;
                continue;
            }

            let (actions, next) = match cell.split_once('/') {
                Some((actions, next)) => (actions, next),
                None => ("", *cell),
            };
            let next: usize = next.trim_end_matches(['r', 'x', 'p']).parse().unwrap();
            assert_eq!(
                state_number(h.fsm.state()),
                next,
                "{context}: wrong next state"
            );

            let mut expected_packets = Vec::new();
            let mut expected_signals = Vec::new();
            for action in actions.split(',').filter(|a| !a.is_empty()) {
                match action {
                    "tlu" => expected_signals.push(LayerSignal::Up),
                    "tld" => expected_signals.push(LayerSignal::Down),
                    "tls" => expected_signals.push(LayerSignal::Started),
                    "tlf" => expected_signals.push(LayerSignal::Finished),
                    "scr" => expected_packets.push(CONFIGURE_REQUEST),
                    "sca" => expected_packets.push(CONFIGURE_ACK),
                    // The probe rejects the unknown option of RCR-.
                    "scn" => expected_packets.push(CONFIGURE_REJECT),
                    "str" => expected_packets.push(TERMINATE_REQUEST),
                    "sta" => expected_packets.push(TERMINATE_ACK),
                    "scj" => expected_packets.push(CODE_REJECT),
                    "ser" => expected_packets.push(ECHO_REPLY),
                    "irc" | "zrc" => {}
                    other => panic!("unknown action {other}"),
                }
            }
            assert_eq!(sent, expected_packets, "{context}: packets");
            assert_eq!(signals, expected_signals, "{context}: signals");

            // Restart counter: irc sets Max-Configure/Max-Terminate, each
            // scr/str then counts one transmission; zrc sets zero.
            let sends = expected_packets
                .iter()
                .filter(|&&c| c == CONFIGURE_REQUEST || c == TERMINATE_REQUEST)
                .count() as u32;
            let config = FsmConfig::default();
            if actions.contains("zrc") {
                assert_eq!(h.fsm.restart_count(), 0, "{context}: zrc");
            } else if actions.contains("irc") {
                let initial = if actions.contains("str") {
                    config.max_terminate
                } else {
                    config.max_configure
                };
                assert_eq!(h.fsm.restart_count(), initial - sends, "{context}: irc");
            } else if sends > 0
                && !matches!(event, Event::TimeoutPlus)
                && STATES[column] != State::Opened
            {
                assert_eq!(
                    h.fsm.restart_count(),
                    count_before - sends,
                    "{context}: counter"
                );
            }
            // The restart timer runs exactly in the states that use it.
            assert_eq!(
                h.fsm.poll_timeout().is_some(),
                h.fsm.state().runs_restart_timer(),
                "{context}: restart timer"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 160);
}

// ---- Counters and timers ([RFC 1661] 4.6) on a virtual clock ----

#[test]
fn configure_requests_are_retransmitted_until_max_configure() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.open(ctx));
    h.with(|fsm, ctx| fsm.up(ctx));
    assert_eq!(h.signals(), [LayerSignal::Started]);
    let mut identifiers = vec![];
    for (code, id, _) in h.sent() {
        assert_eq!(code, CONFIGURE_REQUEST);
        identifiers.push(id);
    }
    for round in 1..10 {
        h.advance_to_deadline();
        assert_eq!(h.now - h.base, Duration::from_secs(3 * round));
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, CONFIGURE_REQUEST);
        identifiers.push(sent[0].1);
        assert_eq!(h.fsm.state(), State::ReqSent);
    }
    // The options never changed: every copy keeps the first Identifier
    // ([RFC 1661] 5.1), so an answer to any of them answers this one.
    assert_eq!(identifiers, [1; 10]);
    // The tenth timeout: TO-, tlf, Stopped.
    h.advance_to_deadline();
    assert!(h.sent().is_empty());
    assert_eq!(h.fsm.state(), State::Stopped);
    assert_eq!(h.signals(), [LayerSignal::Finished]);
    assert_eq!(h.fsm.failure(), Some(NegotiationFailure::MaxConfigure));
    assert_eq!(h.fsm.poll_timeout(), None);
    assert_eq!(h.now - h.base, Duration::from_secs(30));
}

#[test]
fn terminate_requests_are_retransmitted_until_max_terminate() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.force_state(State::Opened, ctx));
    h.with(|fsm, ctx| fsm.close(ctx));
    assert_eq!(h.signals(), [LayerSignal::Down]);
    assert_eq!(
        h.sent().iter().map(|p| p.0).collect::<Vec<_>>(),
        [TERMINATE_REQUEST]
    );
    h.advance_to_deadline();
    assert_eq!(
        h.sent().iter().map(|p| p.0).collect::<Vec<_>>(),
        [TERMINATE_REQUEST]
    );
    assert_eq!(h.fsm.state(), State::Closing);
    h.advance_to_deadline();
    assert!(h.sent().is_empty(), "Max-Terminate is 2");
    assert_eq!(h.fsm.state(), State::Closed);
    assert_eq!(h.signals(), [LayerSignal::Finished]);
    assert_eq!(h.now - h.base, Duration::from_secs(6));
}

#[test]
fn peer_terminate_waits_one_restart_interval_before_finishing() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.force_state(State::Opened, ctx));
    h.receive(TERMINATE_REQUEST, 0x99, &[]).unwrap();
    assert_eq!(h.sent(), [(TERMINATE_ACK, 0x99, vec![])]);
    assert_eq!(h.fsm.state(), State::Stopping);
    assert!(h.fsm.peer_terminated());
    assert_eq!(h.signals(), [LayerSignal::Down]);
    h.advance_to_deadline();
    assert_eq!(h.now - h.base, Duration::from_secs(3));
    assert!(h.sent().is_empty(), "zrc: no Terminate-Request of our own");
    assert_eq!(h.fsm.state(), State::Stopped);
    assert_eq!(h.signals(), [LayerSignal::Finished]);
}

#[test]
fn naks_turn_into_rejects_after_max_failure_then_negotiation_fails() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.force_state(State::ReqSent, ctx));
    let stubborn = [0x02, 0x03, 0x07];
    for id in 0..5u8 {
        h.receive(CONFIGURE_REQUEST, id, &stubborn).unwrap();
        assert_eq!(h.sent(), [(CONFIGURE_NAK, id, vec![0x02, 0x03, 0x00])]);
    }
    // Max-Failure (5) Naks sent without an Ack: now a Reject of the option.
    for id in 5..10u8 {
        h.receive(CONFIGURE_REQUEST, id, &stubborn).unwrap();
        assert_eq!(h.sent(), [(CONFIGURE_REJECT, id, stubborn.to_vec())]);
        assert_eq!(h.fsm.state(), State::ReqSent);
    }
    // Twice Max-Failure refusals: give up.
    h.receive(CONFIGURE_REQUEST, 10, &stubborn).unwrap();
    assert_eq!(
        h.sent().iter().map(|p| p.0).collect::<Vec<_>>(),
        [TERMINATE_REQUEST]
    );
    assert_eq!(h.fsm.state(), State::Closing);
    assert_eq!(h.fsm.failure(), Some(NegotiationFailure::MaxFailure));
}

#[test]
fn an_answer_to_an_earlier_copy_of_the_request_is_accepted() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.open(ctx));
    h.with(|fsm, ctx| fsm.up(ctx));
    let (_, id, request) = h.sent().remove(0);
    // Two timeouts before the Ack of the first copy arrives (a path
    // slower than the restart timer).
    h.advance_to_deadline();
    h.advance_to_deadline();
    let copies = h.sent();
    assert_eq!(copies.len(), 2);
    assert!(copies
        .iter()
        .all(|c| (c.0, c.1, &c.2) == (CONFIGURE_REQUEST, id, &request)));
    h.receive(CONFIGURE_ACK, id, &request).unwrap();
    assert_eq!(h.fsm.state(), State::AckRcvd);
    // The Ack of the second copy is a duplicate.
    assert_eq!(
        h.receive(CONFIGURE_ACK, id, &request),
        Err(ControlDrop::StaleReply)
    );
}

#[test]
fn a_copy_of_the_acknowledged_request_in_opened_is_acknowledged_again() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.open(ctx));
    h.with(|fsm, ctx| fsm.up(ctx));
    let (_, id, request) = h.sent().remove(0);
    let theirs = [0x01, 0x04, 0x12, 0x34];
    h.receive(CONFIGURE_REQUEST, 0x21, &theirs).unwrap();
    h.receive(CONFIGURE_ACK, id, &request).unwrap();
    assert_eq!(h.fsm.state(), State::Opened);
    h.sent();
    h.signals();
    // The peer's retransmission, sent before our Ack reached it.
    h.receive(CONFIGURE_REQUEST, 0x21, &theirs).unwrap();
    assert_eq!(h.sent(), [(CONFIGURE_ACK, 0x21, theirs.to_vec())]);
    assert_eq!(h.fsm.state(), State::Opened);
    assert!(h.signals().is_empty(), "the layer stayed up");
    // A new Identifier is a renegotiation: the layer goes down.
    h.receive(CONFIGURE_REQUEST, 0x22, &theirs).unwrap();
    assert_eq!(h.fsm.state(), State::AckSent);
    assert_eq!(h.signals(), [LayerSignal::Down]);
}

#[test]
fn copies_of_a_refused_request_are_answered_but_not_counted() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.force_state(State::ReqSent, ctx));
    let stubborn = [0x02, 0x03, 0x07];
    // Twenty copies of one request: each gets its Nak, and Max-Failure
    // (which counts refusals of distinct requests) is never reached.
    for _ in 0..20 {
        h.receive(CONFIGURE_REQUEST, 7, &stubborn).unwrap();
        assert_eq!(h.sent(), [(CONFIGURE_NAK, 7, vec![0x02, 0x03, 0x00])]);
    }
    assert_eq!(h.fsm.state(), State::ReqSent);
    assert_eq!(h.fsm.failure(), None);
    // Distinct requests (new Identifiers) count as before: four more Naks,
    // then the Naks turn into Rejects.
    for id in 8..12u8 {
        h.receive(CONFIGURE_REQUEST, id, &stubborn).unwrap();
        assert_eq!(h.sent()[0].0, CONFIGURE_NAK, "id {id}");
    }
    h.receive(CONFIGURE_REQUEST, 12, &stubborn).unwrap();
    assert_eq!(h.sent()[0].0, CONFIGURE_REJECT);
}

#[test]
fn an_ack_resets_the_failure_counter() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.force_state(State::ReqSent, ctx));
    for id in 0..4u8 {
        h.receive(CONFIGURE_REQUEST, id, &[0x02, 0x03, 0x07])
            .unwrap();
    }
    h.receive(CONFIGURE_REQUEST, 4, &[0x01, 0x02]).unwrap();
    h.sent();
    for id in 5..10u8 {
        h.receive(CONFIGURE_REQUEST, id, &[0x02, 0x03, 0x07])
            .unwrap();
        assert_eq!(h.sent()[0].0, CONFIGURE_NAK);
    }
}

#[test]
fn replies_must_match_the_outstanding_request() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.open(ctx));
    h.with(|fsm, ctx| fsm.up(ctx));
    let (_, id, request) = h.sent().remove(0);

    // Wrong Identifier: silently discarded.
    assert_eq!(
        h.receive(CONFIGURE_ACK, id.wrapping_add(1), &request),
        Err(ControlDrop::StaleReply)
    );
    // Options differ from what we sent.
    assert_eq!(
        h.receive(CONFIGURE_ACK, id, &[0x01, 0x04, 0xaa, 0xbc]),
        Err(ControlDrop::MismatchedReply)
    );
    // A Reject of an option we never sent.
    assert_eq!(
        h.receive(CONFIGURE_REJECT, id, &[0x05, 0x02]),
        Err(ControlDrop::MismatchedReply)
    );
    // Malformed option list.
    assert_eq!(
        h.receive(CONFIGURE_NAK, id, &[0x01, 0x09]),
        Err(ControlDrop::Malformed(PacketError::BadOption))
    );
    assert_eq!(h.fsm.state(), State::ReqSent);
    assert!(h.sent().is_empty());
    assert_eq!(h.fsm.handler().acked, 0);

    h.receive(CONFIGURE_ACK, id, &request).unwrap();
    assert_eq!(h.fsm.state(), State::AckRcvd);
    assert_eq!(h.fsm.handler().acked, 1);
    // A duplicate of the same Ack (the peer answered a retransmission).
    assert_eq!(
        h.receive(CONFIGURE_ACK, id, &request),
        Err(ControlDrop::StaleReply)
    );
    assert_eq!(h.fsm.handler().acked, 1);
}

#[test]
fn a_nak_learns_and_sends_a_new_request() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.open(ctx));
    h.with(|fsm, ctx| fsm.up(ctx));
    let (_, id, _) = h.sent().remove(0);
    h.receive(CONFIGURE_NAK, id, &[0x01, 0x04, 0x00, 0x01])
        .unwrap();
    assert_eq!(h.fsm.handler().naked, 1);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, CONFIGURE_REQUEST);
    assert_ne!(sent[0].1, id);
    // A valid Reject (subset of our request) also counts.
    h.receive(CONFIGURE_REJECT, sent[0].1, &[0x01, 0x04, 0xaa, 0xbb])
        .unwrap();
    assert_eq!(h.fsm.handler().rejected, 1);
}

#[test]
fn a_handler_failure_on_nak_closes() {
    let mut h = Harness::new();
    h.fsm.handler_mut().fail_on_nak = Some(NegotiationFailure::NoCommonAuthProtocol);
    h.with(|fsm, ctx| fsm.force_state(State::Opened, ctx));
    let id = h.fsm.request_identifier();
    h.receive(CONFIGURE_NAK, id, &[0x01, 0x04, 0x00, 0x01])
        .unwrap();
    assert_eq!(h.fsm.state(), State::Closing);
    assert_eq!(h.signals(), [LayerSignal::Down], "exactly one tld");
    assert_eq!(
        h.sent().iter().map(|p| p.0).collect::<Vec<_>>(),
        [TERMINATE_REQUEST]
    );
    assert_eq!(
        h.fsm.failure(),
        Some(NegotiationFailure::NoCommonAuthProtocol)
    );
}

#[test]
fn unknown_code_is_code_rejected_with_the_packet_quoted() {
    let mut h = Harness::new();
    h.with(|fsm, ctx| fsm.force_state(State::Opened, ctx));
    // Code 0x33 with two octets of padding past its Length.
    let info = [0x33, 0x05, 0x00, 0x06, 0xde, 0xad, 0x00, 0x00];
    let result = h.with(|fsm, ctx| fsm.receive(ctx, &info));
    assert_eq!(result, Err(ControlDrop::UnknownCode(0x33)));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, CODE_REJECT);
    assert_eq!(
        sent[0].2,
        [0x33, 0x05, 0x00, 0x06, 0xde, 0xad],
        "padding not quoted"
    );
    assert_eq!(h.fsm.state(), State::Opened);
}

#[test]
fn packets_before_the_lower_layer_is_up_are_discarded() {
    let mut h = Harness::new();
    assert_eq!(
        h.receive(CONFIGURE_REQUEST, 1, &[]),
        Err(ControlDrop::NotRunning)
    );
    h.with(|fsm, ctx| fsm.open(ctx));
    assert_eq!(
        h.receive(TERMINATE_REQUEST, 1, &[]),
        Err(ControlDrop::NotRunning)
    );
    assert!(h.sent().is_empty());
    assert_eq!(
        h.receive(ECHO_REQUEST, 1, &[]),
        Err(ControlDrop::NotRunning)
    );
}

#[test]
fn two_automata_converge() {
    // Two probes wired back to back open each other.
    let mut a = Harness::new();
    let mut b = Harness::new();
    for h in [&mut a, &mut b] {
        h.with(|fsm, ctx| fsm.open(ctx));
        h.with(|fsm, ctx| fsm.up(ctx));
    }
    for _ in 0..4 {
        let mut buf = Vec::new();
        while a.out.pop_into(&mut buf) {
            let frame = parse_frame(&buf).unwrap();
            let info = frame.information.to_vec();
            b.with(|fsm, ctx| fsm.receive(ctx, &info)).unwrap();
            buf.clear();
        }
        while b.out.pop_into(&mut buf) {
            let frame = parse_frame(&buf).unwrap();
            let info = frame.information.to_vec();
            a.with(|fsm, ctx| fsm.receive(ctx, &info)).unwrap();
            buf.clear();
        }
    }
    assert_eq!(a.fsm.state(), State::Opened);
    assert_eq!(b.fsm.state(), State::Opened);
    assert_eq!(a.fsm.poll_timeout(), None);
    assert!(a.signals().contains(&LayerSignal::Up));
    assert!(b.signals().contains(&LayerSignal::Up));
}
