//! Shared by the load generator's end-to-end tests: sstpd in a fresh
//! network namespace (the server's own harness, included rather than
//! copied), the traffic peer next to it, and runs of the engine inside
//! the namespace.
#![allow(dead_code)]

#[path = "../../../server/tests/common/mod.rs"]
mod server_common;

use std::time::Duration;

#[allow(unused_imports)]
pub use server_common::{
    config_toml, mschapv2_options, prometheus, test_config, trusting, wait_until, TestServer,
    GATEWAY, USERS,
};
use sstp_loadgen::config::Pinning;
use sstp_loadgen::peer::{Peer, PeerConfig};
use sstp_loadgen::{Credentials, Engine, LoadConfig, Mode, Quiet, Report};
use sstpd::config::Config;
use sstpd::tls::certs::SelfSignedKey;

/// The peer's port inside the server's namespace.
pub const PEER_PORT: u16 = 9000;

/// A test server and the directory its configuration's files live in.
pub struct Harness {
    pub server: TestServer,
    _config_dir: tempfile::TempDir,
}

impl std::ops::Deref for Harness {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

/// A two-worker sstpd with the harness's users (alice, bob), adjusted by
/// `adjust`.
pub fn server_with(adjust: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), SelfSignedKey::EcdsaP256, 2);
    adjust(&mut config);
    Harness {
        server: TestServer::start(config),
        _config_dir: dir,
    }
}

/// A two-worker sstpd with the harness's users (alice, bob).
pub fn server() -> Harness {
    server_with(|_| {})
}

/// A run against `server` as alice: two unpinned workers (tests share
/// the machine), short timeouts, everything else the defaults.
pub fn load_config(server: &TestServer, mode: Mode, sessions: u64) -> LoadConfig {
    let (user, password) = USERS[0];
    let mut config = LoadConfig::new(mode, server.addr, Credentials::single(user, password));
    config.sessions = sessions;
    config.workers = 2;
    config.pinning = Pinning::None;
    config.duration = Duration::from_secs(2);
    config.setup_timeout = Duration::from_secs(20);
    config.drain = Duration::from_secs(2);
    config
}

/// Runs the engine inside the server's namespace.
pub fn run(server: &TestServer, config: LoadConfig) -> Report {
    let engine = Engine::new(config).expect("valid configuration");
    server
        .ns
        .run(move || engine.run(&mut Quiet))
        .expect("the run completes")
}

/// Starts the traffic peer in the server's namespace on [`PEER_PORT`],
/// for IPv4 and IPv6 (`[::]`, as `sstp-loadgen peer` by default).
pub fn start_peer(server: &TestServer) -> Peer {
    server
        .ns
        .run(|| {
            Peer::start(&PeerConfig {
                bind: (std::net::Ipv6Addr::UNSPECIFIED, PEER_PORT).into(),
                threads: 2,
                max_flows: 1024,
                udp_offload: true,
            })
        })
        .expect("peer starts")
}

/// The invariants of every report: the phases add up to the setup time
/// exactly, the counts balance, nothing is misrouted.
pub fn assert_consistent(r: &Report) {
    let p = &r.setup.phases;
    let phases = [&p.tcp, &p.tls, &p.http, &p.sstp, &p.ppp_auth, &p.network];
    for phase in phases {
        assert_eq!(phase.count, r.setup.total.count, "one sample per setup");
    }
    assert_eq!(
        phases.iter().map(|h| h.sum_ns).sum::<u64>(),
        r.setup.total.sum_ns,
        "phase times add up to the setup time"
    );
    assert_eq!(r.setup.total.count, r.sessions.established);
    let s = &r.sessions;
    assert_eq!(s.attempted, s.established + s.failed, "{s:?}");
    assert_eq!(s.failure_reasons.values().sum::<u64>(), s.failed);
    assert_eq!(s.drop_reasons.values().sum::<u64>(), s.dropped);
    assert_eq!(r.traffic.foreign, 0, "every packet received was ours");
    assert_eq!(r.teardown.count, s.closed);
}
