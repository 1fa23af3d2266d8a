#![cfg(feature = "runtime")]
//! Whole sessions on the wire, decoded by Wireshark's SSTP dissector
//! (tshark 4.0.17), a decoder nobody here wrote.
//!
//! dumpcap captures the namespace's loopback from before the TCP handshake
//! (the dissector recognises SSTP only after it has seen the
//! `SSTP_DUPLEX_POST` exchange); both ends log their TLS secrets through
//! rustls' `KeyLogFile` (`SSLKEYLOGFILE`), so tshark decrypts TLS 1.2 and
//! TLS 1.3. Two sessions of the protocol core's client role against sstpd:
//! TLS 1.3 with MS-CHAPv2, and TLS 1.2 with PAP, each with pings through the
//! tunnel and a graceful close. Every HTTP message, SSTP control message
//! and PPP frame must decode, in the order the protocols prescribe, with
//! no malformed packet and no expert warning or error; and every TLS
//! record the server sends after the 200 carries exactly one SSTP packet.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sstpd::config::TlsVersion;
use sstpd::proto::auth::AuthProtocol;
use sstpd::testing::netns::NetNs;
use sstpd::tls::certs::SelfSignedKey;

/// The server listens on the HTTPS port inside its namespace, where
/// Wireshark expects TLS and HTTP.
const PORT: u16 = 443;

/// Wireshark's expert severities ("epan/proto.h": PI_WARN, PI_ERROR).
const SEVERITY_WARN: u32 = 0x0060_0000;
const SEVERITY_ERROR: u32 = 0x0080_0000;

/// [MS-SSTP] 2.2.9 message types.
const CALL_CONNECT_REQUEST: u16 = 1;
const CALL_CONNECT_ACK: u16 = 2;
const CALL_CONNECTED: u16 = 4;
const CALL_DISCONNECT: u16 = 6;
const CALL_DISCONNECT_ACK: u16 = 7;

/// PPP protocol numbers and codes ([RFC 1661] 5, [RFC 1334], [RFC 1994]).
const LCP: u16 = 0xc021;
const IPCP: u16 = 0x8021;
const PAP: u16 = 0xc023;
const CHAP: u16 = 0xc223;
const IPV4: u16 = 0x0021;
const CONFIGURE_REQUEST: u8 = 1;
const CONFIGURE_ACK: u8 = 2;
const TERMINATE_REQUEST: u8 = 5;
const TERMINATE_ACK: u8 = 6;

/// dumpcap on a namespace's loopback; stopped (SIGINT) and reaped on drop.
///
/// dumpcap gets packets from the kernel in blocks, and writes them out
/// later still. So that nothing is lost at either end, [`Dumpcap::mark`]
/// sends UDP markers (which the capture filter also takes) until one shows
/// up in the file: after the start, the capture is live; before the stop,
/// everything sent earlier is in the file.
struct Dumpcap {
    child: Child,
    stderr: Arc<Mutex<String>>,
    file: std::path::PathBuf,
    marker_from: UdpSocket,
    marker_to: SocketAddr,
}

impl Dumpcap {
    /// Starts capturing on `lo` of `ns` into `file`: TCP on [`PORT`] and
    /// the markers. Returns once a marker has been captured.
    fn start(ns: &NetNs, dumpcap: &Path, file: &Path) -> Dumpcap {
        let (marker_from, marker_sink) = ns.run(|| {
            (
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                UdpSocket::bind("127.0.0.1:0").unwrap(),
            )
        });
        let marker_to = marker_sink.local_addr().unwrap();
        let filter = format!("tcp port {PORT} or udp port {}", marker_to.port());
        let mut child = ns
            .command(dumpcap)
            .args(["-q", "-i", "lo", "-f", &filter, "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dumpcap");
        let (stderr, _reader) = collect_output(child.stderr.take().unwrap());
        let dumpcap = Dumpcap {
            child,
            stderr,
            file: file.to_path_buf(),
            marker_from,
            marker_to,
        };
        dumpcap.mark("sstpd-capture-start");
        drop(marker_sink);
        dumpcap
    }

    /// Sends `tag` every 50 ms until the file holds it (at most 10 s).
    fn mark(&self, tag: &str) {
        let captured = wait_until(Duration::from_secs(10), || {
            let _ = self.marker_from.send_to(tag.as_bytes(), self.marker_to);
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read(&self.file).is_ok_and(|bytes| {
                bytes
                    .windows(tag.len())
                    .any(|window| window == tag.as_bytes())
            })
        });
        assert!(
            captured,
            "marker {tag} never reached the capture: {}",
            self.log()
        );
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until everything sent so far is in the file, stops the
    /// capture and returns dumpcap's summary.
    fn stop(mut self) -> String {
        self.mark("sstpd-capture-end");
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let exited = wait_until(Duration::from_secs(10), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        assert!(exited, "dumpcap did not stop: {}", self.log());
        wait_until(Duration::from_secs(2), || {
            self.log().contains("Packets captured")
        });
        self.log()
    }
}

impl Drop for Dumpcap {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One decoded protocol element, in wire order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Element {
    /// An HTTP request method.
    Request(String),
    /// An HTTP status code.
    Response(String),
    /// An SSTP control message, by message type.
    Control(u16),
    /// A PPP frame: protocol and, for control protocols, the code.
    Ppp(u16, Option<u8>),
}

/// An element and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    frame: u32,
    from_server: bool,
    element: Element,
}

/// Expert information that tshark attached.
#[derive(Clone, Debug)]
struct Expert {
    frame: u32,
    /// The protocol whose dissector raised it (`tcp`, `sstp`, ...).
    protocol: String,
    severity: u32,
    message: String,
}

impl Expert {
    /// Flags that describe the network rather than anyone's bytes: TCP on
    /// a loaded loopback sometimes duplicates a SACK or retransmits. They
    /// say nothing about what sstpd or its peer sent. (A reset, by
    /// contrast, is the endpoints' doing and still fails the test.)
    fn is_network_condition(&self) -> bool {
        const TCP_CONDITIONS: &[&str] = &[
            "duplicate ack",
            "d-sack",
            "duplicate sack",
            "retransmission",
            "window",
            "out-of-order",
            "previous segment not captured",
            "acked segment that wasn't captured",
            "spurious",
            "keep-alive",
        ];
        let message = self.message.to_ascii_lowercase();
        self.protocol == "tcp" && TCP_CONDITIONS.iter().any(|c| message.contains(c))
    }
}

impl std::fmt::Display for Expert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frame {}: {} (severity {:#x})",
            self.frame, self.message, self.severity
        )
    }
}

/// What tshark made of a capture.
#[derive(Debug, Default)]
struct Dissection {
    /// Per TCP stream, every element in order.
    streams: BTreeMap<u32, Vec<Seen>>,
    /// Frames tshark marked malformed.
    malformed: Vec<u32>,
    experts: Vec<Expert>,
    /// Per stream: SSTP packets that decoded to neither a control message
    /// nor a PPP frame.
    undecoded_sstp: BTreeMap<u32, u32>,
    /// Per stream: TLS application data records the server sent.
    server_app_records: BTreeMap<u32, u32>,
    /// Hash Protocol fields: stream, message type, value as shown.
    binding_hashes: Vec<(u32, u16, String)>,
}

/// `name="..."` and `show="..."` of a PDML line.
fn attribute<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}=\""))? + key.len() + 3;
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

fn hex_u16(show: &str) -> Option<u16> {
    u16::from_str_radix(show.trim_start_matches("0x"), 16).ok()
}

/// Runs tshark over `pcap` with the key log and walks its PDML.
fn dissect(tshark: &Path, pcap: &Path, keys: &Path) -> Dissection {
    let output = std::process::Command::new(tshark)
        .arg("-r")
        .arg(pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        .args(["-d", &format!("tcp.port=={PORT},tls"), "-T", "pdml"])
        .output()
        .expect("run tshark");
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    walk_pdml(&String::from_utf8_lossy(&output.stdout))
}

/// Collects a [`Dissection`] from PDML (one element per line, in document
/// order, as tshark writes it).
fn walk_pdml(pdml: &str) -> Dissection {
    let mut dissection = Dissection::default();
    let mut last_message = 0u16;
    let (mut frame, mut stream, mut from_server) = (0u32, 0u32, false);
    let mut expert_message = String::new();
    let mut protocol = String::new();
    let mut sstp_open = false;
    for line in pdml.lines() {
        let line = line.trim_start();
        if line.starts_with("<packet>") {
            frame += 1;
            sstp_open = false;
            continue;
        }
        if line.starts_with("<proto ") {
            let proto = attribute(line, "name").unwrap_or_default();
            protocol = proto.to_string();
            if proto == "_ws.malformed" {
                dissection.malformed.push(frame);
            }
            if sstp_open && proto != "ppp" {
                // The previous SSTP packet ended without a message type
                // or PPP frame.
                *dissection.undecoded_sstp.entry(stream).or_default() += 1;
            }
            sstp_open = proto == "sstp";
            continue;
        }
        if !line.starts_with("<field ") {
            continue;
        }
        let (Some(name), Some(show)) = (attribute(line, "name"), attribute(line, "show")) else {
            continue;
        };
        let seen = |element| Seen {
            frame,
            from_server,
            element,
        };
        match name {
            "tcp.stream" => stream = show.parse().unwrap_or(u32::MAX),
            "tcp.srcport" => from_server = show == PORT.to_string(),
            "tls.record.content_type" if show == "23" && from_server => {
                *dissection.server_app_records.entry(stream).or_default() += 1;
            }
            "_ws.expert.message" => expert_message = show.to_owned(),
            "_ws.expert.severity" => dissection.experts.push(Expert {
                frame,
                protocol: protocol.clone(),
                severity: show.parse().unwrap_or(u32::MAX),
                message: std::mem::take(&mut expert_message),
            }),
            name if name.starts_with("_ws.malformed") => dissection.malformed.push(frame),
            "http.request.method" => {
                dissection
                    .streams
                    .entry(stream)
                    .or_default()
                    .push(seen(Element::Request(show.to_owned())));
            }
            "http.response.code" => {
                dissection
                    .streams
                    .entry(stream)
                    .or_default()
                    .push(seen(Element::Response(show.to_owned())));
            }
            "sstp.hash" => {
                dissection
                    .binding_hashes
                    .push((stream, last_message, show.to_owned()));
            }
            "sstp.messagetype" => {
                sstp_open = false;
                last_message = hex_u16(show).unwrap_or(0);
                dissection
                    .streams
                    .entry(stream)
                    .or_default()
                    .push(seen(Element::Control(hex_u16(show).unwrap_or(0))));
            }
            "ppp.protocol" => {
                dissection
                    .streams
                    .entry(stream)
                    .or_default()
                    .push(seen(Element::Ppp(hex_u16(show).unwrap_or(0), None)));
            }
            "ppp.code" | "chap.code" | "pap.code" => {
                if let Some(Seen {
                    element: Element::Ppp(_, code @ None),
                    ..
                }) = dissection.streams.entry(stream).or_default().last_mut()
                {
                    *code = show.parse().ok();
                }
            }
            _ => {}
        }
    }
    if sstp_open {
        *dissection.undecoded_sstp.entry(stream).or_default() += 1;
    }
    dissection
}

/// Finds `wanted` in `seen` in this order (others may come between);
/// panics naming the first one missing.
fn assert_in_order(seen: &[Seen], wanted: &[(bool, Element)], what: &str) {
    let mut rest = seen;
    for (from_server, element) in wanted {
        let side = if *from_server { "server" } else { "client" };
        match rest
            .iter()
            .position(|s| s.from_server == *from_server && s.element == *element)
        {
            Some(i) => rest = &rest[i + 1..],
            None => panic!(
                "{what}: {element:?} from the {side} missing or out of order; decoded:\n{}",
                seen.iter()
                    .map(|s| format!(
                        "  frame {:3} {:6} {:?}",
                        s.frame,
                        if s.from_server { "server" } else { "client" },
                        s.element
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
}

/// The order every session must show on the wire. `auth` is the
/// authentication exchange of its method.
fn expected_order(auth: &[(bool, Element)]) -> Vec<Vec<(bool, Element)>> {
    use Element::*;
    let (client, server) = (false, true);
    let mut setup = vec![
        (client, Request("SSTP_DUPLEX_POST".into())),
        (server, Response("200".into())),
        (client, Control(CALL_CONNECT_REQUEST)),
        (server, Control(CALL_CONNECT_ACK)),
        (server, Ppp(LCP, Some(CONFIGURE_REQUEST))),
        (client, Ppp(LCP, Some(CONFIGURE_ACK))),
    ];
    setup.extend_from_slice(auth);
    setup.extend([
        (client, Control(CALL_CONNECTED)),
        (client, Ppp(IPV4, None)),
        (server, Ppp(IPV4, None)),
        (client, Ppp(LCP, Some(TERMINATE_REQUEST))),
        (server, Ppp(LCP, Some(TERMINATE_ACK))),
        (client, Control(CALL_DISCONNECT)),
        (server, Control(CALL_DISCONNECT_ACK)),
    ]);
    // The client's own LCP request, acknowledged by the server.
    let client_lcp = vec![
        (client, Ppp(LCP, Some(CONFIGURE_REQUEST))),
        (server, Ppp(LCP, Some(CONFIGURE_ACK))),
        (client, Control(CALL_CONNECTED)),
    ];
    // IPCP after authentication, both ways, before the first data.
    let last_auth = auth.last().cloned().expect("an authentication exchange");
    let ipcp = vec![
        last_auth,
        (server, Ppp(IPCP, Some(CONFIGURE_REQUEST))),
        (client, Ppp(IPCP, Some(CONFIGURE_ACK))),
        (client, Ppp(IPV4, None)),
    ];
    let ipcp_client = vec![
        (client, Ppp(IPCP, Some(CONFIGURE_REQUEST))),
        (server, Ppp(IPCP, Some(CONFIGURE_ACK))),
        (client, Ppp(IPV4, None)),
    ];
    vec![setup, client_lcp, ipcp, ipcp_client]
}

#[test]
fn wireshark_decodes_tls12_and_tls13_sessions_completely_and_in_order() {
    let dumpcap = require_tool("dumpcap", "tshark");
    let tshark = require_tool("tshark", "tshark");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("tls-keys.txt");
    let pcap = dir.path().join("sessions.pcapng");
    // Read by rustls' KeyLogFile when the server and the clients build
    // their TLS configurations; this test binary runs nothing else.
    std::env::set_var("SSLKEYLOGFILE", &keys);
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.server.listen = vec![format!("127.0.0.1:{PORT}").parse().unwrap()];
    // PAP is off by default; the capture shows both methods.
    config.ppp.auth = vec![AuthProtocol::MsChapV2, AuthProtocol::Pap];
    let server = TestServer::start(config);
    let capture = Dumpcap::start(&server.ns, &dumpcap, &pcap);

    let sessions = [
        (TlsVersion::Tls13, AuthProtocol::MsChapV2),
        (TlsVersion::Tls12, AuthProtocol::Pap),
    ];
    let addr = server.addr;
    let outcomes = server.run_clients(move || async move {
        let mut outcomes = Vec::new();
        for (i, (tls, method)) in sessions.into_iter().enumerate() {
            let options = client_options(addr, "alice", "alice-secret", (tls, tls), &[method]);
            let (client, inbox) = connect(&options)
                .await
                .unwrap_or_else(|e| panic!("{tls:?} {method}: {e}"));
            let pinged = ping_gateway(&client, &inbox, i as u16, b"captured").await;
            client.close(Duration::from_secs(5)).await;
            outcomes.push((pinged, client.is_closed()));
        }
        outcomes
    });
    for (i, (pinged, closed)) in outcomes.into_iter().enumerate() {
        assert!(
            pinged && closed,
            "session {i}: pinged {pinged}, closed {closed}"
        );
    }
    assert!(
        server.wait_idle(Duration::from_secs(5)),
        "{}",
        server.handle().metrics()
    );
    let summary = capture.stop();
    assert!(
        summary.contains("dropped on interface 'Loopback: lo':") && summary.contains("/0 ("),
        "dumpcap dropped packets: {summary}"
    );

    let dissection = dissect(&tshark, &pcap, &keys);
    assert!(
        dissection.malformed.is_empty(),
        "malformed frames {:?}",
        dissection.malformed
    );
    let flagged: Vec<String> = dissection
        .experts
        .iter()
        .filter(|e| e.severity >= SEVERITY_WARN && !e.is_network_condition())
        .map(Expert::to_string)
        .collect();
    assert!(
        flagged.is_empty(),
        "expert warnings (>= {SEVERITY_WARN:#x}) or errors (>= {SEVERITY_ERROR:#x}):\n{}",
        flagged.join("\n")
    );
    let streams: Vec<(&u32, &Vec<Seen>)> = dissection
        .streams
        .iter()
        .filter(|(_, seen)| !seen.is_empty())
        .collect();
    assert_eq!(streams.len(), sessions.len(), "{dissection:#?}");
    let auth = |method| {
        use Element::Ppp;
        match method {
            AuthProtocol::MsChapV2 => vec![
                (true, Ppp(CHAP, Some(1))),
                (false, Ppp(CHAP, Some(2))),
                (true, Ppp(CHAP, Some(3))),
            ],
            _ => vec![(false, Ppp(PAP, Some(1))), (true, Ppp(PAP, Some(2)))],
        }
    };
    for ((stream, seen), (tls, method)) in streams.into_iter().zip(sessions) {
        let what = format!("stream {stream} ({tls:?}, {method})");
        for chain in expected_order(&auth(method)) {
            assert_in_order(seen, &chain, &what);
        }
        assert_eq!(
            dissection.undecoded_sstp.get(stream).copied().unwrap_or(0),
            0,
            "{what}: SSTP packets decoded to neither a message nor a PPP frame"
        );
        // One TLS record per SSTP packet from the server, after the one
        // that carried the 200.
        let from_server = seen
            .iter()
            .filter(|s| s.from_server && !matches!(s.element, Element::Response(_)))
            .count() as u32;
        assert_eq!(
            dissection
                .server_app_records
                .get(stream)
                .copied()
                .unwrap_or(0),
            from_server + 1,
            "{what}: server records vs. SSTP packets"
        );
        // [MS-SSTP] 2.2.6/2.2.7: the server offers SHA-1 and SHA-256 (a
        // bitmask, which this dissector names "Unknown"), the client binds
        // with SHA-256.
        let hashes: Vec<(u16, &str)> = dissection
            .binding_hashes
            .iter()
            .filter(|(s, _, _)| s == stream)
            .map(|(_, message, hash)| (*message, hash.as_str()))
            .collect();
        assert_eq!(
            hashes,
            [(CALL_CONNECT_ACK, "0x03"), (CALL_CONNECTED, "0x02")],
            "{what}"
        );
    }
}

/// The walker finds what the end-to-end assertions rely on: malformed
/// frames, expert severities, SSTP packets that decoded to nothing, and
/// elements in order with their direction.
#[test]
fn the_pdml_walker_reports_malformed_and_undecoded_packets() {
    let pdml = r#"<packet>
  <proto name="tcp" showname="TCP" size="32" pos="34">
    <field name="tcp.srcport" showname="Source Port: 443" size="2" pos="34" show="443" value="01bb"/>
    <field name="tcp.stream" showname="Stream index: 3" size="0" pos="34" show="3"/>
  </proto>
  <proto name="tls" showname="Transport Layer Security" size="64" pos="66">
    <field name="tls.record.content_type" showname="Content Type: Application Data (23)" size="1" pos="66" show="23" value="17"/>
  </proto>
  <proto name="sstp" showname="Secure Socket Tunneling Protocol" size="48" pos="0">
    <field name="sstp.messagetype" showname="Message Type: SSTP_MSG_CALL_CONNECT_ACK (0x0002)" size="2" pos="4" show="0x0002" value="0002"/>
    <field name="sstp.hash" showname="Hash Protocol: Unknown (0x03)" size="1" pos="15" show="0x03" value="03"/>
  </proto>
  <proto name="sstp" showname="Secure Socket Tunneling Protocol" size="27" pos="48">
  </proto>
  <proto name="ppp" showname="Point-to-Point Protocol" size="4" pos="52">
    <field name="ppp.protocol" showname="Protocol: Link Control Protocol (0xc021)" size="2" pos="54" show="0xc021" value="c021"/>
  </proto>
  <proto name="lcp" showname="PPP Link Control Protocol" size="19" pos="56">
    <field name="ppp.code" showname="Code: Configuration Request (1)" size="1" pos="56" show="1" value="01"/>
  </proto>
  <proto name="sstp" showname="Secure Socket Tunneling Protocol" size="8" pos="75">
  </proto>
  <proto name="_ws.malformed" showname="[Malformed Packet: SSTP]">
    <field name="_ws.expert" showname="Expert Info (Error/Malformed): Malformed Packet (Exception occurred)" size="0" pos="0">
      <field name="_ws.expert.message" showname="Message: Malformed Packet (Exception occurred)" hide="yes" size="0" pos="0" show="Malformed Packet (Exception occurred)"/>
      <field name="_ws.expert.severity" showname="Severity level: Error" size="0" pos="0" show="8388608"/>
    </field>
  </proto>
</packet>
"#;
    let d = walk_pdml(pdml);
    assert_eq!(d.malformed, [1]);
    assert_eq!(d.experts.len(), 1);
    assert_eq!(d.experts[0].severity, SEVERITY_ERROR);
    assert_eq!(
        d.experts[0].to_string(),
        "frame 1: Malformed Packet (Exception occurred) (severity 0x800000)"
    );
    assert_eq!(d.undecoded_sstp.get(&3), Some(&1));
    assert_eq!(d.server_app_records.get(&3), Some(&1));
    assert_eq!(d.binding_hashes, [(3, CALL_CONNECT_ACK, "0x03".to_owned())]);
    let seen: Vec<(bool, Element)> = d.streams[&3]
        .iter()
        .map(|s| (s.from_server, s.element.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (true, Element::Control(CALL_CONNECT_ACK)),
            (true, Element::Ppp(LCP, Some(CONFIGURE_REQUEST))),
        ]
    );
}

#[test]
fn only_tcp_network_conditions_are_excused() {
    let expert = |protocol: &str, message: &str| Expert {
        frame: 1,
        protocol: protocol.to_string(),
        severity: SEVERITY_WARN,
        message: message.to_string(),
    };
    assert!(expert("tcp", "Duplicate SACK (D-SACK) sequence").is_network_condition());
    assert!(expert("tcp", "This frame is a (suspected) retransmission").is_network_condition());
    assert!(
        !expert("tcp", "Connection reset (RST)").is_network_condition(),
        "a reset is the endpoints' doing"
    );
    assert!(
        !expert("sstp", "Duplicate SACK").is_network_condition(),
        "only TCP's own flags"
    );
    assert!(!expert("ppp", "retransmission").is_network_condition());
}
