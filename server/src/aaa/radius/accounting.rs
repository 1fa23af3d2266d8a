//! Accounting records ([RFC 2866]): what a session reports at its start,
//! at each interim interval and at its end, and the attributes they
//! travel in. A record is plain data (it is spooled to disk as it is,
//! [`super::spool`]); its attributes are built when it is sent, so that
//! Acct-Delay-Time counts from the event.
//!
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::mapping::NasIdentity;
use crate::metrics::Event;
use crate::radius::attr::{self, AcctStatusType, AcctTerminateCause, Attributes};

/// Acct-Status-Type of a record ([RFC 2866] 5.1).
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcctKind {
    Start,
    InterimUpdate,
    Stop,
    AccountingOn,
    AccountingOff,
}

impl AcctKind {
    fn status_type(self) -> AcctStatusType {
        match self {
            AcctKind::Start => AcctStatusType::Start,
            AcctKind::InterimUpdate => AcctStatusType::InterimUpdate,
            AcctKind::Stop => AcctStatusType::Stop,
            AcctKind::AccountingOn => AcctStatusType::AccountingOn,
            AcctKind::AccountingOff => AcctStatusType::AccountingOff,
        }
    }

    /// Short lowercase name for logs.
    pub fn as_str(self) -> &'static str {
        self.status_type().as_str()
    }

    /// Whether the record reports a session (not the NAS's own start or
    /// stop).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            AcctKind::Start | AcctKind::InterimUpdate | AcctKind::Stop
        )
    }
}

/// How the user was authenticated: Acct-Authentic ([RFC 2866] 5.6).
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authentic {
    Radius,
    Local,
}

/// A session's traffic so far, as the protocol core counts it (IP packets
/// and their octets, headers included; [`crate::proto::session::SessionStats`]).
/// "Input" is what the client sent ([RFC 2866] 5.3: received from the
/// port).
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
}

/// One accounting record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcctRecord {
    pub kind: AcctKind,
    /// Acct-Session-Id (and Acct-Multi-Session-Id: one link per session);
    /// empty for Accounting-On/Off.
    pub session_id: String,
    /// User-Name; empty for Accounting-On/Off.
    pub user: String,
    /// Calling-Station-Id: the client's IP address.
    pub calling_station: Option<String>,
    /// Framed-IP-Address.
    pub framed_ip: Option<Ipv4Addr>,
    /// The Access-Accept's Class attributes, echoed unchanged ([RFC 2865]
    /// 5.25).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub class: Vec<Vec<u8>>,
    pub authentic: Authentic,
    /// When the event happened (Unix seconds): Event-Timestamp, and where
    /// Acct-Delay-Time counts from.
    pub event_time: u64,
    /// Acct-Session-Time (Interim-Update and Stop).
    pub session_time: u32,
    /// The counters (Interim-Update and Stop).
    pub traffic: Traffic,
    /// Acct-Terminate-Cause (Stop).
    pub terminate_cause: Option<u32>,
}

impl AcctRecord {
    /// Accounting-On or -Off ([RFC 2866] 5.1): the NAS itself starts or
    /// stops, at `event_time`.
    ///
    /// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
    pub fn nas(kind: AcctKind, event_time: u64) -> AcctRecord {
        AcctRecord {
            kind,
            session_id: String::new(),
            user: String::new(),
            calling_station: None,
            framed_ip: None,
            class: Vec::new(),
            authentic: Authentic::Radius,
            event_time,
            session_time: 0,
            traffic: Traffic::default(),
            terminate_cause: None,
        }
    }

    /// The Accounting-Request attributes of this record sent at `now`
    /// (Unix seconds): Acct-Status-Type, the session's identity and NAS
    /// attributes, Event-Timestamp, Acct-Delay-Time (the client adds the
    /// time it spends retrying), and for Interim-Update and Stop the
    /// session time and counters, octets above 2^32 in Acct-*-Gigawords
    /// ([RFC 2869] 5.1, 5.2); packet counts wrap at 2^32.
    ///
    /// [RFC 2869]: https://www.rfc-editor.org/rfc/rfc2869
    pub fn attributes(&self, nas: &NasIdentity, now: u64) -> Attributes {
        let mut attrs = Attributes::new();
        attrs.push_u32(attr::ACCT_STATUS_TYPE, self.kind.status_type().value());
        if !self.session_id.is_empty() {
            let _ = attrs.push_string(attr::ACCT_SESSION_ID, &self.session_id);
            let _ = attrs.push_string(attr::ACCT_MULTI_SESSION_ID, &self.session_id);
        }
        if !self.user.is_empty() {
            let _ = attrs.push_string(attr::USER_NAME, &self.user);
        }
        nas.push_nas_attributes(&mut attrs);
        if let Some(calling) = &self.calling_station {
            let _ = attrs.push_string(attr::CALLING_STATION_ID, calling);
        }
        if let Some(ip) = self.framed_ip {
            attrs.push_ipv4(attr::FRAMED_IP_ADDRESS, ip);
        }
        for class in &self.class {
            let _ = attrs.push(attr::CLASS, class);
        }
        if self.kind.is_session() {
            attrs.push_u32(
                attr::ACCT_AUTHENTIC,
                match self.authentic {
                    Authentic::Radius => attr::ACCT_AUTHENTIC_RADIUS,
                    Authentic::Local => attr::ACCT_AUTHENTIC_LOCAL,
                },
            );
        }
        attrs.push_u32(attr::EVENT_TIMESTAMP, self.event_time as u32);
        let delay = now.saturating_sub(self.event_time).min(u64::from(u32::MAX));
        attrs.push_u32(attr::ACCT_DELAY_TIME, delay as u32);
        if matches!(self.kind, AcctKind::InterimUpdate | AcctKind::Stop) {
            let t = &self.traffic;
            attrs.push_u32(attr::ACCT_SESSION_TIME, self.session_time);
            attrs.push_u32(attr::ACCT_INPUT_OCTETS, t.input_octets as u32);
            attrs.push_u32(attr::ACCT_INPUT_GIGAWORDS, (t.input_octets >> 32) as u32);
            attrs.push_u32(attr::ACCT_OUTPUT_OCTETS, t.output_octets as u32);
            attrs.push_u32(attr::ACCT_OUTPUT_GIGAWORDS, (t.output_octets >> 32) as u32);
            attrs.push_u32(attr::ACCT_INPUT_PACKETS, t.input_packets as u32);
            attrs.push_u32(attr::ACCT_OUTPUT_PACKETS, t.output_packets as u32);
        }
        if let Some(cause) = self.terminate_cause {
            attrs.push_u32(attr::ACCT_TERMINATE_CAUSE, cause);
        }
        attrs
    }
}

/// Now, in Unix seconds (0 before 1970: a broken clock).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Acct-Terminate-Cause ([RFC 2866] 5.10) for a session that ended for
/// `reason` (the event its close was counted as); `stopping`: the server
/// was shutting down, which ends every session with Admin-Reboot.
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
/// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
pub fn terminate_cause(reason: Event, stopping: bool) -> AcctTerminateCause {
    use AcctTerminateCause as Cause;
    if stopping {
        return Cause::AdminReboot;
    }
    match reason {
        // The client hung up.
        Event::PeerDisconnect | Event::PeerTerminated | Event::PeerAbort => Cause::UserRequest,
        // The connection went away under the session.
        Event::TransportClosed
        | Event::HelloTimeout
        | Event::EchoTimeout
        | Event::IoError
        | Event::TlsError => Cause::LostCarrier,
        Event::SessionTimeout => Cause::SessionTimeout,
        Event::IdleTimeout => Cause::IdleTimeout,
        // The operator removed the user, or a RADIUS Disconnect-Request
        // ([RFC 5176] 3) ended the session.
        Event::UserRemoved | Event::AdminReset => Cause::AdminReset,
        // The same user's newer session took the address over.
        Event::SessionTakenOver => Cause::PortPreempted,
        // The operator is taking the node out of service (`sstpctl
        // drain`, then a stop or an upgrade): RFC 2866 5.10's
        // "Administrator is ending service on the NAS, for example prior to
        // rebooting the NAS", the cause SIGTERM gives too, so a RADIUS
        // server sees one cause for a node leaving, drained or not.
        Event::ShutdownForcedClose | Event::Drain => Cause::AdminReboot,
        // sstpd ended it on purpose.
        Event::LocalDisconnect | Event::LocalClose => Cause::NasRequest,
        // A protocol violation, a timer, a failure of sstpd's.
        _ => Cause::NasError,
    }
}

/// What to send of the records an earlier run left in the spool, given
/// that Accounting-On goes first and tells the server that every session
/// of this NAS has ended ([RFC 2866] 5.1; [RFC 5080] 2.2.1).
///
/// A Start or Interim-Update sent after it would reopen a session the
/// server has just closed, and nothing would ever close it again (the
/// cluster bench saw such rows, and their addresses held in a shared
/// pool). So per session only one record is sent: its Stop if the spool
/// has one, or else its latest record turned into a Stop with
/// Acct-Terminate-Cause NAS-Reboot, which carries the counters it had (the
/// session did exist, and ended when the NAS went down). The records it
/// replaces are `superseded`: acknowledged in the spool without being sent.
///
/// [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866
/// [RFC 5080]: https://www.rfc-editor.org/rfc/rfc5080
#[derive(Debug, PartialEq, Eq)]
pub struct Replay<I> {
    /// To send, oldest first (the spool's order).
    pub send: Vec<(I, AcctRecord)>,
    pub superseded: Vec<I>,
}

impl<I: Copy> Replay<I> {
    /// Sorts `records` (oldest first) into what is sent and what is not.
    pub fn after_restart(records: Vec<(I, AcctRecord)>) -> Replay<I> {
        use std::collections::HashMap;
        // Per session: the index of the record that stands for it.
        let mut chosen: HashMap<&str, usize> = HashMap::new();
        for (i, (_, record)) in records.iter().enumerate() {
            if !record.kind.is_session() {
                continue;
            }
            let better = match chosen.get(record.session_id.as_str()) {
                None => true,
                Some(&j) => {
                    let current = &records[j].1;
                    // A Stop wins over anything else; otherwise the latest.
                    current.kind != AcctKind::Stop || record.kind == AcctKind::Stop
                }
            };
            if better {
                chosen.insert(record.session_id.as_str(), i);
            }
        }
        let keep: std::collections::HashSet<usize> = chosen.into_values().collect();
        let mut replay = Replay {
            send: Vec::new(),
            superseded: Vec::new(),
        };
        for (i, (id, mut record)) in records.into_iter().enumerate() {
            if record.kind.is_session() && !keep.contains(&i) {
                replay.superseded.push(id);
                continue;
            }
            if matches!(record.kind, AcctKind::Start | AcctKind::InterimUpdate) {
                record.kind = AcctKind::Stop;
                record.terminate_cause = Some(AcctTerminateCause::NasReboot.value());
            }
            replay.send.push((id, record));
        }
        replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aaa::radius::mapping::tests::{assert_session_attributes, nas};

    fn session_record(kind: AcctKind, session: &str, event_time: u64, octets: u64) -> AcctRecord {
        AcctRecord {
            kind,
            session_id: session.into(),
            user: "alice".into(),
            event_time,
            traffic: Traffic {
                input_octets: octets,
                ..Traffic::default()
            },
            ..AcctRecord::nas(kind, event_time)
        }
    }

    #[test]
    fn after_a_restart_each_session_is_replayed_as_one_stop() {
        use AcctKind::{InterimUpdate, Start, Stop};
        let records = vec![
            (1, session_record(Start, "a", 10, 0)),
            (2, session_record(Start, "b", 11, 0)),
            (3, session_record(InterimUpdate, "a", 20, 500)),
            (4, session_record(Start, "c", 21, 0)),
            (5, session_record(InterimUpdate, "b", 22, 300)),
            (6, session_record(Stop, "b", 23, 400)),
            (7, session_record(InterimUpdate, "b", 24, 999)),
        ];
        let replay = Replay::after_restart(records);
        assert_eq!(replay.superseded, vec![1, 2, 5, 7]);
        let sent: Vec<(i32, &str, AcctKind, u64, Option<u32>)> = replay
            .send
            .iter()
            .map(|(id, r)| {
                (
                    *id,
                    r.session_id.as_str(),
                    r.kind,
                    r.traffic.input_octets,
                    r.terminate_cause,
                )
            })
            .collect();
        let reboot = Some(AcctTerminateCause::NasReboot.value());
        assert_eq!(
            sent,
            vec![
                // a: its last Interim-Update, closed by the reboot.
                (3, "a", Stop, 500, reboot),
                // c: only a Start, closed likewise.
                (4, "c", Stop, 0, reboot),
                // b: its own Stop, as it was (a late Interim does not win).
                (6, "b", Stop, 400, None),
            ]
        );
    }

    #[test]
    fn a_replay_of_nothing_sends_nothing() {
        let replay = Replay::<u8>::after_restart(Vec::new());
        assert!(replay.send.is_empty() && replay.superseded.is_empty());
    }

    fn stop() -> AcctRecord {
        AcctRecord {
            kind: AcctKind::Stop,
            session_id: "0123456789abcdef00000001".into(),
            user: "alice".into(),
            calling_station: Some("198.51.100.7".into()),
            framed_ip: Some(Ipv4Addr::new(10, 99, 0, 2)),
            class: vec![b"plan-a".to_vec()],
            authentic: Authentic::Radius,
            event_time: 1_700_000_000,
            session_time: 3600,
            traffic: Traffic {
                input_octets: (5 << 32) + 7,
                output_octets: 1234,
                input_packets: 10,
                output_packets: (1 << 32) + 3,
            },
            terminate_cause: Some(AcctTerminateCause::UserRequest.value()),
        }
    }

    #[test]
    fn a_stop_carries_everything_rfc_2866_asks_for() {
        let attrs = stop().attributes(&nas(), 1_700_000_042);
        assert_eq!(attrs.u32(attr::ACCT_STATUS_TYPE), Some(2));
        assert_session_attributes(&attrs);
        assert_eq!(
            attrs.string(attr::ACCT_MULTI_SESSION_ID),
            Some("0123456789abcdef00000001")
        );
        assert_eq!(attrs.string(attr::USER_NAME), Some("alice"));
        assert_eq!(
            attrs.ipv4(attr::FRAMED_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 99, 0, 2))
        );
        assert_eq!(attrs.get(attr::CLASS), Some(&b"plan-a"[..]));
        assert_eq!(attrs.u32(attr::ACCT_AUTHENTIC), Some(1));
        assert_eq!(attrs.u32(attr::EVENT_TIMESTAMP), Some(1_700_000_000));
        assert_eq!(attrs.u32(attr::ACCT_DELAY_TIME), Some(42));
        assert_eq!(attrs.u32(attr::ACCT_SESSION_TIME), Some(3600));
        assert_eq!(attrs.u32(attr::ACCT_INPUT_OCTETS), Some(7));
        assert_eq!(attrs.u32(attr::ACCT_INPUT_GIGAWORDS), Some(5));
        assert_eq!(attrs.u32(attr::ACCT_OUTPUT_OCTETS), Some(1234));
        assert_eq!(attrs.u32(attr::ACCT_OUTPUT_GIGAWORDS), Some(0));
        assert_eq!(attrs.u32(attr::ACCT_INPUT_PACKETS), Some(10));
        assert_eq!(attrs.u32(attr::ACCT_OUTPUT_PACKETS), Some(3), "wraps");
        assert_eq!(attrs.u32(attr::ACCT_TERMINATE_CAUSE), Some(1));
    }

    #[test]
    fn a_start_has_no_counters_and_accounting_on_no_session() {
        let mut start = stop();
        start.kind = AcctKind::Start;
        start.terminate_cause = None;
        let attrs = start.attributes(&nas(), start.event_time);
        assert_eq!(attrs.u32(attr::ACCT_STATUS_TYPE), Some(1));
        assert_eq!(attrs.u32(attr::ACCT_DELAY_TIME), Some(0));
        for kind in [
            attr::ACCT_SESSION_TIME,
            attr::ACCT_INPUT_OCTETS,
            attr::ACCT_TERMINATE_CAUSE,
        ] {
            assert!(!attrs.contains(kind), "{kind}");
        }
        let on = AcctRecord::nas(AcctKind::AccountingOn, 5).attributes(&nas(), 5);
        assert_eq!(on.u32(attr::ACCT_STATUS_TYPE), Some(7));
        assert!(!on.contains(attr::ACCT_SESSION_ID) && !on.contains(attr::USER_NAME));
        assert_eq!(on.string(attr::NAS_IDENTIFIER), Some("sstpd-test"));
    }

    #[test]
    fn close_reasons_map_to_terminate_causes() {
        use AcctTerminateCause as Cause;
        for (event, cause) in [
            (Event::PeerDisconnect, Cause::UserRequest),
            (Event::PeerTerminated, Cause::UserRequest),
            (Event::TransportClosed, Cause::LostCarrier),
            (Event::HelloTimeout, Cause::LostCarrier),
            (Event::SessionTimeout, Cause::SessionTimeout),
            (Event::IdleTimeout, Cause::IdleTimeout),
            (Event::UserRemoved, Cause::AdminReset),
            (Event::AdminReset, Cause::AdminReset),
            (Event::Drain, Cause::AdminReboot),
            (Event::LocalDisconnect, Cause::NasRequest),
            (Event::WrongMac, Cause::NasError),
        ] {
            assert_eq!(terminate_cause(event, false), cause, "{event}");
        }
        assert_eq!(
            terminate_cause(Event::LocalDisconnect, true),
            Cause::AdminReboot
        );
    }

    #[test]
    fn a_record_survives_the_spool_format() {
        let record = stop();
        let text = toml::to_string(&record).unwrap();
        assert_eq!(toml::from_str::<AcctRecord>(&text).unwrap(), record);
    }
}
