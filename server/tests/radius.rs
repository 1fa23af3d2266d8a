#![cfg(feature = "runtime")]
//! Authentication through RADIUS against a real FreeRADIUS 3.2
//! (`sstpd::testing::freeradius`), started inside each test's network
//! namespace next to the real server (TLS, io_uring workers, TUN), with
//! clients built from the protocol core's client role.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sstpd::aaa::radius::RadiusService;
use sstpd::config::{Config, RadiusServer, Secret, UserBackend};
use sstpd::metrics::{Event, Metrics};
use sstpd::proto::auth::verify::LocalAuthenticator;
use sstpd::proto::auth::{
    mschapv2, AuthContext, AuthDecision, AuthProtocol, AuthReply, AuthRequest, AuthRequestId,
    Authenticator, Credentials, RejectReason,
};
use sstpd::testing::freeradius::{AccountingRecord, FreeRadius, FreeRadiusConfig, RadiusUser};
use sstpd::testing::netns::NetNs;
use sstpd::testing::StaticPasswords;
use sstpd::tls::certs::SelfSignedKey;

/// The RADIUS users of these tests.
fn users() -> Vec<RadiusUser> {
    vec![
        RadiusUser::new("carol", "carol-secret"),
        RadiusUser::new("dave", "dave-secret")
            .with_reply("Framed-IP-Address", "10.99.0.77")
            .with_reply("MS-Primary-DNS-Server", "192.0.2.53")
            .with_reply("MS-Secondary-DNS-Server", "192.0.2.54")
            .with_reply("Session-Timeout", "3")
            .with_reply("Class", "\"plan-gold\""),
        RadiusUser::new("erin", "erin-secret").with_reply("Framed-Pool", "\"gold\""),
        RadiusUser::new("frank", "frank-secret").with_reply("Idle-Timeout", "2"),
    ]
}

fn server(address: &str) -> RadiusServer {
    RadiusServer {
        address: address.parse().unwrap(),
        secret: Secret("testing123".into()),
    }
}

/// A test server configuration authenticating through RADIUS only, at
/// `servers` (FreeRADIUS in the server's namespace), with short timers.
fn radius_config(dir: &std::path::Path, servers: &[&str]) -> Config {
    let mut config = test_config(dir, SelfSignedKey::EcdsaP256, 2);
    config.ppp.auth = vec![AuthProtocol::MsChapV2, AuthProtocol::Pap];
    config.users.backends = vec![UserBackend::Radius];
    config.radius.auth_server = servers.iter().map(|s| server(s)).collect();
    config.radius.auth_timeout = Duration::from_millis(500);
    config.radius.retries = 1;
    config
}

fn radius_in(ns: &NetNs, config: FreeRadiusConfig) -> FreeRadius {
    FreeRadius::start_in(ns, &config).expect("FreeRADIUS starts in the namespace")
}

/// A server authenticating through FreeRADIUS (with [`users`]) in its
/// namespace; bind as `(_dir, server, radius)` so they drop in the right
/// order.
fn radius_server() -> (tempfile::TempDir, TestServer, FreeRadius) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(radius_config(dir.path(), &["127.0.0.1:1812"]));
    let radius = freeradius(&server.ns);
    (dir, server, radius)
}

/// FreeRADIUS with [`users`] in `ns`, on 127.0.0.1:1812/1813.
fn freeradius(ns: &NetNs) -> FreeRadius {
    radius_in(
        ns,
        FreeRadiusConfig {
            users: users(),
            ..Default::default()
        },
    )
}

fn count(server: &TestServer, event: Event) -> u64 {
    server.handle().metrics().count(event)
}

#[test]
fn pap_and_mschapv2_sessions_authenticate_through_freeradius() {
    let (_dir, server, radius) = radius_server();
    let addr = server.addr;
    let results = server.run_clients(move || async move {
        let mut results = Vec::new();
        for (i, method) in [AuthProtocol::Pap, AuthProtocol::MsChapV2]
            .into_iter()
            .enumerate()
        {
            let options = client_options(addr, "carol", "carol-secret", TLS, &[method]);
            let outcome = match connect(&options).await {
                Ok((client, inbox)) => {
                    let pinged = ping_gateway(&client, &inbox, i as u16, b"radius").await;
                    client.close(Duration::from_secs(5)).await;
                    Ok(pinged)
                }
                Err(e) => Err(e.to_string()),
            };
            results.push((method, outcome));
        }
        results
    });
    for (method, outcome) in results {
        assert_eq!(outcome, Ok(true), "{method}: {}", radius.log());
    }
    let stats = server.handle().metrics();
    assert_eq!(stats.sessions_established, 2, "{stats}");
    assert_eq!(count(&server, Event::RadiusAccept), 2, "{stats}");
    // The MS-CHAPv2 session bound with the keys FreeRADIUS sent: a wrong
    // HLAK would have ended it with wrong_mac.
    assert_eq!(count(&server, Event::WrongMac), 0, "{stats}");
    assert_eq!(count(&server, Event::RadiusSendError), 0, "{stats}");
    assert_eq!(count(&server, Event::RadiusResponseDropped), 0, "{stats}");
}

#[test]
fn a_wrong_password_is_rejected_by_freeradius() {
    let (_dir, server, _radius) = radius_server();
    let addr = server.addr;
    let outcomes = server.run_clients(move || async move {
        let mut outcomes = Vec::new();
        for method in [AuthProtocol::Pap, AuthProtocol::MsChapV2] {
            let options = client_options(addr, "carol", "not-her-password", TLS, &[method]);
            outcomes.push(
                connect(&options)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        }
        outcomes
    });
    for outcome in outcomes {
        assert!(outcome.is_err(), "{outcome:?}");
    }
    let stats = server.handle().metrics();
    assert!(count(&server, Event::RadiusReject) >= 2, "{stats}");
    assert_eq!(count(&server, Event::RadiusAccept), 0, "{stats}");
    assert_eq!(stats.sessions_established, 0, "{stats}");
}

#[test]
fn accept_attributes_are_applied_and_session_timeout_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = radius_config(dir.path(), &["127.0.0.1:1812"]);
    config.ipv4.dns = vec![Ipv4Addr::new(10, 99, 0, 1)];
    config.ipv4.pools.push(sstpd::config::NamedIpv4Pool {
        name: "gold".into(),
        range: "10.98.0.10-10.98.0.20".parse().unwrap(),
    });
    let server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let addr = server.addr;
    let (dave, erin) = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "dave", "dave-secret");
        let (client, inbox) = connect(&options).await.expect("dave connects");
        let params = client.ipv4().unwrap();
        let pinged = ping_gateway(&client, &inbox, 1, b"dave").await;
        // Session-Timeout = 3: the server ends it.
        let ended = client.wait_closed(Duration::from_secs(10)).await;
        let options = mschapv2_options(addr, "erin", "erin-secret");
        let (erin, erin_inbox) = connect(&options).await.expect("erin connects");
        let erin_address = erin.address();
        let erin_pinged = ping_gateway(&erin, &erin_inbox, 2, b"erin").await;
        erin.close(Duration::from_secs(5)).await;
        ((params, pinged, ended), (erin_address, erin_pinged))
    });
    let (params, pinged, ended) = dave;
    assert_eq!(
        params.local,
        Ipv4Addr::new(10, 99, 0, 77),
        "Framed-IP-Address"
    );
    assert_eq!(
        params.dns,
        [
            Some(Ipv4Addr::new(192, 0, 2, 53)),
            Some(Ipv4Addr::new(192, 0, 2, 54))
        ],
        "MS-Primary/Secondary-DNS-Server, not the configured DNS"
    );
    assert!(pinged, "dave's session carries traffic");
    assert!(
        ended,
        "Session-Timeout ended dave's session: {}",
        radius.log()
    );
    assert_eq!(count(&server, Event::SessionTimeout), 1);
    let (erin_address, erin_pinged) = erin;
    let erin_address = erin_address.expect("erin got an address");
    assert!(
        (Ipv4Addr::new(10, 98, 0, 10)..=Ipv4Addr::new(10, 98, 0, 20)).contains(&erin_address),
        "Framed-Pool gold: {erin_address}"
    );
    assert!(
        erin_pinged,
        "the named pool is routed through the TUN device"
    );
}

#[test]
fn authentication_fails_over_to_a_second_freeradius_when_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = radius_config(dir.path(), &["127.0.0.1:1812", "127.0.0.1:11812"]);
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::start(config);
    let metrics = server.handle().metrics_addr().expect("the endpoint runs");
    // Each server's state as the metrics endpoint shows it: (up, in flight).
    let states = || {
        let (_, text) = server.ns.run(move || common::prometheus::scrape(metrics));
        let s = common::prometheus::samples(&text);
        ["1812", "11812"].map(|port| {
            let labels = format!(r#"{{server="127.0.0.1:{port}",role="auth"}}"#);
            (
                common::prometheus::value(&s, &format!("sstpd_radius_server_up{labels}")),
                common::prometheus::value(&s, &format!("sstpd_radius_server_in_flight{labels}")),
            )
        })
    };
    assert_eq!(states(), [(1, 0), (1, 0)], "both presumed alive");
    let mut first = freeradius(&server.ns);
    let second = radius_in(
        &server.ns,
        FreeRadiusConfig {
            users: users(),
            auth_port: 11812,
            acct_port: 11813,
            ..Default::default()
        },
    );
    let addr = server.addr;
    let connect_once = move || async move {
        let options = mschapv2_options(addr, "carol", "carol-secret");
        let (client, _inbox) = connect(&options).await.map_err(|e| e.to_string())?;
        client.close(Duration::from_secs(5)).await;
        Ok::<(), String>(())
    };
    assert_eq!(server.run_clients(connect_once), Ok(()), "{}", first.log());
    first.stop();
    assert_eq!(
        server.run_clients(connect_once),
        Ok(()),
        "the second server answers: {}",
        second.log()
    );
    let stats = server.handle().metrics();
    assert!(count(&server, Event::RadiusServerDown) >= 1, "{stats}");
    assert_eq!(count(&server, Event::RadiusAccept), 2, "{stats}");
    assert_eq!(states(), [(0, 0), (1, 0)], "the first is dead");
    assert!(
        second.log().contains("carol"),
        "the second server judged the second login"
    );
}

#[test]
fn a_response_without_message_authenticator_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(radius_config(dir.path(), &["127.0.0.1:1812"]));
    // Stock FreeRADIUS 3.2.1: no Message-Authenticator in its answers.
    let radius = radius_in(
        &server.ns,
        FreeRadiusConfig {
            users: users(),
            message_authenticator_in_replies: false,
            ..Default::default()
        },
    );
    let addr = server.addr;
    let outcome = server.run_clients(move || async move {
        let options = client_options(addr, "carol", "carol-secret", TLS, &[AuthProtocol::Pap]);
        connect(&options)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(outcome.is_err(), "an unauthenticated answer was believed");
    let stats = server.handle().metrics();
    assert!(
        count(&server, Event::RadiusResponseDropped) >= 1,
        "{stats}\n{}",
        radius.log()
    );
    assert_eq!(count(&server, Event::RadiusAccept), 0, "{stats}");
    assert!(count(&server, Event::RadiusTimeout) >= 1, "{stats}");
    assert!(
        radius.log().contains("Sent Access-Accept"),
        "FreeRADIUS did accept: the refusal was sstpd's"
    );
}

#[test]
fn the_example_configuration_serves_a_session_against_freeradius() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sstpd-radius.toml");
    let mut config = Config::load(std::path::Path::new(example)).expect("the example loads");
    assert_eq!(config.users.backends, [UserBackend::Radius]);
    assert_eq!(config.radius.auth_server[0].address.port(), 1812);
    assert_eq!(config.radius.acct_server[0].address.port(), 1813);
    // What only a test machine needs changing: where to listen, the
    // certificate, the state directory, the worker count.
    let dir = tempfile::tempdir().unwrap();
    let local = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    config.server.listen = local.server.listen.clone();
    config.server.workers = 1;
    config.server.state_dir = local.server.state_dir.clone();
    config.tls = local.tls.clone();
    config.ipv6.enabled = false;
    let mut server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let addr = server.addr;
    let pinged = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "carol", "carol-secret");
        let (client, inbox) = connect(&options).await.expect("carol connects");
        let pinged = ping_gateway(&client, &inbox, 1, b"example").await;
        client.close(Duration::from_secs(5)).await;
        pinged
    });
    assert!(pinged);
    // Its accounting reached FreeRADIUS too, up to Accounting-Off.
    let handle = server.server.take().unwrap();
    handle.shutdown();
    assert!(handle.join(Duration::from_secs(10)));
    let kinds: Vec<String> = radius
        .detail_records()
        .iter()
        .filter_map(|r| r.status_type().map(str::to_owned))
        .collect();
    // (Accounting-On, sent before FreeRADIUS was up, arrives on a retry.)
    for kind in ["Accounting-On", "Start", "Stop"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    assert_eq!(kinds.last().map(String::as_str), Some("Accounting-Off"));
}

/// Asks `authenticator` and waits (bounded) for the answer.
fn decide(authenticator: &dyn Authenticator, request: AuthRequest) -> AuthDecision {
    let (tx, rx) = std::sync::mpsc::channel();
    let peer: SocketAddr = "192.0.2.9:40000".parse().unwrap();
    authenticator.authenticate(
        request,
        AuthContext::new(peer, "00000000000000aa00000001"),
        AuthReply::new(move |d| {
            let _ = tx.send(d);
        }),
    );
    rx.recv_timeout(Duration::from_secs(10)).expect("answered")
}

/// An MS-CHAPv2 request as a client knowing `password` makes it.
fn mschapv2_request(user: &str, password: &str) -> AuthRequest {
    let authenticator_challenge = [0x5a; 16];
    let peer_challenge = [0x21; 16];
    let nt_response = mschapv2::generate_nt_response(
        &authenticator_challenge,
        &peer_challenge,
        user.as_bytes(),
        password.as_bytes(),
    );
    AuthRequest {
        id: AuthRequestId::from_raw(1),
        username: user.into(),
        credentials: Credentials::MsChapV2 {
            identifier: 0x17,
            authenticator_challenge,
            peer_challenge,
            nt_response,
        },
    }
}

#[test]
fn radius_mppe_keys_give_the_hlak_the_local_authenticator_computes() {
    let radius = FreeRadius::start(&FreeRadiusConfig {
        users: users(),
        ..Default::default()
    })
    .expect("FreeRADIUS starts");
    let mut config = Config::default();
    config.radius.auth_server = vec![server(&radius.auth_addr().to_string())];
    let metrics = Metrics::new(1);
    let service = RadiusService::start(&config.radius, None, metrics.clone()).unwrap();
    let mut store = StaticPasswords::new();
    store.insert("carol", "carol-secret");
    let local = LocalAuthenticator::new(store);

    let request = mschapv2_request("carol", "carol-secret");
    let (remote, expected) = match (decide(&*service, request.clone()), local.decide(&request)) {
        (AuthDecision::Accept(remote), AuthDecision::Accept(local)) => (remote, local),
        other => panic!("{other:?}\n{}", radius.log()),
    };
    let (remote, expected) = (remote.mschapv2.unwrap(), expected.mschapv2.unwrap());
    assert_eq!(
        remote.authenticator_response, expected.authenticator_response,
        "MS-CHAP2-Success carries the RFC 2759 authenticator response"
    );
    assert_eq!(
        remote.keys.server_hlak(),
        expected.keys.server_hlak(),
        "the HLAK from RADIUS is the one the client derives"
    );
    assert_eq!(
        remote.keys, expected.keys,
        "send and receive the right way round"
    );

    // A wrong password: FreeRADIUS says E=691.
    match decide(&*service, mschapv2_request("carol", "wrong")) {
        AuthDecision::Reject(reject) => {
            assert_eq!(reject.reason, RejectReason::AuthenticationFailure)
        }
        other => panic!("{other:?}"),
    }
    service.stop();
    let stats = metrics.snapshot();
    assert_eq!(stats.count(Event::RadiusAccept), 1, "{stats}");
    assert_eq!(stats.count(Event::RadiusReject), 1, "{stats}");
    assert_eq!(stats.count(Event::RadiusSendError), 0, "{stats}");
}

#[test]
fn requests_beyond_the_queue_are_answered_at_once() {
    // A server that never answers (nothing listens on the port), and a
    // queue of one: what does not fit is refused without waiting.
    let mut config = Config::default();
    config.radius.auth_server = vec![server("127.0.0.1:9")];
    config.radius.max_pending = 1;
    config.radius.auth_timeout = Duration::from_secs(5);
    let metrics = Metrics::new(1);
    let service = RadiusService::start(&config.radius, None, metrics.clone()).unwrap();
    let answers = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..50 {
        let sink = answers.clone();
        service.authenticate(
            mschapv2_request("carol", "x"),
            AuthContext::default(),
            AuthReply::new(move |d| sink.lock().unwrap().push(d)),
        );
    }
    let refused = metrics.global().event_count(Event::RadiusQueueFull);
    assert!(refused >= 1, "a full queue refuses");
    let answered_at_once = answers.lock().unwrap().len() as u64;
    assert!(answered_at_once >= refused, "refusals are answered at once");
    // Stopping answers the rest: every request gets exactly one answer.
    service.stop();
    let answers = answers.lock().unwrap();
    assert_eq!(answers.len(), 50);
    assert!(answers.iter().all(|d| matches!(
        d,
        AuthDecision::Reject(r) if r.reason == RejectReason::ServiceUnavailable
    )));
}

/// sstp-client (the real one) against a server authenticating through
/// FreeRADIUS: the test plays sstpc's pppd and its plugin, handing sstpc
/// MPPE keys; `tamper` alters them first. Returns whether the call was
/// established, or `None` after recording a skip (sstpc's loopback stall,
/// twice).
fn sstpc_binding(test: &str, tamper: impl FnOnce(&mut [u8; 16])) -> Option<(bool, String)> {
    use common::sstpc::{deliver_mppe_keys, start_session, SstpcSession};
    require_tool("sstpc", common::sstpc::PACKAGE);
    let dir = tempfile::tempdir().unwrap();
    let mut config = radius_config(dir.path(), &["127.0.0.1:1812"]);
    config.server.workers = 1;
    let server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let session = match start_session(
        &server,
        test,
        &[AuthProtocol::MsChapV2],
        "carol",
        "carol-secret",
    ) {
        Ok(session) => session,
        Err(reason) => {
            record_skip(test, &reason);
            return None;
        }
    };
    let SstpcSession {
        sstpc,
        mut ppp,
        relay: _relay,
        ..
    } = session;
    let authenticated = ppp.run_until(Duration::from_secs(10), |p| {
        p.hlak().is_some() || p.closed().is_some()
    });
    assert!(
        authenticated && ppp.hlak().is_some(),
        "MS-CHAPv2 through FreeRADIUS failed: {:?}\n{}\n{}",
        ppp.events,
        server.handle().metrics(),
        radius.log()
    );
    let (mut send, receive) = ppp.mppe_keys().unwrap();
    tamper(&mut send);
    deliver_mppe_keys(sstpc.plugin_socket(), &send, &receive).expect("plugin socket");
    let established = ppp.run_until(Duration::from_secs(10), |p| {
        let stats = server.handle().metrics();
        stats.sessions_established == 1 || stats.count(Event::WrongMac) > 0 || p.closed().is_some()
    }) && server.handle().metrics().sessions_established == 1;
    let context = format!(
        "server: {}\nsstpc log:\n{}",
        server.handle().metrics(),
        sstpc.log()
    );
    assert_eq!(count(&server, Event::RadiusAccept), 1, "{context}");
    if !established {
        // The server judged Call Connected and refused it.
        let refused = ppp.run_until(Duration::from_secs(5), |_| {
            server.handle().metrics().count(Event::WrongMac) == 1
        });
        assert!(refused, "no wrong_mac: {context}");
    }
    Some((established, context))
}

// The positive case (sstpc binds with the keys FreeRADIUS sent) and a wrong
// key on the server's side (FreeRADIUS sending a wrong MS-MPPE-Send-Key) are
// in interop_sstpc.rs; this one gives the *client* the wrong key.
#[test]
fn sstpc_with_a_wrong_client_mppe_key_fails_the_binding() {
    if let Some((established, context)) = sstpc_binding(
        "sstpc_with_a_wrong_client_mppe_key_fails_the_binding",
        |send| send[0] ^= 1,
    ) {
        assert!(!established, "a wrong HLAK was accepted: {context}");
    }
}

// ------------------------------------------------------------- accounting

/// `config` sends accounting to FreeRADIUS in the namespace (127.0.0.1:1813
/// by default), retrying quickly.
/// The first accounting Stop FreeRADIUS records (waiting up to 10 s).
fn first_stop(radius: &FreeRadius) -> AccountingRecord {
    let records = radius
        .wait_for_records(
            |records| records.iter().any(|r| r.status_type() == Some("Stop")),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", radius.log()));
    records
        .into_iter()
        .find(|r| r.status_type() == Some("Stop"))
        .unwrap()
}

fn with_accounting(mut config: Config, servers: &[&str]) -> Config {
    config.radius.acct_server = servers.iter().map(|s| server(s)).collect();
    config.radius.acct_timeout = Duration::from_millis(200);
    config.radius.retries = 1;
    config
}

/// The records of one session, by Acct-Session-Id.
fn session_records<'a>(records: &'a [AccountingRecord], id: &str) -> Vec<&'a AccountingRecord> {
    records
        .iter()
        .filter(|r| r.get("Acct-Session-Id") == Some(id))
        .collect()
}

fn kinds(records: &[&AccountingRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.status_type().unwrap_or("?").to_owned())
        .collect()
}

/// The value of a counter attribute (decimal in the detail file).
fn number(record: &AccountingRecord, name: &str) -> u64 {
    record
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing: {record:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} not a number: {record:?}"))
}

/// The one Acct-Session-Id in the detail file other than Accounting-On/Off.
fn the_session_id(records: &[AccountingRecord]) -> String {
    let mut ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r.get("Acct-Session-Id"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one session: {records:?}");
    ids[0].to_owned()
}

#[test]
fn start_interim_and_stop_reach_freeradius_with_the_octets_the_client_moved() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_accounting(
        radius_config(dir.path(), &["127.0.0.1:1812"]),
        &["127.0.0.1:1813"],
    );
    config.radius.acct_interim_interval = Duration::from_secs(1);
    let server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let addr = server.addr;
    let (sent, received, address) = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "dave", "dave-secret");
        let (client, inbox) = connect(&options).await.expect("dave connects");
        let me = client.address().unwrap();
        let mut sent = 0u64;
        for seq in 0..5u16 {
            let payload = vec![seq as u8; 100 + usize::from(seq) * 50];
            let packet = icmp_echo(8, me, GATEWAY, 9, seq, &payload);
            sent += packet.len() as u64;
            client.send_ip(&packet).unwrap();
            assert!(
                wait_for(&inbox, Duration::from_secs(2), |p| {
                    parse_echo(p).is_some_and(|e| e.kind == 0 && e.seq == seq)
                })
                .await
            );
        }
        // An Interim-Update goes out after a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.close(Duration::from_secs(5)).await;
        let received: u64 = inbox.borrow().iter().map(|p| p.len() as u64).sum();
        (sent, received, me)
    });
    let records = radius
        .wait_for_records(
            |records| records.iter().any(|r| r.status_type() == Some("Stop")),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", radius.log()));
    // (Accounting-On went out before FreeRADIUS was started: not
    // spooled, by design.)
    let id = the_session_id(&records);
    assert_eq!(id.len(), 24);
    let session = session_records(&records, &id);
    let kinds = kinds(&session);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("Start"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("Stop"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "Interim-Update"), "{kinds:?}");
    let stop = session.last().unwrap();
    assert_eq!(number(stop, "Acct-Input-Octets"), sent, "{stop:?}");
    assert_eq!(number(stop, "Acct-Output-Octets"), received, "{stop:?}");
    assert_eq!(number(stop, "Acct-Input-Packets"), 5);
    assert_eq!(number(stop, "Acct-Output-Packets"), 5);
    assert_eq!(number(stop, "Acct-Input-Gigawords"), 0);
    assert_eq!(stop.get("Acct-Terminate-Cause"), Some("User-Request"));
    assert_eq!(stop.get("User-Name"), Some("dave"));
    assert_eq!(stop.get("Framed-IP-Address"), Some(&*address.to_string()));
    assert_eq!(stop.get("Calling-Station-Id"), Some("127.0.0.1"));
    assert_eq!(stop.get("NAS-Identifier"), Some("sstpd"));
    assert_eq!(stop.get("NAS-Port-Type"), Some("Virtual"));
    assert_eq!(stop.get("Service-Type"), Some("Framed-User"));
    assert_eq!(stop.get("Framed-Protocol"), Some("PPP"));
    assert_eq!(stop.get("Acct-Authentic"), Some("RADIUS"));
    assert_eq!(stop.get("Acct-Multi-Session-Id"), Some(&*id));
    assert!(stop.get("Event-Timestamp").is_some(), "{stop:?}");
    assert!(stop.get("Acct-Session-Time").is_some(), "{stop:?}");
    let class = stop.get("Class").expect("Class echoed");
    assert!(
        class == "plan-gold" || class == "0x706c616e2d676f6c64",
        "Class echoed unchanged: {class}"
    );
    let stats = server.handle().metrics();
    assert_eq!(
        stats.count(Event::RadiusAcctAcknowledged) as usize,
        records.len(),
        "{stats}"
    );
    assert_eq!(stats.count(Event::RadiusAcctLost), 0, "{stats}");
}

/// Accounting spool files in the state directory.
fn spool_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(sstpd::aaa::radius::spool::SPOOL_DIR))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "acct"))
                .count()
        })
        .unwrap_or(0)
}

/// Local users (logging in needs no FreeRADIUS), accounting to FreeRADIUS
/// on 127.0.0.1:1813.
fn local_users_accounted(dir: &std::path::Path) -> Config {
    with_accounting(
        test_config(dir, SelfSignedKey::EcdsaP256, 2),
        &["127.0.0.1:1813"],
    )
}

/// A local user (alice) logs in and out: two records for accounting.
fn local_session(server: &TestServer) {
    let addr = server.addr;
    server.run_clients(move || async move {
        let options = mschapv2_options(addr, "alice", "alice-secret");
        let (client, _inbox) = connect(&options).await.expect("alice connects");
        client.close(Duration::from_secs(5)).await;
    });
}

#[test]
fn accounting_is_spooled_while_freeradius_is_down_and_delivered_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_users_accounted(dir.path());
    let state = config.server.state_dir.clone().unwrap();
    let server = TestServer::start(config);
    let mut radius = radius_in(&server.ns, FreeRadiusConfig::default());
    radius
        .wait_for_records(|r| !r.is_empty(), Duration::from_secs(5))
        .expect("Accounting-On");
    radius.stop();

    local_session(&server);
    assert!(
        wait_until(Duration::from_secs(5), || {
            server.handle().metrics().count(Event::RadiusAcctFailed) >= 2
        }),
        "{}",
        server.handle().metrics()
    );
    assert!(spool_files(&state) >= 1, "Start and Stop wait on disk");
    assert_eq!(server.handle().accounting_spooled(), 2);
    assert_eq!(server.handle().metrics().count(Event::RadiusAcctSpooled), 2);

    // Down for two seconds at least: the records arrive a whole second
    // late or more (Acct-Delay-Time counts seconds).
    std::thread::sleep(Duration::from_secs(2));
    radius.restart().expect("FreeRADIUS comes back");
    let records = radius
        .wait_for_records(
            |records| records.iter().any(|r| r.status_type() == Some("Stop")),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", server.handle().metrics()));
    let id = the_session_id(&records);
    let session = session_records(&records, &id);
    assert_eq!(kinds(&session), ["Start", "Stop"]);
    assert_eq!(session[1].get("Acct-Authentic"), Some("Local"));
    assert!(
        number(session[0], "Acct-Delay-Time") >= 1,
        "the delay shows: {:?}",
        session[0]
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            server.handle().accounting_spooled() == 0 && spool_files(&state) == 0
        }),
        "acknowledged records leave the spool: {}\n{records:?}",
        server.handle().metrics()
    );
    let stats = server.handle().metrics();
    assert_eq!(stats.count(Event::RadiusAcctLost), 0, "{stats}");
}

#[test]
fn spooled_records_are_replayed_after_a_restart_and_shutdown_sends_every_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_users_accounted(dir.path());
    let state = config.server.state_dir.clone().unwrap();
    let mut server = TestServer::start(config.clone());
    let mut radius = radius_in(&server.ns, FreeRadiusConfig::default());
    radius.stop();
    local_session(&server);
    assert!(wait_until(Duration::from_secs(5), || {
        server.handle().accounting_spooled() == 2
    }));
    // Stop sstpd with the records unsent.
    let first = server.server.take().unwrap();
    first.shutdown();
    assert!(first.join(Duration::from_secs(10)));
    assert!(spool_files(&state) >= 1, "the spool outlives the process");

    // FreeRADIUS is back, and so is sstpd, on the same state directory.
    radius.restart().expect("FreeRADIUS comes back");
    let second = server
        .ns
        .run(move || sstpd::app::start(config))
        .expect("sstpd starts again");
    server.addr = second.local_addrs()[0];
    server.server = Some(second);
    let records = radius
        .wait_for_records(
            |records| {
                records
                    .iter()
                    .filter(|r| r.status_type() == Some("Stop"))
                    .count()
                    >= 1
            },
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", radius.log()));
    let id = the_session_id(&records);
    // After Accounting-On a session is replayed as its Stop alone: a Start
    // sent then would reopen what Accounting-On has just closed. The
    // superseded Start leaves the spool unsent.
    assert_eq!(kinds(&session_records(&records, &id)), ["Stop"]);
    assert_eq!(
        server.handle().metrics().count(Event::RadiusAcctReplayed),
        1
    );
    assert!(wait_until(Duration::from_secs(5), || {
        server.handle().accounting_spooled() == 0 && spool_files(&state) == 0
    }));

    // A session that is up when the server shuts down: its Stop (Admin-
    // Reboot), then Accounting-Off, reach FreeRADIUS before the process
    // would exit.
    let addr = server.addr;
    let up = server.ns.run(move || {
        std::thread::spawn(move || {
            tokio_uring::start(async move {
                let options = mschapv2_options(addr, "bob", "bob-secret");
                let (client, _inbox) = connect(&options).await.expect("bob connects");
                client.wait_closed(Duration::from_secs(20)).await
            })
        })
    });
    assert!(wait_until(Duration::from_secs(10), || {
        radius
            .detail_records()
            .iter()
            .any(|r| r.status_type() == Some("Start") && r.get("User-Name") == Some("bob"))
    }));
    let handle = server.server.take().unwrap();
    handle.shutdown();
    assert!(handle.join(Duration::from_secs(10)));
    assert!(up.join().unwrap(), "bob's session was closed by the server");
    let records = radius.detail_records();
    let bob_stop = records
        .iter()
        .find(|r| r.status_type() == Some("Stop") && r.get("User-Name") == Some("bob"))
        .unwrap_or_else(|| panic!("bob's Stop: {records:?}"));
    assert_eq!(bob_stop.get("Acct-Terminate-Cause"), Some("Admin-Reboot"));
    assert_eq!(
        records.last().and_then(|r| r.status_type()),
        Some("Accounting-Off"),
        "{records:?}"
    );
    assert_eq!(spool_files(&state), 0);
}

#[test]
fn idle_timeout_ends_a_silent_session_and_its_stop_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_accounting(
        radius_config(dir.path(), &["127.0.0.1:1812"]),
        &["127.0.0.1:1813"],
    );
    let server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let addr = server.addr;
    let ended = server.run_clients(move || async move {
        let options = mschapv2_options(addr, "frank", "frank-secret");
        let (client, inbox) = connect(&options).await.expect("frank connects");
        // Traffic keeps it up past the timeout...
        for seq in 0..6u16 {
            assert!(ping_gateway(&client, &inbox, seq, b"busy").await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(!client.is_closed(), "a busy session stays up");
        // ...silence ends it.
        client.wait_closed(Duration::from_secs(10)).await
    });
    assert!(ended, "Idle-Timeout ended the silent session");
    assert_eq!(count(&server, Event::IdleTimeout), 1);
    let stop = first_stop(&radius);
    assert_eq!(stop.get("Acct-Terminate-Cause"), Some("Idle-Timeout"));
    assert!(number(&stop, "Acct-Session-Time") >= 3, "{stop:?}");
}

/// RFC 5176 Disconnect-Request from FreeRADIUS's radclient, with accounting
/// to FreeRADIUS: the session ends and its Stop says Admin-Reset (RFC 2866
/// 5.10), the cause issue 13 names for an operator's disconnect.
#[test]
fn a_disconnect_request_ends_the_session_and_its_stop_says_admin_reset() {
    use sstpd::config::DaeClient;
    use sstpd::testing::freeradius::{radclient_with, RadclientKind, RadclientOptions};
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_accounting(
        radius_config(dir.path(), &["127.0.0.1:1812"]),
        &["127.0.0.1:1813"],
    );
    config.radius.dae.client = vec![DaeClient {
        address: "127.0.0.1".parse().unwrap(),
        secret: Secret("testing123".into()),
    }];
    let server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let (addr, dae) = (server.addr, server.handle().dae_addrs()[0]);
    let ns = server.ns.name().to_owned();
    let (answer, closed) = server.run_clients(move || async move {
        let (client, _inbox) = connect(&mschapv2_options(addr, "carol", "carol-secret"))
            .await
            .expect("carol connects");
        let radclient = std::thread::spawn(move || {
            let options = RadclientOptions {
                netns: Some(ns),
                ..RadclientOptions::default()
            };
            radclient_with(
                dae,
                RadclientKind::Disconnect,
                "testing123",
                &[("User-Name", "carol")],
                &options,
            )
        });
        while !radclient.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let answer = radclient.join().unwrap().expect("radclient ran");
        let closed = client.wait_closed(Duration::from_secs(10)).await;
        (answer, closed)
    });
    assert_eq!(
        answer.code.as_deref(),
        Some("Disconnect-ACK"),
        "{}",
        answer.output
    );
    assert!(closed, "{}", server.handle().metrics());
    let stop = first_stop(&radius);
    assert_eq!(stop.get("User-Name"), Some("carol"), "{stop:?}");
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Admin-Reset"),
        "{stop:?}"
    );
}

/// An in-process server with accounting to FreeRADIUS and a control
/// socket: carol connects, `sstpctl ARGS --json` (the real binary) runs,
/// carol's session is awaited, then (with `reconnect`) a new client tries.
/// Returns the server, FreeRADIUS, the answer, whether carol's session
/// ended and whether the new client got no session.
fn carol_then_sstpctl(
    args: &'static [&'static str],
    reconnect: bool,
) -> (TestServer, FreeRadius, serde_json::Value, bool, bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = with_accounting(
        radius_config(dir.path(), &["127.0.0.1:1812"]),
        &["127.0.0.1:1813"],
    );
    let socket = dir.path().join("control.sock");
    config.control.socket = Some(socket.clone());
    let server = TestServer::start(config);
    let radius = freeradius(&server.ns);
    let addr = server.addr;
    let (output, closed, refused) = server.run_clients(move || async move {
        let (client, _inbox) = connect(&mschapv2_options(addr, "carol", "carol-secret"))
            .await
            .expect("carol connects");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sstpctl"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .arg("--json")
            .output()
            .expect("run sstpctl");
        let closed = client.wait_closed(Duration::from_secs(10)).await;
        let refused = reconnect
            && connect(&mschapv2_options(addr, "carol", "carol-secret"))
                .await
                .is_err();
        (output, closed, refused)
    });
    let answer: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"));
    (server, radius, answer, closed, refused)
}

/// `sstpctl kill` on the in-process server's control socket, with
/// accounting to FreeRADIUS: the session ends and its Stop says
/// Admin-Reset, as for a Disconnect-Request (issue 14).
#[test]
fn sstpctl_kill_ends_the_session_and_its_stop_says_admin_reset() {
    let (server, radius, answer, closed, _) =
        carol_then_sstpctl(&["kill", "--user", "carol"], false);
    assert_eq!(answer["killed"], 1, "{answer}");
    assert!(closed, "{}", server.handle().metrics());
    let stop = first_stop(&radius);
    assert_eq!(stop.get("User-Name"), Some("carol"), "{stop:?}");
    assert_eq!(
        stop.get("Acct-Session-Id"),
        answer["ids"][0].as_str(),
        "{stop:?}"
    );
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Admin-Reset"),
        "{stop:?}"
    );
    assert_eq!(server.handle().metrics().event("admin_reset"), 1);
}

/// `sstpctl drain` with accounting to FreeRADIUS: the session ends and its
/// Stop says Admin-Reboot (the operator ends service on this NAS, RFC 2866
/// 5.10), while the server stays up, draining.
#[test]
fn sstpctl_drain_ends_the_session_and_its_stop_says_admin_reboot() {
    let (server, radius, answer, closed, refused) =
        carol_then_sstpctl(&["drain", "--over", "1s"], true);
    assert_eq!(answer["answer"], "drain", "{answer}");
    assert_eq!(answer["sessions"], 1, "{answer}");
    assert!(closed, "{}", server.handle().metrics());
    assert!(refused, "a drained node took a new session");
    let stop = first_stop(&radius);
    assert_eq!(stop.get("User-Name"), Some("carol"), "{stop:?}");
    assert_eq!(
        stop.get("Acct-Terminate-Cause"),
        Some("Admin-Reboot"),
        "{stop:?}"
    );
    assert_eq!(server.handle().metrics().event("drain"), 1);
    assert!(server.handle().metrics().event("refused_draining") >= 1);
}
