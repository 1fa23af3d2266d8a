//! Reloading sstpd under load: the certificate replaced and the
//! configuration reloaded several times while the load generator holds
//! sessions open (echo) and keeps setting new ones up (churn). No session
//! may be lost, every new one must complete the SSTP crypto binding with
//! the certificate it was shown, and new connections get the new
//! certificate.

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use sstpd::config::Config;
use sstpd::proto::sstp::CertHashes;
use sstpd::tls::certs::{generate_self_signed, parse_cert_chain, SelfSignedKey};
use support::*;

/// Sessions the echo run holds across the reloads.
const HELD: u64 = 40;

fn loadgen(
    server: &TestServer,
    mode: &[&str],
    user: (&str, &str),
    json: &std::path::Path,
) -> Child {
    let target = server.addr.to_string();
    let mut command = server.ns.command(env!("CARGO_BIN_EXE_sstp-loadgen"));
    command
        .args(mode)
        .args(["--target", &target, "--insecure"])
        .args(["--user", user.0, "--password", user.1])
        .args(["--workers", "1", "--no-pin", "--progress", "never"])
        .args(["--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("run sstp-loadgen")
}

/// Waits for a run and returns its JSON report (asserting it succeeded).
fn report(child: Child, json: &std::path::Path) -> Value {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

#[test]
fn reloads_under_load_lose_no_session_and_serve_the_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let path = dir.path().join("sstpd.toml");
    std::fs::write(&path, config_toml(&config, "")).unwrap();
    let server = TestServer::start(Config::load(&path).unwrap());

    let echo_json = dir.path().join("echo.json");
    let churn_json = dir.path().join("churn.json");
    let sessions = HELD.to_string();
    let echo = loadgen(
        &server,
        &[
            "echo",
            "--sessions",
            &sessions,
            "--pps",
            "20",
            "--duration",
            "4s",
        ],
        USERS[0],
        &echo_json,
    );
    let churn = loadgen(
        &server,
        &[
            "churn",
            "--sessions",
            "4",
            "--hold",
            "100ms",
            "--duration",
            "5s",
        ],
        USERS[1],
        &churn_json,
    );
    assert!(
        wait_until(Duration::from_secs(30), || server
            .handle()
            .sessions_active()
            >= HELD as i64),
        "the echo sessions did not come up: {}",
        server.handle().metrics()
    );

    // Three reloads, each with a new certificate and key, while both runs
    // are on.
    let mut last_pem = Vec::new();
    for _ in 0..3 {
        let cert =
            generate_self_signed(SelfSignedKey::EcdsaP256, &["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(config.tls.private_key.as_ref().unwrap(), &cert.key_pem).unwrap();
        std::fs::write(config.tls.certificate.as_ref().unwrap(), &cert.cert_pem).unwrap();
        let report = server.handle().reload().expect("the reload succeeds");
        assert!(
            report.applied.contains(&"certificate".to_string()),
            "{report:?}"
        );
        assert!(report.restart_required.is_empty(), "{report:?}");
        let der = parse_cert_chain(cert.cert_pem.as_bytes())
            .unwrap()
            .remove(0);
        let expected = CertHashes::of_der(der.as_ref());
        assert!(server.handle().cert_hashes() == expected);
        assert_eq!(report.certificate_sha256, hex(&expected.sha256));
        last_pem = cert.cert_pem.into_bytes();
        std::thread::sleep(Duration::from_millis(700));
    }

    // A new connection is shown the last certificate: a client trusting
    // only it completes a whole session, crypto binding included.
    let addr = server.addr;
    let pem = last_pem.clone();
    let bound = server.run_clients(move || async move {
        let (user, password) = USERS[1];
        let mut options = mschapv2_options(addr, user, password);
        options.tls = sstpd::tls::client::build_client_config(&sstpd::tls::client::ClientOptions {
            verification: trusting(&pem),
            ..Default::default()
        })
        .unwrap();
        match sstpd::client::connect(&options, Box::new(|_| {})).await {
            Ok((client, _)) => {
                client.close(Duration::from_secs(5)).await;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    });
    assert_eq!(bound, Ok(()), "{}", server.handle().metrics());

    let echo = report(echo, &echo_json);
    let churn = report(churn, &churn_json);
    let stats = server.handle().metrics();
    for (name, report) in [("echo", &echo), ("churn", &churn)] {
        let s = &report["sessions"];
        assert_eq!(s["failed"], 0, "{name}: {s}\n{stats}");
        assert_eq!(s["dropped"], 0, "{name}: {s}\n{stats}");
    }
    assert_eq!(echo["sessions"]["established"], HELD, "{stats}");
    assert!(echo["rtt"]["count"].as_u64().unwrap() > 0);
    // Churn kept setting sessions up across the reloads.
    assert!(
        churn["sessions"]["established"].as_u64().unwrap() > 4,
        "{}",
        churn["sessions"]
    );
    assert_eq!(stats.count(sstpd::metrics::Event::WrongMac), 0, "{stats}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
