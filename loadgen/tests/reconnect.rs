//! `--reconnect` against sstpd: sessions killed by the operator
//! (`sstpctl kill`, over the control socket) and a server killed with
//! SIGKILL and restarted come back after their back-off, and the report
//! counts the losses and the time to recover; bulk traffic resumes both
//! ways through the traffic peer; without `--reconnect` a killed session
//! stays lost.

mod support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use sstp_loadgen::backoff::ReconnectPolicy;
use sstp_loadgen::config::Pinning;
use sstp_loadgen::{Credentials, Engine, LoadConfig, Mode, Quiet, Report};
use sstpd::app::control::protocol::{exchange, Answer, KillSelector, Request};
use sstpd::config::{Config, InlineUser, Secret};
use sstpd::testing::netns::NetNs;
use sstpd::tls::certs::SelfSignedKey;
use support::*;

/// Sessions each test holds; session `i` logs in as `user{i}`.
const SESSIONS: u64 = 6;
/// The environment variable that turns the kill test's binary into a server
/// ([`run_as_sstpd_process`]).
const CHILD_CONFIG: &str = "SSTP_LOADGEN_TEST_SSTPD_CONFIG";

/// `user0`..`user{SESSIONS-1}` (password `pw{i}`) and the control socket.
fn add_users_and_control(config: &mut Config, socket: &Path) {
    config.users.local.extend((0..SESSIONS).map(|i| InlineUser {
        name: format!("user{i}"),
        password: Secret(format!("pw{i}")),
        ip: None,
    }));
    config.control.socket = Some(socket.to_path_buf());
}

fn echo_config(target: std::net::SocketAddr, reconnect: Option<ReconnectPolicy>) -> LoadConfig {
    let mut config = LoadConfig::new(
        Mode::Echo { to: None },
        target,
        Credentials::Pattern {
            user: "user%d".into(),
            password: "pw%d".into(),
        },
    );
    config.sessions = SESSIONS;
    config.workers = 2;
    config.pinning = Pinning::None;
    config.pps = Some(10.0);
    config.duration = Duration::from_secs(10);
    config.setup_timeout = Duration::from_secs(10);
    config.drain = Duration::from_secs(1);
    config.reconnect = reconnect;
    config
}

fn ask(socket: &Path, request: Request) -> Option<Answer> {
    exchange(socket, &request, Duration::from_secs(5)).ok()
}

/// Sessions the server lists (`None`: it cannot be asked).
fn server_sessions(socket: &Path) -> Option<usize> {
    match ask(socket, Request::Sessions)? {
        Answer::Sessions(list) => Some(list.sessions.len()),
        _ => None,
    }
}

fn kill_user(socket: &Path, user: &str) -> usize {
    let selector = KillSelector {
        user: Some(user.into()),
        ..KillSelector::default()
    };
    match ask(socket, Request::Kill(selector)) {
        Some(Answer::Killed(report)) => report.killed,
        other => panic!("kill {user}: {other:?}"),
    }
}

fn wait_for_sessions(socket: &Path, n: usize, timeout: Duration) -> bool {
    wait_until(timeout, || server_sessions(socket) == Some(n))
}

/// Kills `user1` and `user4` once every session is up; returns the run's
/// report and the sessions the server listed once they could have come
/// back.
fn run_and_kill_two(reconnect: Option<ReconnectPolicy>) -> (Report, usize) {
    run_and_kill_two_with(|_| {}, reconnect)
}

/// [`run_and_kill_two`] with the echo configuration adjusted, and the
/// traffic peer next to the server.
fn run_and_kill_two_with(
    adjust: impl FnOnce(&mut LoadConfig),
    reconnect: Option<ReconnectPolicy>,
) -> (Report, usize) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let server = server_with(|c| add_users_and_control(c, &socket));
    let _peer = start_peer(&server);
    let mut config = echo_config(server.addr, reconnect);
    adjust(&mut config);
    std::thread::scope(|scope| {
        let run = scope.spawn(|| run(&server, config));
        assert!(
            wait_for_sessions(&socket, SESSIONS as usize, Duration::from_secs(20)),
            "the sessions came up"
        );
        // Into the window: traffic is flowing.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(kill_user(&socket, "user1"), 1);
        assert_eq!(kill_user(&socket, "user4"), 1);
        // The server lets go of the killed sessions (it may still list
        // them for a moment) ...
        assert!(
            wait_until(Duration::from_secs(5), || server_sessions(&socket)
                .is_some_and(|n| n < SESSIONS as usize)),
            "the killed sessions ended"
        );
        // ... and they come back within a few back-off steps, if at all.
        wait_for_sessions(&socket, SESSIONS as usize, Duration::from_secs(5));
        let listed = server_sessions(&socket).unwrap_or(0);
        (run.join().expect("the run completes"), listed)
    })
}

#[test]
fn sessions_killed_by_the_operator_come_back_after_the_back_off() {
    let delay = Duration::from_millis(500);
    let policy = ReconnectPolicy {
        initial: delay,
        max: Duration::from_secs(2),
        seed: 19,
    };
    let (r, listed) = run_and_kill_two(Some(policy));
    eprintln!("{}", r.table());
    assert_consistent(&r);
    assert_eq!(
        listed, SESSIONS as usize,
        "the server holds every session again"
    );
    let re = r.reconnect.as_ref().expect("reconnect figures");
    assert_eq!(
        (re.lost, re.reconnected, re.unrecovered),
        (2, 2, 0),
        "{re:?}"
    );
    assert_eq!((re.attempts, re.failed_attempts), (2, 0), "{re:?}");
    assert_eq!(
        re.causes.get("lcp_terminate"),
        Some(&2),
        "sstpctl kill ends the PPP link first (LCP Terminate-Request): {re:?}"
    );
    assert_eq!(re.recovery.count, 2);
    assert!(
        re.recovery.min_us >= delay.as_micros() as u64,
        "no reconnection before the initial delay: {re:?}"
    );
    let all_back = re.all_back_after_s.expect("every session came back");
    assert!(all_back >= delay.as_secs_f64(), "{re:?}");
    // Two more setups; two drops; every slot held and closed at the end.
    let s = &r.sessions;
    assert_eq!(
        (s.established, s.failed, s.dropped, s.held, s.closed),
        (SESSIONS + 2, 0, 2, SESSIONS, SESSIONS),
        "{s:?}"
    );
    // The traffic went on through the new sessions: replies kept coming
    // (at most the probe in flight at each kill is lost).
    let loss = r.loss.round_trip.as_ref().unwrap();
    assert!(loss.sent >= SESSIONS * 10 * 8, "{loss:?}");
    assert!(loss.lost <= 4, "{loss:?}");
    assert!(r.table().contains("reconnect   lost 2  reconnected 2"));
}

/// The two killed sessions were lost and came back, and the server
/// holds every session again.
fn assert_both_came_back(r: &Report, listed: usize) {
    eprintln!("{}", r.table());
    assert_consistent(r);
    assert_eq!(listed, SESSIONS as usize, "every session is back");
    let re = r.reconnect.as_ref().unwrap();
    assert_eq!(
        (re.lost, re.reconnected, re.unrecovered),
        (2, 2, 0),
        "{re:?}"
    );
}

#[test]
fn idle_sessions_killed_by_the_operator_notice_and_come_back() {
    // An idle session waits for the run's end or its own close, with no
    // timer: the close must wake it, or it would be set up again only
    // after the window.
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(1),
        seed: 7,
    };
    let (r, listed) = run_and_kill_two_with(|c| c.mode = Mode::Idle, Some(policy));
    assert_both_came_back(&r, listed);
    let s = &r.sessions;
    assert_eq!(
        (s.established, s.dropped, s.held, s.closed),
        (SESSIONS + 2, 2, SESSIONS, SESSIONS),
        "{s:?}"
    );
}

#[test]
fn bulk_traffic_resumes_both_ways_on_the_new_sessions() {
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(1),
        seed: 5,
    };
    let (r, listed) = run_and_kill_two_with(
        |c| {
            c.mode = Mode::Bulk {
                to: None,
                direction: sstp_loadgen::Direction::Both,
                flows: 1,
                follow: false,
            };
            c.pps = Some(20.0);
            c.payload = Some(200);
        },
        Some(policy),
    );
    assert_both_came_back(&r, listed);
    // The reconnected sessions asked the peer for a stream again and got
    // one; every flow's counters came back, over both incarnations.
    let p = &r.peer;
    assert_eq!(p.streams_unanswered, 0, "{p:?}");
    assert_eq!((p.queried_flows, p.answered_flows), (SESSIONS, SESSIONS));
    let up = r.loss.up.as_ref().expect("up loss measured");
    assert!(up.sent >= SESSIONS * 20 * 8, "{up:?}");
    // At most what was in flight at each kill is lost upstream.
    assert!(up.lost <= 4, "{up:?}");
    let down = r.loss.down.as_ref().expect("down loss measured");
    assert!(down.received >= SESSIONS * 20 * 8, "{down:?}");
    assert!(down.lost <= 4, "{down:?}");
    // The new streams are new flows: nothing counts as out of order.
    assert_eq!(r.traffic.reordered, 0);
}

#[test]
fn without_reconnect_a_killed_session_stays_lost() {
    let (r, listed) = run_and_kill_two(None);
    assert_consistent(&r);
    assert_eq!(
        r.reconnect, None,
        "no reconnect figures without --reconnect"
    );
    assert_eq!(
        listed,
        SESSIONS as usize - 2,
        "the killed sessions did not come back"
    );
    let s = &r.sessions;
    assert_eq!(
        (s.established, s.dropped, s.held, s.closed),
        (SESSIONS, 2, SESSIONS - 2, SESSIONS - 2),
        "{s:?}"
    );
    assert_eq!(s.drop_reasons.values().sum::<u64>(), 2, "{s:?}");
    assert!(!r.table().contains("reconnect"));
}

/// In the child process [`SstpdProcess::start`] starts (the kill test's
/// own binary, given the configuration's path in [`CHILD_CONFIG`]): runs
/// sstpd's runtime (`sstpd::app::run`, what the binary runs), so that the
/// test can SIGKILL it. Returns false in the test itself.
fn run_as_sstpd_process() -> bool {
    let Ok(path) = std::env::var(CHILD_CONFIG) else {
        return false;
    };
    let config = Config::load(Path::new(&path)).expect("the test's configuration loads");
    sstpd::app::run(config).expect("sstpd runs");
    true
}

/// sstpd in a child process; SIGKILLed on drop.
struct SstpdProcess(Child);

impl SstpdProcess {
    /// Its output goes to `log` (appended), shown when the test fails.
    fn start(ns: &NetNs, config_path: &Path, log: &Path) -> SstpdProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = ns
            .command(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "every_session_comes_back_after_the_server_is_killed_and_restarted",
                "--nocapture",
            ])
            .env(CHILD_CONFIG, config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the sstpd process");
        SstpdProcess(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for SstpdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn every_session_comes_back_after_the_server_is_killed_and_restarted() {
    if run_as_sstpd_process() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    let addr: std::net::SocketAddr = "127.0.0.1:4443".parse().unwrap();
    config.server.listen = vec![addr];
    add_users_and_control(&mut config, &socket);
    let config_path = dir.path().join("sstpd.toml");
    let control = format!("[control]\nsocket = \"{}\"\n", socket.display());
    std::fs::write(&config_path, config_toml(&config, &control)).unwrap();
    let ns = NetNs::new("sstpd-e2e").expect("create namespace");

    let log = dir.path().join("sstpd.log");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut sstpd = SstpdProcess::start(&ns, &config_path, &log);
    assert!(
        wait_until(Duration::from_secs(20), || server_sessions(&socket)
            == Some(0)),
        "sstpd came up: {}",
        log_text()
    );
    let delay = Duration::from_millis(300);
    let downtime = Duration::from_millis(1500);
    let policy = ReconnectPolicy {
        initial: delay,
        max: Duration::from_secs(2),
        seed: 7,
    };
    let load = echo_config(addr, Some(policy));
    let (r, restarted_at, killed_at) = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            let engine = Engine::new(load).expect("valid configuration");
            ns.run(move || engine.run(&mut Quiet))
                .expect("the run completes")
        });
        assert!(
            wait_for_sessions(&socket, SESSIONS as usize, Duration::from_secs(20)),
            "the sessions came up"
        );
        std::thread::sleep(Duration::from_secs(2));
        let killed_at = Instant::now();
        sstpd.kill();
        std::thread::sleep(downtime);
        // The stale socket of the killed process is replaced.
        sstpd = SstpdProcess::start(&ns, &config_path, &log);
        let restarted_at = Instant::now();
        assert!(
            wait_for_sessions(&socket, SESSIONS as usize, Duration::from_secs(6)),
            "every session is back on the new server: {}",
            log_text()
        );
        (
            run.join().expect("the run completes"),
            restarted_at,
            killed_at,
        )
    });
    eprintln!("{}", r.table());
    assert!(restarted_at - killed_at >= downtime);
    assert_consistent(&r);
    let re = r.reconnect.as_ref().expect("reconnect figures");
    assert_eq!(
        (re.lost, re.reconnected, re.unrecovered),
        (SESSIONS, SESSIONS, 0),
        "{re:?}"
    );
    assert_eq!(
        re.causes.get("transport_closed"),
        Some(&SESSIONS),
        "a killed server's connections just end: {re:?}"
    );
    // Every session's first attempt (at most 3 x 300 ms) came while the
    // server was down.
    assert!(re.failed_attempts >= SESSIONS, "{re:?}");
    assert_eq!(re.attempts, re.reconnected + re.failed_attempts, "{re:?}");
    assert!(
        re.recovery.min_us >= downtime.as_micros() as u64,
        "nobody was back before the server: {re:?}"
    );
    let all_back = re.all_back_after_s.expect("every session came back");
    assert!(all_back >= downtime.as_secs_f64(), "{re:?}");
    let s = &r.sessions;
    assert_eq!(s.established, 2 * SESSIONS, "{s:?}");
    assert_eq!(s.failed, re.failed_attempts, "{s:?}");
    assert_eq!((s.held, s.closed), (SESSIONS, SESSIONS), "{s:?}");
}
