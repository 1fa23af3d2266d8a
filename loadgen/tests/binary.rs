//! The `sstp-loadgen` binary as users and the benchmark suite run it: its
//! JSON report against the field table in docs/loadgen.md, its interval
//! log, and its exit status.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::*;

/// `path -> type` from the table between the report-fields markers.
fn documented_fields() -> BTreeMap<String, String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/loadgen.md"))
            .expect("docs/loadgen.md");
    let table = doc
        .split("<!-- report-fields:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- report-fields:end -->").next())
        .expect("the report-fields markers");
    let mut fields = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let path = cells[1].trim_matches('`').to_string();
        let kind = cells[2].to_string();
        assert!(
            fields.insert(path.clone(), kind).is_none(),
            "{path} documented twice"
        );
    }
    assert!(fields.len() > 50, "the table was found: {}", fields.len());
    fields
}

const HISTOGRAM_FIELDS: &[(&str, &str)] = &[
    ("count", "integer"),
    ("min_us", "integer"),
    ("mean_us", "number"),
    ("p50_us", "integer"),
    ("p90_us", "integer"),
    ("p99_us", "integer"),
    ("p99_9_us", "integer"),
    ("max_us", "integer"),
    ("sum_ns", "integer"),
];

/// Whether `value` has the documented type.
fn has_type(value: &Value, kind: &str) -> bool {
    if let Some(base) = kind.strip_suffix(" or null") {
        return value.is_null() || has_type(value, base);
    }
    match kind {
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array of string" => value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "array of object" => value
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_object)),
        "histogram" => value.as_object().is_some_and(|o| {
            o.len() == HISTOGRAM_FIELDS.len()
                && HISTOGRAM_FIELDS
                    .iter()
                    .all(|(k, t)| o.get(*k).is_some_and(|v| has_type(v, t)))
        }),
        other => panic!("undocumented type {other:?}"),
    }
}

/// The documented row a JSON path falls under (`<x>` matches any key).
fn row_for<'a>(fields: &'a BTreeMap<String, String>, path: &str) -> Option<(&'a str, &'a str)> {
    let segments: Vec<&str> = path.split('.').collect();
    fields.iter().find_map(|(pattern, kind)| {
        let pattern_segments: Vec<&str> = pattern.split('.').collect();
        let matches = pattern_segments.len() == segments.len()
            && pattern_segments
                .iter()
                .zip(&segments)
                .all(|(p, s)| p == s || (p.starts_with('<') && p.ends_with('>')));
        matches.then_some((pattern.as_str(), kind.as_str()))
    })
}

/// Every documented field is present (unless under a null parent or a
/// map) with its type, and every field present is documented.
fn check_report(json: &Value, fields: &BTreeMap<String, String>) {
    // Walk the JSON: each node must be documented and typed.
    fn walk(value: &Value, path: &str, fields: &BTreeMap<String, String>) {
        let Some(object) = value.as_object() else {
            return;
        };
        for (key, child) in object {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let (pattern, kind) = row_for(fields, &child_path)
                .unwrap_or_else(|| panic!("{child_path} is undocumented"));
            assert!(
                has_type(child, kind),
                "{child_path} (documented as {pattern}: {kind}) is {child}"
            );
            if kind != "histogram" {
                walk(child, &child_path, fields);
            }
        }
    }
    walk(json, "", fields);
    // And each documented field must be there.
    for path in fields.keys().filter(|p| !p.contains('<')) {
        let mut node = Some(json);
        let mut parent_null = false;
        for segment in path.split('.') {
            if node.is_some_and(Value::is_null) {
                parent_null = true;
                break;
            }
            node = node.and_then(|n| n.get(segment));
        }
        assert!(parent_null || node.is_some(), "{path} is missing");
    }
}

fn loadgen(server: &TestServer, args: &[&str]) -> Output {
    let target = server.addr.to_string();
    server
        .ns
        .command(env!("CARGO_BIN_EXE_sstp-loadgen"))
        .args(["echo", "--target", &target, "--insecure"])
        .args(["--workers", "1", "--no-pin", "--progress", "never"])
        .args(args)
        .output()
        .expect("run sstp-loadgen")
}

/// Runs echo as alice with `args` and a JSON report into `dir`; asserts
/// success and that the report has exactly the documented fields. Returns
/// the table and the report.
fn documented_run(server: &TestServer, dir: &Path, args: &[&str]) -> (String, Value) {
    let json_path = dir.join("report.json");
    let mut all = vec!["--user", "alice", "--password", "alice-secret"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json_path.to_str().unwrap()]);
    let out = loadgen(server, &all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    check_report(&json, &documented_fields());
    (stdout, json)
}

#[test]
fn the_json_report_has_exactly_the_documented_fields_and_types() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("rtt.hlog");
    let (stdout, json) = documented_run(
        &server,
        dir.path(),
        &[
            "--sessions",
            "2",
            "--pps",
            "10",
            "--duration",
            "1500ms",
            "--hdr-log",
            log_path.to_str().unwrap(),
        ],
    );
    assert!(stdout.contains("established 2"), "the table: {stdout}");
    assert_eq!(json["schema"], "sstp-loadgen/report");
    assert_eq!(json["schema_version"], sstp_loadgen::SCHEMA_VERSION);
    assert_eq!(json["sessions"]["established"], 2);
    assert!(json["rtt"]["count"].as_u64().unwrap() > 0);
    // It is the library's Report, too.
    let report: sstp_loadgen::Report = serde_json::from_value(json).unwrap();
    assert_eq!(report.mode, "echo");

    // The interval log: one rtt and one setup histogram per interval.
    let log = std::fs::read(&log_path).unwrap();
    let mut tags = BTreeMap::<String, u64>::new();
    let mut samples = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&log) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = entry.unwrap() {
            *tags
                .entry(h.tag().map(|t| t.as_str().to_string()).unwrap_or_default())
                .or_default() += 1;
            let mut bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .unwrap();
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut std::io::Cursor::new(&mut bytes))
                    .unwrap();
            if h.tag().map(|t| t.as_str()) == Some("rtt") {
                samples += hist.len();
            }
        }
    }
    assert!(tags["rtt"] >= 1 && tags["rtt"] == tags["setup"], "{tags:?}");
    assert_eq!(samples, report.rtt.count, "the log holds every sample");
}

#[test]
fn the_reconnect_figures_have_the_documented_fields_and_types() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let (_, json) = documented_run(
        &server,
        dir.path(),
        &[
            "--duration",
            "500ms",
            "--reconnect",
            "--reconnect-delay",
            "200ms",
            "--seed",
            "3",
        ],
    );
    let reconnect = &json["reconnect"];
    assert_eq!(reconnect["seed"], 3);
    assert_eq!(reconnect["delay_s"], 0.2);
    assert_eq!(reconnect["lost"], 0, "nothing was lost: {reconnect}");
    assert!(reconnect["all_back_after_s"].is_null());
}

#[test]
fn failures_are_reported_with_reasons_and_set_the_exit_status() {
    let fields = documented_fields();
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("failed.json");
    let wrong = [
        "--user",
        "alice",
        "--password",
        "wrong",
        "--sessions",
        "2",
        "--duration",
        "500ms",
    ];
    let out = loadgen(
        &server,
        &[
            &wrong[..],
            &["--max-failures", "1", "--json", json_path.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    check_report(&json, &fields);
    assert_eq!(json["sessions"]["failure_reasons"]["auth_failed"], 2);
    assert_eq!(json["failures"]["exceeded"], true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed auth_failed: 2"));
    // Within the limit, but nothing established: still a failed run.
    let out = loadgen(&server, &[&wrong[..], &["--max-failures", "100%"]].concat());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Usage errors are 2.
    let out = loadgen(&server, &["--user", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn eap_mschapv2_sessions_come_up_and_a_wrong_password_is_an_auth_failure() {
    let server = server_with(|config| {
        config.ppp.auth = vec![sstpd::proto::auth::AuthProtocol::EapMsChapV2];
    });
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("eap.json");
    let eap = [
        "--auth",
        "eap-mschapv2",
        "--user",
        "alice",
        "--sessions",
        "2",
    ];
    let out = loadgen(
        &server,
        &[
            &eap[..],
            &[
                "--password",
                "alice-secret",
                "--pps",
                "10",
                "--duration",
                "1s",
            ],
            &["--json", json_path.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["sessions"]["established"], 2);
    assert!(json["rtt"]["count"].as_u64().unwrap() > 0);
    let stats = server.handle().metrics();
    assert_eq!(stats.event("auth_success_eap_mschapv2"), 2, "{stats}");
    assert_eq!(stats.event("crypto_binding_sha256"), 2, "{stats}");

    let out = loadgen(
        &server,
        &[&eap[..], &["--password", "wrong", "--duration", "500ms"]].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed auth_failed: 2"));
    // Three attempts per session (ppp.auth_max_attempts), each counted.
    let stats = server.handle().metrics();
    assert_eq!(stats.event("auth_failure_eap_mschapv2"), 6, "{stats}");
}

/// Two sessions of `auth` came up, passed traffic (the loadgen's JSON
/// report at `json_path`) and bound with matching keys (sstpd's
/// counters, which it returns).
fn assert_two_sessions_bound(
    server: &Harness,
    json_path: impl AsRef<Path>,
    auth: &str,
) -> sstpd::metrics::MetricsSnapshot {
    let json: Value = serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    assert_eq!(json["sessions"]["established"], 2);
    assert_eq!(json["config"]["auth"][0], auth);
    assert!(json["rtt"]["count"].as_u64().unwrap() > 0);
    let stats = server.handle().metrics();
    assert_eq!(stats.event("auth_success_eap_mschapv2"), 2, "{stats}");
    assert_eq!(stats.event("crypto_binding_sha256"), 2, "{stats}");
    assert_eq!(stats.event("wrong_mac"), 0, "{stats}");
    stats
}

/// A half-second run with `args` that brings no session up: the loadgen
/// exits 1 and reports `auth_failed`; sstpd's counters after it.
fn assert_refused(server: &Harness, mut args: Vec<String>) -> sstpd::metrics::MetricsSnapshot {
    args.extend(["--duration", "500ms"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = loadgen(server, &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("auth_failed"));
    server.handle().metrics()
}

/// sstpd with EAP only, relayed (radius.eap_pass_through) to a RADIUS
/// server on 127.0.0.1:1812 of its namespace.
fn eap_pass_through_server() -> Harness {
    use sstpd::config::{RadiusServer, Secret, UserBackend};
    server_with(|config| {
        config.ppp.auth = vec![sstpd::proto::auth::AuthProtocol::EapMsChapV2];
        config.users.backends = vec![UserBackend::Radius];
        config.radius.auth_server = vec![RadiusServer {
            address: "127.0.0.1:1812".parse().unwrap(),
            secret: Secret("testing123".into()),
        }];
        config.radius.eap_pass_through = true;
        config.radius.auth_timeout = Duration::from_secs(2);
    })
}

#[test]
fn eap_tls_sessions_bind_with_freeradius_keys_and_a_certificate_of_another_ca_fails() {
    // sstpd relays EAP (radius.eap_pass_through) to FreeRADIUS, which
    // terminates EAP-TLS and checks the client certificate (its CA, its
    // issuer, its CN against the identity); the loadgen presents one with
    // --auth eap-tls. Sessions reaching Call Connected with a verified
    // crypto binding prove that sstpd's HLAK from FreeRADIUS's MS-MPPE
    // keys equals the loadgen's from the TLS exporter.
    use sstpd::testing::freeradius::{EapTlsCertificates, FreeRadius, FreeRadiusConfig};
    let server = eap_pass_through_server();
    let certificates = EapTlsCertificates::generate("radius.test", "erin").unwrap();
    let radius = FreeRadius::start_in(
        &server.ns,
        &FreeRadiusConfig {
            eap_tls: Some(certificates.clone()),
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts with EAP-TLS");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca = write("radius-ca.pem", &certificates.server.ca_pem);
    let cert = write("erin.pem", &certificates.client_cert_pem);
    let key = write("erin.key", &certificates.client_key_pem);
    let other = EapTlsCertificates::generate("radius.test", "erin").unwrap();
    let other_cert = write("other.pem", &other.client_cert_pem);
    let other_key = write("other.key", &other.client_key_pem);
    let json_path = write("eap-tls.json", "");
    let eap_tls = |cert: &str, key: &str| {
        [
            "--auth",
            "eap-tls",
            "--eap-cert",
            cert,
            "--eap-key",
            key,
            "--eap-ca",
            &ca,
            "--eap-server-name",
            "radius.test",
            "--user",
            "erin",
            "--password",
            "unused",
            "--sessions",
            "2",
        ]
        .map(String::from)
        .to_vec()
    };
    let mut args = eap_tls(&cert, &key);
    args.extend(["--pps", "10", "--duration", "1s", "--json", &json_path].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = loadgen(&server, &args);
    assert!(out.status.success(), "{out:?}\nradius:\n{}", radius.log());
    let stats = assert_two_sessions_bound(&server, &json_path, "eap-tls");
    // Four Access-Challenges a session with these one-certificate ECDSA
    // chains (Start, the server's flight in two fragments of FreeRADIUS's
    // 1024 octets, its Finished): far inside the relay's 50 rounds.
    assert_eq!(stats.event("radius_challenge"), 2 * 4, "{stats}");
    assert!(radius.log().contains("eap_tls"));

    // A certificate from another CA: FreeRADIUS refuses it, sstpd relays
    // the EAP-Failure and counts it; nothing more comes up.
    let stats = assert_refused(&server, eap_tls(&other_cert, &other_key));
    assert!(stats.event("auth_failure_eap_mschapv2") >= 2, "{stats}");
    assert_eq!(stats.event("auth_success_eap_mschapv2"), 2, "{stats}");
}

#[test]
fn peap_sessions_bind_with_freeradius_keys_and_a_wrong_password_or_ca_fails() {
    // sstpd relays EAP (radius.eap_pass_through) to FreeRADIUS, which
    // terminates PEAPv0 with EAP-MSCHAPv2 inside; the loadgen runs the
    // client side with --auth peap. Sessions reaching Call Connected with
    // a verified crypto binding prove that sstpd's HLAK from FreeRADIUS's
    // MS-MPPE keys equals the loadgen's from the TLS exporter.
    use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, PeapCertificates, RadiusUser};
    let server = eap_pass_through_server();
    let certificates = PeapCertificates::generate("radius.test").unwrap();
    let radius = FreeRadius::start_in(
        &server.ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("dave", "dave-secret")],
            peap: Some(certificates.clone()),
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts with PEAP");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("radius-ca.pem");
    std::fs::write(&ca, &certificates.ca_pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    let other = PeapCertificates::generate("radius.test").unwrap();
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    let json_path = dir.path().join("peap.json");
    let peap = |ca: &std::path::Path, password: &str| {
        vec![
            "--auth".to_string(),
            "peap".into(),
            "--eap-ca".into(),
            ca.to_str().unwrap().into(),
            "--eap-server-name".into(),
            "radius.test".into(),
            "--user".into(),
            "dave".into(),
            "--password".into(),
            password.into(),
            "--sessions".into(),
            "2".into(),
        ]
    };
    let mut args = peap(&ca, "dave-secret");
    args.extend(["--pps", "10", "--duration", "1s", "--json"].map(String::from));
    args.push(json_path.to_str().unwrap().into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = loadgen(&server, &args);
    assert!(out.status.success(), "{out:?}\nradius:\n{}", radius.log());
    let stats = assert_two_sessions_bound(&server, &json_path, "peap");
    // Seven Access-Challenges a session with this two-certificate ECDSA
    // chain (Start, the server's flight, Finished, inner Identity,
    // Challenge, Success, Result TLV): far inside the relay's 50 rounds.
    assert_eq!(stats.event("radius_challenge"), 2 * 7, "{stats}");
    assert!(radius.log().contains("inner-tunnel"));

    // A wrong password: FreeRADIUS's inner method refuses, sstpd relays
    // the EAP-Failure and counts it.
    let stats = assert_refused(&server, peap(&ca, "wrong"));
    assert!(stats.event("auth_failure_eap_mschapv2") >= 2, "{stats}");

    // A loadgen trusting another CA refuses FreeRADIUS's certificate: no
    // session comes up, none binds.
    let mut args = peap(&other_ca, "dave-secret");
    args.extend(["--duration", "500ms"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = loadgen(&server, &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stats = server.handle().metrics();
    assert_eq!(stats.event("auth_success_eap_mschapv2"), 2, "{stats}");
    assert_eq!(stats.event("crypto_binding_sha256"), 2, "{stats}");

    // A RADIUS server returning a wrong MS-MPPE-Recv-Key: sstpd's HLAK no
    // longer matches the loadgen's, and the binding is refused.
    drop(radius);
    let radius = FreeRadius::start_in(
        &server.ns,
        &FreeRadiusConfig {
            users: vec![RadiusUser::new("dave", "dave-secret")],
            peap: Some(certificates),
            post_auth_reply: vec![("MS-MPPE-Recv-Key".into(), format!("0x{}", "00".repeat(32)))],
            ..Default::default()
        },
    )
    .expect("FreeRADIUS starts again");
    let mut args = peap(&ca, "dave-secret");
    args.extend(["--duration", "500ms"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = loadgen(&server, &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{out:?}\nradius:\n{}",
        radius.log()
    );
    let stats = server.handle().metrics();
    assert!(stats.event("wrong_mac") >= 1, "{stats}");
    assert_eq!(stats.event("crypto_binding_sha256"), 2, "{stats}");
}
