//! `sstp-loadgen`: an SSTP load generator that works against any SSTP
//! server ([MS-SSTP]).
//!
//! Each session is the real thing: TCP, TLS (rustls), the HTTP
//! `SSTP_DUPLEX_POST` handshake, SSTP, PPP with authentication (MS-CHAPv2,
//! CHAP-MD5 or PAP) and IPCP, driven by sstpd's sans-IO protocol core in
//! its client role ([`sstpd::client`]) on tokio-uring worker threads.
//! Traffic then flows through the tunnels:
//!
//! * `echo`: ICMP echo to the tunnel gateway (round trip times, loss);
//! * `udp`: datagrams reflected by `sstp-loadgen peer` on the server side;
//! * `bulk`: maximum throughput up, down or both (the peer counts or
//!   streams);
//! * `idle`: sessions held with keepalives only;
//! * `churn`: connect, hold, disconnect, repeat (setup/teardown rate);
//! * `tun`: each session behind a TUN device of its own, for the kernel's
//!   TCP and UDP (iperf3) through the tunnels.
//!
//! With `--reconnect`, sessions that end unexpectedly come back after a
//! back-off ([`backoff`]), and the report says how fast.
//!
//! The library exposes the engine ([`engine::Engine`]), its configuration
//! ([`config::LoadConfig`]) and the report ([`report::Report`], the JSON
//! schema documented in docs/loadgen.md), so the benchmark suite can run
//! the binary and read its `--json`, or embed the engine.

#![warn(missing_debug_implementations)]

pub mod backoff;
pub mod cli;
pub mod config;
pub mod engine;
pub mod follow;
pub mod output;
pub mod packet;
pub mod peer;
pub mod report;
pub mod stats;

pub use config::{Credentials, Direction, FailureLimit, Family, LoadConfig, Mode};
pub use engine::{Engine, Observer, Quiet, RunError, Snapshot};
pub use report::{Report, SCHEMA, SCHEMA_VERSION};
