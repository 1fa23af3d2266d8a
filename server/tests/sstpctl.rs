#![cfg(feature = "runtime")]
//! `sstpctl` against the real `sstpd` binary (issue 14): both real
//! binaries, real sessions over real TLS in a network namespace. Listing
//! (table and JSON, bytes growing with traffic), one session, `kill` by
//! user, tunnel address and id (Call Disconnect, `admin_reset`, the other
//! sessions untouched), `stats`, `reload`, `show config` (redacted, and
//! loading back to the running configuration), the socket's mode, peers
//! that are neither root nor the server's user, hostile requests, a
//! stale or live socket at start, and `drain` (the disconnects spread over
//! the period, new connections refused without a reset, `/health` and the
//! `sstpd_draining` gauge, `drain --cancel`).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use serde_json::Value;
use sstpd::config::{Config, InlineUser, Secret};
use sstpd::testing::netns::NetNs;
use sstpd::tls::certs::SelfSignedKey;

const SSTPCTL: &str = env!("CARGO_BIN_EXE_sstpctl");

/// What one run of sstpctl gave.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

fn run(mut command: Command) -> Run {
    let out = command.output().expect("run sstpctl");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `sstpctl --socket SOCKET args...` as root.
fn sstpctl(socket: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(SSTPCTL);
    command.arg("--socket").arg(socket).args(args);
    run(command)
}

/// The same as `nobody` (uid 65534).
fn sstpctl_as_nobody(socket: &Path, args: &[&str]) -> Run {
    let setpriv = require_tool("setpriv", "util-linux");
    let mut command = Command::new(setpriv);
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", SSTPCTL])
        .arg("--socket")
        .arg(socket)
        .args(args);
    run(command)
}

/// A running sstpd binary with a control socket; stopped on drop.
struct Daemon {
    ns: NetNs,
    child: Option<Child>,
    addr: std::net::SocketAddr,
    socket: PathBuf,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// alice, bob and carol; two workers; the socket in a directory that
    /// does not exist yet (sstpd creates it).
    fn start() -> Daemon {
        Daemon::start_with(|_| {})
    }

    /// As [`Daemon::start`], with `edit` applied to the configuration.
    fn start_with(edit: impl FnOnce(&mut Config)) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
        config.users.local.push(InlineUser {
            name: "carol".into(),
            password: Secret("carol-secret".into()),
            ip: None,
        });
        edit(&mut config);
        let socket = dir.path().join("run/control.sock");
        let (ns, child, addr, config_path) = spawn(&dir, config, &socket);
        let mut daemon = Daemon {
            ns,
            child: Some(child),
            addr,
            socket,
            config_path,
            dir,
        };
        daemon.wait_for_socket();
        daemon
    }

    fn wait_for_socket(&mut self) {
        let up = wait_until(Duration::from_secs(20), || {
            UnixStream::connect(&self.socket).is_ok()
                || self.child.as_mut().unwrap().try_wait().unwrap().is_some()
        });
        assert!(
            up && UnixStream::connect(&self.socket).is_ok(),
            "no control socket: {}",
            self.stop()
        );
    }

    /// SIGTERM, then the log.
    fn stop(&mut self) -> String {
        let Some(child) = self.child.take() else {
            return String::new();
        };
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `config` (listening on a free port, with `[control] socket`)
/// and starts the binary on it.
fn spawn(
    dir: &tempfile::TempDir,
    mut config: Config,
    socket: &Path,
) -> (NetNs, Child, std::net::SocketAddr, PathBuf) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.server.listen = vec![addr];
    let config_path = dir.path().join("sstpd.toml");
    let mut control = format!("[control]\nsocket = \"{}\"\n", socket.display());
    if let Some(metrics) = config.metrics.listen {
        control.push_str(&format!("\n[metrics]\nlisten = \"{metrics}\"\n"));
    }
    std::fs::write(&config_path, config_toml(&config, &control)).unwrap();
    let ns = NetNs::new("sstpd-ctl").unwrap();
    let child = spawn_sstpd_in(&ns, env!("CARGO_BIN_EXE_sstpd"), &config_path);
    (ns, child, addr, config_path)
}

fn sessions(socket: &Path) -> Vec<Value> {
    let answer = sstpctl(socket, &["sessions", "--json"]).json();
    assert_eq!(answer["unanswered_workers"], serde_json::json!([]));
    answer["sessions"].as_array().unwrap().clone()
}

fn session_of<'a>(sessions: &'a [Value], user: &str) -> &'a Value {
    sessions
        .iter()
        .find(|s| s["user"] == user)
        .unwrap_or_else(|| panic!("no session of {user} in {sessions:?}"))
}

fn counter(socket: &Path, label: &str) -> u64 {
    let stats = sstpctl(socket, &["stats", "--json"]).json();
    stats["counters"][label]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {label}: {stats}"))
}

#[test]
fn sessions_are_listed_and_killed_by_user_address_and_id() {
    let mut daemon = Daemon::start();
    let (addr, socket) = (daemon.addr, daemon.socket.clone());
    let outcome = daemon.ns.run(move || {
        tokio_uring::start(async move {
            let (alice, alice_inbox) =
                connect_when_up(&mschapv2_options(addr, "alice", "alice-secret"), 100).await;
            let (bob, _) = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .unwrap();
            let (carol, _) = connect(&mschapv2_options(addr, "carol", "carol-secret"))
                .await
                .unwrap();
            let alice_ip = alice.address().unwrap();
            assert!(ping_gateway(&alice, &alice_inbox, 1, b"first").await);
            let before = sessions(&socket);
            assert!(ping_gateway(&alice, &alice_inbox, 2, &[b'x'; 500]).await);
            let after = sessions(&socket);
            let table = sstpctl(&socket, &["sessions"]);

            let bob_killed = sstpctl(&socket, &["kill", "--user", "bob"]);
            let bob_closed = bob.wait_closed(Duration::from_secs(10)).await;
            let others_alive_after_bob = !alice.is_closed() && !carol.is_closed();
            let bob_by_server = session_closed_by_server(&bob);

            let carol_ip = carol.address().unwrap().to_string();
            let carol_killed = sstpctl(&socket, &["kill", "--address", &carol_ip]);
            let carol_closed = carol.wait_closed(Duration::from_secs(10)).await;
            let alice_alive_after_carol =
                !alice.is_closed() && ping_gateway(&alice, &alice_inbox, 3, b"still here").await;
            // A list of one is still a table.
            let table_of_one = wait_until(Duration::from_secs(5), || {
                let table = sstpctl(&socket, &["sessions"]).stdout;
                table.starts_with("ID ") && table.ends_with("\n1 session(s)\n")
            });

            let alice_id = session_of(&after, "alice")["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let one = sstpctl(&socket, &["session", &alice_id]);
            let one_json = sstpctl(&socket, &["session", &alice_id, "--json"]).json();
            let alice_killed = sstpctl(&socket, &["kill", "--id", &alice_id, "--json"]).json();
            let alice_closed = alice.wait_closed(Duration::from_secs(10)).await;
            (
                (alice_ip, carol_ip, before, after, table),
                (
                    bob_killed,
                    bob_closed,
                    bob_by_server,
                    others_alive_after_bob,
                ),
                (
                    carol_killed,
                    carol_closed,
                    alice_alive_after_carol,
                    table_of_one,
                ),
                (alice_id, one, one_json, alice_killed, alice_closed),
            )
        })
    });
    let (listing, bob, carol, alice) = outcome;
    let (alice_ip, carol_ip, before, after, table) = listing;

    // The listing: three established sessions with their users,
    // addresses, TLS and binding; alice's counters grow with her pings.
    assert_eq!(before.len(), 3, "{before:?}");
    for user in ["alice", "bob", "carol"] {
        let s = session_of(&after, user);
        assert_eq!(s["established"], true, "{s}");
        assert!(
            s["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{s}"
        );
        assert!(
            matches!(s["tls_version"].as_str(), Some("1.2" | "1.3")),
            "{s}"
        );
        assert!(
            s["tls_cipher"]
                .as_str()
                .is_some_and(|c| c.starts_with("TLS")),
            "{s}"
        );
        assert_eq!(s["crypto_binding"], "sha256", "{s}");
        // Taken over from rustls after the handshake (no kTLS here).
        assert_eq!(s["tls_records"], "sstpd", "{s}");
        assert!(s["worker"].as_u64().unwrap() < 2, "{s}");
        assert!(!s["id"].as_str().unwrap().is_empty(), "{s}");
    }
    let (a0, a1) = (session_of(&before, "alice"), session_of(&after, "alice"));
    assert_eq!(a1["ipv4"], alice_ip.to_string());
    assert_eq!(session_of(&after, "carol")["ipv4"], carol_ip);
    for key in ["bytes_in", "bytes_out", "packets_in", "packets_out"] {
        let (was, is) = (a0[key].as_u64().unwrap(), a1[key].as_u64().unwrap());
        assert!(was > 0 && is > was, "{key}: {was} then {is}");
    }
    assert!(a1["bytes_in"].as_u64().unwrap() - a0["bytes_in"].as_u64().unwrap() >= 528);
    assert_eq!(table.code, Some(0), "{table:?}");
    println!("sstpctl sessions:\n{}", table.stdout);
    assert!(table.stdout.starts_with("ID "), "{}", table.stdout);
    for needle in [
        "alice",
        "bob",
        "carol",
        &alice_ip.to_string(),
        "3 session(s)",
    ] {
        assert!(table.stdout.contains(needle), "{needle}: {}", table.stdout);
    }

    // kill --user: bob's session only, closed with Call Disconnect.
    let (killed, closed, by_server, others_alive) = bob;
    assert_eq!(killed.code, Some(0), "{killed:?}");
    assert!(
        killed.stdout.starts_with("killed 1 session(s)"),
        "{killed:?}"
    );
    assert!(
        closed && by_server,
        "bob's session did not end by the server"
    );
    assert!(others_alive, "kill --user bob touched another session");
    // kill --address: carol's.
    let (killed, closed, alice_alive, table_of_one) = carol;
    assert!(table_of_one, "sstpctl sessions with one session left");
    assert!(
        killed.stdout.starts_with("killed 1 session(s)"),
        "{killed:?}"
    );
    assert!(closed, "carol's session did not end");
    assert!(alice_alive, "kill --address touched alice's session");
    // session ID, then kill --id.
    let (alice_id, one, one_json, killed, closed) = alice;
    assert_eq!(one.code, Some(0), "{one:?}");
    println!("sstpctl session ID:\n{}", one.stdout);
    assert!(
        one.stdout.contains(&alice_id) && one.stdout.contains("alice"),
        "{one:?}"
    );
    assert_eq!(one_json["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(one_json["sessions"][0]["user"], "alice");
    assert_eq!(killed["killed"], 1, "{killed}");
    assert_eq!(killed["ids"], serde_json::json!([alice_id]));
    assert!(closed, "alice's session did not end");

    // Nothing left to kill or show; the counters agree with what happened.
    let socket = &daemon.socket;
    let none = sstpctl(socket, &["kill", "--user", "bob"]);
    assert!(none.stdout.starts_with("killed 0 session(s)"), "{none:?}");
    let missing = sstpctl(socket, &["session", &alice_id]);
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(missing.stderr.contains("no session with id"), "{missing:?}");
    assert!(
        wait_until(Duration::from_secs(10), || sessions(socket).is_empty()),
        "sessions left"
    );
    let stats = sstpctl(socket, &["stats", "--json"]).json();
    assert_eq!(stats["counters"]["admin_reset"], 3, "{stats}");
    assert_eq!(stats["counters"]["sessions_established"], 3, "{stats}");
    assert_eq!(stats["gauges"]["sessions_active"], 0, "{stats}");
    assert_eq!(stats["gauges"]["connections_open"], 0, "{stats}");
    assert!(
        stats["counters"]["control_answered"].as_u64().unwrap() >= 10,
        "{stats}"
    );
    let table = sstpctl(socket, &["stats"]);
    println!("sstpctl stats:\n{}", table.stdout);
    assert!(table.stdout.contains("admin_reset"), "{table:?}");
    assert!(
        !table.stdout.contains("control_refused_peer"),
        "zero counters are left out"
    );
    let log = daemon.stop();
    assert!(log.contains("sstpctl kill"), "{log}");
}

/// `tls.take_over_records = false`: the records stay with rustls, and the
/// session works the same (IP both ways).
#[test]
fn records_stay_with_rustls_when_not_taken_over() {
    let daemon = Daemon::start_with(|c| c.tls.take_over_records = false);
    let (addr, socket) = (daemon.addr, daemon.socket.clone());
    let (pinged, listed) = daemon.ns.run(move || {
        tokio_uring::start(async move {
            let (alice, inbox) =
                connect_when_up(&mschapv2_options(addr, "alice", "alice-secret"), 100).await;
            let pinged = ping_gateway(&alice, &inbox, 1, &[b'r'; 700]).await;
            let listed = sessions(&socket);
            alice.close(Duration::from_secs(5)).await;
            (pinged, listed)
        })
    });
    assert!(pinged);
    assert_eq!(session_of(&listed, "alice")["tls_records"], "rustls");
}

#[test]
fn reload_show_config_and_who_may_ask() {
    let mut daemon = Daemon::start();
    let socket = daemon.socket.clone();

    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let reload = sstpctl(&socket, &["reload"]);
    assert_eq!(reload.code, Some(0), "{reload:?}");
    assert!(
        reload.stdout.contains("applied:          users"),
        "{reload:?}"
    );
    let reload = sstpctl(&socket, &["reload", "--json"]).json();
    assert_eq!(reload["applied"], serde_json::json!(["users"]));

    // A live key and a restart-only key changed in the file: the reload
    // names both, and `show config` has the first's new value and the
    // second's old one (what is in force).
    let started = Config::load(&daemon.config_path).unwrap();
    let mut edited = started.clone();
    edited.server.max_sessions = 77;
    edited.server.workers = started.server.workers + 1;
    std::fs::write(&daemon.config_path, edited.to_toml().unwrap()).unwrap();
    let reload = sstpctl(&socket, &["reload", "--json"]).json();
    assert_eq!(
        reload["applied"],
        serde_json::json!(["users", "server.max_sessions"]),
        "{reload}"
    );
    assert_eq!(
        reload["restart_required"],
        serde_json::json!(["server.workers"]),
        "{reload}"
    );
    let shown = Config::from_toml_str(&sstpctl(&socket, &["show", "config"]).stdout).unwrap();
    assert_eq!(shown.server.max_sessions, 77);
    assert_eq!(shown.server.workers, started.server.workers);
    std::fs::write(&daemon.config_path, started.to_toml().unwrap()).unwrap();
    let reload = sstpctl(&socket, &["reload", "--json"]).json();
    assert_eq!(
        reload["applied"],
        serde_json::json!(["users", "server.max_sessions"])
    );

    // show config: no secret, and with them put back it is the file.
    let shown = sstpctl(&socket, &["show", "config"]);
    assert_eq!(shown.code, Some(0), "{shown:?}");
    for secret in ["alice-secret", "bob-secret", "carol-secret"] {
        assert!(
            !shown.stdout.contains(secret),
            "{secret}:\n{}",
            shown.stdout
        );
    }
    assert_eq!(
        shown.stdout.matches("<redacted>").count(),
        3,
        "{}",
        shown.stdout
    );
    let running = Config::load(&daemon.config_path).unwrap();
    let mut back = Config::from_toml_str(&shown.stdout).unwrap();
    for user in &mut back.users.local {
        user.password = Secret(format!("{}-secret", user.name));
    }
    back.source = running.source.clone();
    assert_eq!(back, running);
    let json = sstpctl(&socket, &["show", "config", "--json"]).json();
    assert_eq!(json["toml"], shown.stdout);

    // Not root and not sstpd's user: the socket's mode keeps nobody out.
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = sstpctl_as_nobody(&socket, &["stats"]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("Permission denied"), "{refused:?}");
    assert!(
        refused.stderr.contains(&socket.display().to_string()),
        "{refused:?}"
    );
    // With the mode opened up, SO_PEERCRED still does.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = sstpctl_as_nobody(&socket, &["kill", "--user", "alice"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("permission denied: uid 65534"),
        "{refused:?}"
    );
    assert_eq!(counter(&socket, "control_refused_peer"), 1);

    // Hostile requests: answered with an error, counted, and the server
    // serves the next one.
    let ask = |bytes: &[u8]| {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(bytes);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // (Daemon::start's probes were empty requests: bad ones too.)
    let bad_before = counter(&socket, "control_bad_request");
    let long = ask(&vec![b'{'; 70 * 1024]);
    assert!(long.contains("longer than 65536 bytes"), "{long}");
    assert!(ask(b"sessions\n").contains("invalid request"));
    assert!(ask(b"{\"command\":\"shutdown\"}\n").contains("unknown variant"));
    assert!(ask(b"{\"command\":\"kill\"}\n").contains("kill needs"));
    assert_eq!(counter(&socket, "control_bad_request"), bad_before + 3);
    // A client that says nothing is dropped after the read timeout.
    let silent = UnixStream::connect(&socket).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    drop(silent);
    assert_eq!(counter(&socket, "control_timeout"), 1);

    let log = daemon.stop();
    assert!(!socket.exists(), "the socket outlived the server: {log}");
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_stops_the_start() {
    let mut daemon = Daemon::start();
    // A second server on the same socket refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 1);
    let (_ns, second, _, _) = spawn(&dir, config.clone(), &daemon.socket);
    let output = second.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("another sstpd is listening on it"), "{log}");
    assert_eq!(sstpctl(&daemon.socket, &["stats", "--json"]).code, Some(0));
    daemon.stop();

    // A socket file nobody listens on (a crash) is replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let refused = sstpctl(&stale, &["sessions"]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("nobody is listening"),
        "{refused:?}"
    );
    let (_ns, mut third, _, _) = spawn(&dir, config, &stale);
    let up = wait_until(Duration::from_secs(20), || {
        sstpctl(&stale, &["stats", "--json"]).code == Some(0)
    });
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(third.id() as i32, libc::SIGTERM) };
    let _ = third.wait();
    assert!(up, "sstpd did not replace the stale socket");

    let missing = sstpctl(&dir.path().join("nothing.sock"), &["stats"]);
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(missing.stderr.contains("is sstpd running"), "{missing:?}");
}

/// A plain HTTP GET inside the namespace: the status line and the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: lb\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete answer");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// What a new TCP connection to the SSTP port sees: the server's FIN
/// (`Ok(0)`) after our bytes, data, or an error (a reset).
fn probe_connection(addr: std::net::SocketAddr) -> std::io::Result<usize> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // What a TLS client sends first: a record header and some of a
    // ClientHello, left unread by a server that refuses.
    stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c])?;
    let mut buf = [0u8; 64];
    loop {
        // A signal for another thread of this test (a child's exit) may
        // interrupt the read; that says nothing about the server.
        match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[test]
fn drain_spreads_the_disconnects_refuses_new_connections_and_cancels() {
    const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut daemon = Daemon::start_with(|config| {
        for name in ["dave", "erin"] {
            config.users.local.push(InlineUser {
                name: name.into(),
                password: Secret(format!("{name}-secret")),
                ip: None,
            });
        }
        config.metrics.listen = Some(metrics);
    });
    let (addr, socket) = (daemon.addr, daemon.socket.clone());
    let outcome = daemon.ns.run(move || {
        tokio_uring::start(async move {
            let password = |user: &str| format!("{user}-secret");
            let (first, _) =
                connect_when_up(&mschapv2_options(addr, USERS[0], &password(USERS[0])), 100).await;
            let mut clients = vec![first];
            for user in &USERS[1..] {
                let (client, _) = connect(&mschapv2_options(addr, user, &password(user)))
                    .await
                    .unwrap();
                clients.push(client);
            }
            let health_before = http_get(metrics, "/health");
            let sessions_before = sessions(&socket).len();

            let asked = std::time::Instant::now();
            let drain = sstpctl(&socket, &["drain", "--over", "2s"]);
            let drain_json_sessions = drain.stdout.clone();
            // While draining: the health check, the gauge, a new client.
            let health_draining = http_get(metrics, "/health");
            let (_, exposition) = http_get(metrics, "/metrics");
            let refused_client = connect(&mschapv2_options(addr, "alice", "alice-secret"))
                .await
                .is_err();
            let refused_probe = probe_connection(addr);
            let listed_while_draining = sstpctl(&socket, &["sessions"]).stdout;

            // When each session ended, as its client saw it.
            let mut closed_at: Vec<Option<Duration>> = vec![None; clients.len()];
            let deadline = asked + Duration::from_secs(15);
            while closed_at.iter().any(Option::is_none) && std::time::Instant::now() < deadline {
                for (client, at) in clients.iter().zip(&mut closed_at) {
                    if at.is_none() && client.is_closed() {
                        *at = Some(asked.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let by_server: Vec<bool> = clients.iter().map(session_closed_by_server).collect();
            let still_refused = connect(&mschapv2_options(addr, "bob", "bob-secret"))
                .await
                .is_err();

            let cancel = sstpctl(&socket, &["drain", "--cancel"]);
            let health_after = http_get(metrics, "/health");
            let (again, _) = connect(&mschapv2_options(addr, "carol", "carol-secret"))
                .await
                .expect("a new session once the drain is cancelled");
            let again_up = !again.is_closed();
            (
                (health_before, sessions_before, drain, drain_json_sessions),
                (health_draining, exposition, refused_client, refused_probe),
                (listed_while_draining, closed_at, by_server, still_refused),
                (cancel, health_after, again_up),
            )
        })
    });
    let (before, draining, ended, cancelled) = outcome;

    let (health, sessions_before, drain, drain_text) = before;
    assert_eq!(health.0, "HTTP/1.1 200 OK", "{health:?}");
    assert_eq!(health.1, "ok\n");
    assert_eq!(sessions_before, USERS.len());
    assert_eq!(drain.code, Some(0), "{drain:?}");
    println!("sstpctl drain:\n{drain_text}");
    assert!(
        drain_text.contains("disconnecting 5 session(s) over 2s: one every 400ms"),
        "{drain_text}"
    );

    let (health, exposition, refused_client, refused_probe) = draining;
    assert_eq!(health.0, "HTTP/1.1 503 Service Unavailable", "{health:?}");
    assert_eq!(health.1, "draining\n");
    let samples = common::prometheus::samples(&exposition);
    assert_eq!(common::prometheus::value(&samples, "sstpd_draining"), 1);
    let (valid, said) = common::prometheus::promtool_check(&exposition);
    assert!(valid, "promtool: {said}");
    assert!(refused_client, "a new client got a session while draining");
    assert!(
        matches!(refused_probe, Ok(0)),
        "a refused connection gets a FIN, not a reset or data: {refused_probe:?}"
    );

    let (listed, closed_at, by_server, still_refused) = ended;
    assert!(
        listed.contains("draining: new connections are refused"),
        "{listed}"
    );
    let closed_at: Vec<Duration> = closed_at
        .into_iter()
        .map(|at| at.expect("every session ends within the drain"))
        .collect();
    println!("sessions closed at {closed_at:?} after the drain was asked");
    let first = *closed_at.iter().min().unwrap();
    let last = *closed_at.iter().max().unwrap();
    // Spread, not a burst: five over 2 s go 400 ms apart, the last 1.6 s
    // after the first.
    assert!(
        last - first >= Duration::from_secs(1),
        "disconnects not spread: {closed_at:?}"
    );
    assert!(
        last < Duration::from_secs(5),
        "the drain overran its period: {closed_at:?}"
    );
    assert!(
        by_server.iter().all(|&b| b),
        "every session ends with the server's Terminate/Call Disconnect: {by_server:?}"
    );
    assert!(still_refused, "the drained node took a new session");

    let (cancel, health, again_up) = cancelled;
    assert_eq!(cancel.code, Some(0), "{cancel:?}");
    assert!(cancel.stdout.starts_with("drain cancelled"), "{cancel:?}");
    assert_eq!(health.0, "HTTP/1.1 200 OK", "{health:?}");
    assert!(again_up, "no session after drain --cancel");

    let stats = sstpctl(&daemon.socket, &["stats", "--json"]).json();
    assert_eq!(stats["counters"]["drain"], 5, "{stats}");
    assert!(
        stats["counters"]["refused_draining"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert_eq!(stats["gauges"]["draining"], 0, "{stats}");
    assert_eq!(stats["gauges"]["drain_pending"], 0, "{stats}");
    let log = daemon.stop();
    assert!(log.contains("draining"), "{log}");
}
