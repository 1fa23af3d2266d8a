#![cfg(feature = "runtime")]
//! Reloading the configuration of a running server (SIGHUP on the real
//! binary, `ServerHandle::reload` in process): a new certificate for new
//! connections while live sessions carry on, a bad file that changes
//! nothing, restart-only keys named, limits and RADIUS servers applied
//! live (against a real FreeRADIUS).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use sstpd::client::ClientOptions;
use sstpd::config::Config;
use sstpd::metrics::Event;
use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, RadiusUser};
use sstpd::tls::certs::{generate_self_signed, SelfSignedKey};

/// A fresh certificate and key for `localhost`, written over the test
/// configuration's `cert.pem` and `key.pem`; returns the certificate PEM.
fn replace_certificate(config: &Config) -> Vec<u8> {
    let cert = generate_self_signed(SelfSignedKey::EcdsaP256, &["localhost", "127.0.0.1"]).unwrap();
    std::fs::write(config.tls.private_key.as_ref().unwrap(), &cert.key_pem).unwrap();
    std::fs::write(config.tls.certificate.as_ref().unwrap(), &cert.cert_pem).unwrap();
    cert.cert_pem.into_bytes()
}

/// A client of `addr` as `user` that trusts only `cert_pem`: its TLS
/// handshake fails against any other certificate, and its crypto binding
/// hashes the certificate it was shown.
fn pinned(addr: SocketAddr, user: &str, password: &str, cert_pem: &[u8]) -> ClientOptions {
    let mut options = mschapv2_options(addr, user, password);
    options.tls = sstpd::tls::client::build_client_config(&sstpd::tls::client::ClientOptions {
        verification: trusting(cert_pem),
        min_version: TLS.0,
        max_version: TLS.1,
        ..Default::default()
    })
    .unwrap();
    options
}

/// Whether a whole session (TLS, SSTP with its crypto binding, PPP, IPCP)
/// comes up with `options`; closed again at once.
async fn session_comes_up(options: &ClientOptions) -> bool {
    match connect(options).await {
        Ok((client, _)) => {
            client.close(Duration::from_secs(5)).await;
            true
        }
        Err(_) => false,
    }
}

/// Waits (at most 10 s) until `log` holds `needle` at least `times` times.
async fn wait_log(log: &Mutex<String>, needle: &str, times: usize) -> bool {
    for _ in 0..1000 {
        if log.lock().unwrap().matches(needle).count() >= times {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn write_config(path: &Path, config: &Config, extra: &str) {
    std::fs::write(path, config_toml(config, extra)).unwrap();
}

#[test]
fn sighup_serves_a_new_certificate_keeps_sessions_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let first_cert = std::fs::read(config.tls.certificate.as_ref().unwrap()).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    config.server.listen = vec![addr];
    let config_path = dir.path().join("sstpd.toml");
    write_config(&config_path, &config, "");
    let ns = sstpd::testing::netns::NetNs::new("sstpd-reload").unwrap();
    let mut child = spawn_sstpd_in(&ns, env!("CARGO_BIN_EXE_sstpd"), &config_path);
    let pid = child.id() as i32;
    let (log, log_thread) = collect_output(child.stderr.take().unwrap());
    let sighup = move || {
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };

    let checks =
        {
            let log = log.clone();
            ns.run(move || {
                tokio_uring::start(async move {
                    let mut checks: Vec<(&str, bool)> = Vec::new();
                    let (bob, bob_inbox) =
                        connect_when_up(&pinned(addr, "bob", "bob-secret", &first_cert), 100).await;

                    let new_cert = replace_certificate(&config);
                    sighup();
                    checks.push((
                        "reload logged",
                        wait_log(&log, "configuration reloaded", 1).await,
                    ));
                    let alice = |cert: &[u8]| pinned(addr, "alice", "alice-secret", cert);
                    checks.push((
                        "a new session binds to the new certificate",
                        session_comes_up(&alice(&new_cert)).await,
                    ));
                    checks.push((
                        "the old certificate is no longer served",
                        !session_comes_up(&alice(&first_cert)).await,
                    ));

                    // Each bad file: the reload fails, logged, and the server
                    // keeps serving the certificate it had.
                    let good = config_toml(&config, "");
                    let mismatched_key =
                        generate_self_signed(SelfSignedKey::EcdsaP256, &["localhost"])
                            .unwrap()
                            .key_pem;
                    let mut unreadable = config.clone();
                    unreadable.tls.certificate = Some(dir_path(&config).join("missing.pem"));
                    let bad_files: [(&str, String, Option<String>); 4] = [
                    ("broken TOML", "[server\nlisten = ".into(), None),
                    ("a key of another certificate", good.clone(), Some(mismatched_key)),
                    ("an unreadable certificate", config_toml(&unreadable, ""), None),
                    (
                        "a RADIUS server with an empty secret",
                        config_toml(
                            &config,
                            "[[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"\"\n",
                        ),
                        None,
                    ),
                ];
                    let key_path = config.tls.private_key.clone().unwrap();
                    let good_key = std::fs::read(&key_path).unwrap();
                    for (failures, (what, toml, key)) in bad_files.into_iter().enumerate() {
                        std::fs::write(&config_path, toml).unwrap();
                        if let Some(key) = key {
                            std::fs::write(&key_path, key).unwrap();
                        }
                        sighup();
                        checks.push((
                            what,
                            wait_log(&log, "reload failed", failures + 1).await
                                && session_comes_up(&alice(&new_cert)).await,
                        ));
                        std::fs::write(&key_path, &good_key).unwrap();
                    }

                    // A key that needs a restart: named, and the rest applied.
                    let mut fewer_workers = config.clone();
                    fewer_workers.server.workers = 1;
                    write_config(&config_path, &fewer_workers, "");
                    sighup();
                    checks.push((
                        "the restart-only key is named",
                        wait_log(&log, "configuration reloaded", 2).await
                            && wait_log(&log, "takes effect at restart", 1).await,
                    ));
                    checks.push((
                        "still serving after the restart-only change",
                        session_comes_up(&alice(&new_cert)).await,
                    ));

                    checks.push((
                        "the session from before every reload is alive",
                        !bob.is_closed() && ping_gateway(&bob, &bob_inbox, 1, b"still here").await,
                    ));
                    bob.close(Duration::from_secs(5)).await;
                    checks
                })
            })
        };
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().unwrap();
    log_thread.join().unwrap();
    let log = log.lock().unwrap().clone();
    for (what, ok) in checks {
        assert!(ok, "{what}; log:\n{log}");
    }
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    let restart_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("takes effect at restart"))
        .collect();
    assert_eq!(restart_lines.len(), 1, "log:\n{log}");
    assert!(restart_lines[0].contains("server.workers"), "log:\n{log}");
    // Each failure's line (its error may span lines) says why.
    let failures: Vec<&str> = log
        .split("reload failed")
        .skip(1)
        .map(|after| &after[..after.len().min(400)])
        .collect();
    assert_eq!(failures.len(), 4, "log:\n{log}");
    for (failure, why) in failures.iter().zip([
        "(line ",
        "does not belong to the certificate",
        "missing.pem",
        "secret",
    ]) {
        assert!(failure.contains(why), "{why:?} not in {failure:?}");
    }
}

fn dir_path(config: &Config) -> std::path::PathBuf {
    config.server.state_dir.clone().unwrap()
}

/// A server started in process from a file (so a reload re-reads it):
/// the test configuration with `extra`; the file's path.
fn server_from_file(dir: &Path, config: &Config, extra: &str) -> (TestServer, std::path::PathBuf) {
    let path = dir.join("sstpd.toml");
    write_config(&path, config, extra);
    let loaded = Config::load(&path).expect("the test configuration loads");
    (TestServer::start(loaded), path)
}

/// Writes `toml` as the server's file and reloads it.
fn reload_file(server: &TestServer, path: &Path, toml: String) -> sstpd::app::ReloadReport {
    std::fs::write(path, toml).unwrap();
    server.handle().reload().expect("the reload succeeds")
}

fn applied(report: &sstpd::app::ReloadReport, key: &str) -> bool {
    report.applied.iter().any(|k| k == key)
}

#[test]
fn reload_reports_restart_only_keys_and_applies_a_lower_max_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let (server, path) = server_from_file(dir.path(), &config, "");
    let addr = server.addr;

    // bob holds a session across the reload (driven by the client thread);
    // the reload happens between the two halves of its run.
    let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
    let (reloaded_tx, reloaded_rx) = std::sync::mpsc::channel::<()>();
    let (report, client_outcome) = std::thread::scope(|scope| {
        let clients = scope.spawn(|| {
            server.run_clients(move || async move {
                let (bob, bob_inbox) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                    .await
                    .unwrap();
                up_tx.send(()).unwrap();
                reloaded_rx.recv().unwrap();
                let alice_refused = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                    .await
                    .is_err();
                let bob_alive =
                    !bob.is_closed() && ping_gateway(&bob, &bob_inbox, 1, b"over the cap").await;
                bob.close(Duration::from_secs(5)).await;
                (alice_refused, bob_alive)
            })
        });
        up_rx.recv().unwrap();
        let mut changed = config.clone();
        changed.server.workers = 1;
        let toml = config_toml(&changed, "[tun]\nmtu = 1300\n").replace(
            "shutdown_timeout = \"5s\"\n",
            "shutdown_timeout = \"5s\"\nmax_sessions = 1\n",
        );
        std::fs::write(&path, toml).unwrap();
        let report = server.handle().reload();
        reloaded_tx.send(()).unwrap();
        (report, clients.join().unwrap())
    });
    let report = report.expect("the reload succeeds");
    assert_eq!(report.restart_required, ["server.workers", "tun.mtu"]);
    assert!(applied(&report, "server.max_sessions"), "{report:?}");
    assert!(!applied(&report, "certificate"), "{report:?}");
    let (alice_refused, bob_alive) = client_outcome;
    let stats = server.handle().metrics();
    assert!(alice_refused, "a connection above the new cap: {stats}");
    assert!(bob_alive, "the session over the new cap was kept: {stats}");
    assert_eq!(stats.count(Event::RefusedMaxSessions), 1, "{stats}");
    // bob's close returns once the client's side is done; the server lets
    // go of the connection when its own side is (its linger), a moment
    // later.
    assert!(
        wait_until(Duration::from_secs(10), || {
            server.handle().admission_counts().0 == 0
        }),
        "bob closed, alice refused: {:?} open",
        server.handle().admission_counts()
    );
}

/// `[ppp]`, `[users]` and `[radius]` for MS-CHAPv2 logins through one
/// RADIUS server at 127.0.0.1:`port`.
fn radius_login_toml(port: u16, secret: &str, auth_timeout: &str, retries: u32) -> String {
    format!(
        "[ppp]\nauth = [\"mschapv2\"]\n\n[users]\nbackends = [\"radius\"]\n\n\
         [radius]\nauth_timeout = \"{auth_timeout}\"\nretries = {retries}\n\n\
         [[radius.auth_server]]\naddress = \"127.0.0.1:{port}\"\nsecret = \"{secret}\"\n"
    )
}

/// FreeRADIUS in `ns` on `auth_port` (accounting on the next port) with
/// `secret`, knowing carol.
fn freeradius_knowing_carol(
    ns: &sstpd::testing::netns::NetNs,
    auth_port: u16,
    secret: &str,
) -> FreeRadius {
    FreeRadius::start_in(
        ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("carol", "carol-secret")],
            secret: secret.into(),
            auth_port,
            acct_port: auth_port + 1,
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts")
}

#[test]
fn radius_servers_and_secrets_change_by_reload_against_freeradius() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let radius_toml = |port, secret| radius_login_toml(port, secret, "500ms", 1);
    let (server, path) = server_from_file(dir.path(), &config, &radius_toml(1812, "testing123"));
    let mut first = freeradius_knowing_carol(&server.ns, 1812, "testing123");
    let addr = server.addr;
    let carol = move || async move {
        session_comes_up(&mschapv2_options(addr, "carol", "carol-secret")).await
    };
    assert!(server.run_clients(carol), "{}", first.log());

    // Another FreeRADIUS, another port and secret; the first one stops, so
    // only the new list can answer.
    let second = freeradius_knowing_carol(&server.ns, 1912, "rotated-secret");
    first.stop();
    let report = reload_file(
        &server,
        &path,
        config_toml(&config, &radius_toml(1912, "rotated-secret")),
    );
    assert!(applied(&report, "radius.auth_server"), "{report:?}");
    assert!(report.restart_required.is_empty(), "{report:?}");
    assert!(server.run_clients(carol), "{}", second.log());
    let stats = server.handle().metrics();
    assert_eq!(stats.count(Event::RadiusAccept), 2, "{stats}");
    assert_eq!(stats.count(Event::RadiusResponseDropped), 0, "{stats}");

    // A file whose RADIUS secret is empty changes nothing: carol still
    // gets in through the second server.
    std::fs::write(&path, config_toml(&config, &radius_toml(1812, ""))).unwrap();
    assert!(server.handle().reload().is_err());
    assert!(server.run_clients(carol), "{}", second.log());
}

/// The accounting spool across a reload: records that the old accounting
/// server never acknowledged are delivered to the new one.
#[test]
fn spooled_accounting_reaches_the_new_server_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let accounting_toml = |port: u16, secret: &str| {
        format!(
            "[radius]\nacct_timeout = \"300ms\"\nretries = 1\n\n\
             [[radius.acct_server]]\naddress = \"127.0.0.1:{port}\"\nsecret = \"{secret}\"\n"
        )
    };
    let (server, path) =
        server_from_file(dir.path(), &config, &accounting_toml(1813, "testing123"));
    let mut first =
        FreeRadius::start_in(&server.ns, &FreeRadiusConfig::default()).expect("FreeRADIUS starts");
    first
        .wait_for_records(|r| !r.is_empty(), Duration::from_secs(5))
        .expect("Accounting-On");
    first.stop();

    // alice's Start and Stop find no server: they wait in the spool.
    let addr = server.addr;
    assert!(server.run_clients(move || async move {
        session_comes_up(&mschapv2_options(addr, "alice", "alice-secret")).await
    }));
    assert!(
        wait_until(Duration::from_secs(10), || {
            server.handle().metrics().count(Event::RadiusAcctFailed) >= 2
        }),
        "{}",
        server.handle().metrics()
    );
    assert_eq!(server.handle().accounting_spooled(), 2);

    let second = FreeRadius::start_in(
        &server.ns,
        &FreeRadiusConfig {
            secret: "rotated-secret".into(),
            auth_port: 1912,
            acct_port: 1913 + 100,
            ..Default::default()
        },
    )
    .expect("the second FreeRADIUS starts");
    let report = reload_file(
        &server,
        &path,
        config_toml(&config, &accounting_toml(2013, "rotated-secret")),
    );
    assert!(applied(&report, "radius.acct_server"), "{report:?}");
    let records = second
        .wait_for_records(
            |records| records.iter().any(|r| r.status_type() == Some("Stop")),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", server.handle().metrics()));
    assert!(
        records.iter().any(|r| r.status_type() == Some("Start")),
        "{records:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || server
            .handle()
            .accounting_spooled()
            == 0),
        "acknowledged records leave the spool: {}",
        server.handle().metrics()
    );
    let stats = server.handle().metrics();
    assert_eq!(stats.count(Event::RadiusAcctLost), 0, "{stats}");
}

/// A request in flight when the servers change finishes against the
/// server (and secret) it was sent to: the first FreeRADIUS is paused
/// (SIGSTOP) with carol's Access-Request in its socket, the file moves
/// RADIUS to a second server with another secret and is reloaded, then
/// the first resumes and its answer, signed with the old secret, lets
/// carol in. The next login goes to the second server.
#[test]
fn a_radius_request_in_flight_finishes_against_its_server_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let radius_toml = |port, secret| radius_login_toml(port, secret, "2s", 2);
    let (server, path) = server_from_file(dir.path(), &config, &radius_toml(1812, "testing123"));
    let mut first = freeradius_knowing_carol(&server.ns, 1812, "testing123");
    let second = freeradius_knowing_carol(&server.ns, 1912, "rotated-secret");
    let first_pid = first.pid().unwrap() as i32;
    // SAFETY: signals to a child of ours.
    assert_eq!(unsafe { libc::kill(first_pid, libc::SIGSTOP) }, 0);

    let addr = server.addr;
    let carol = move || async move {
        session_comes_up(&mschapv2_options(addr, "carol", "carol-secret")).await
    };
    let (in_flight_login, report) = std::thread::scope(|scope| {
        let login = scope.spawn(|| server.run_clients(carol));
        // The Access-Request reaches the paused server.
        assert!(
            wait_until(Duration::from_secs(10), || {
                server.handle().metrics().count(Event::RadiusAccept) == 0
                    && server.handle().admission_counts().1 == 1
            }),
            "carol's connection is not waiting"
        );
        std::thread::sleep(Duration::from_millis(500));
        let report = reload_file(
            &server,
            &path,
            config_toml(&config, &radius_toml(1912, "rotated-secret")),
        );
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(first_pid, libc::SIGCONT) }, 0);
        (login.join().unwrap(), report)
    });
    assert!(applied(&report, "radius.auth_server"), "{report:?}");
    let stats = server.handle().metrics();
    assert!(
        in_flight_login,
        "the paused server's answer was not taken: {stats}\n{}",
        first.log()
    );
    assert_eq!(stats.count(Event::RadiusResponseDropped), 0, "{stats}");
    assert_eq!(stats.count(Event::RadiusTimeout), 0, "{stats}");
    assert!(first.log().contains("carol"), "{}", first.log());

    first.stop();
    assert!(server.run_clients(carol), "{}", second.log());
    assert_eq!(
        server.handle().metrics().count(Event::RadiusAccept),
        2,
        "{}",
        server.handle().metrics()
    );
}
