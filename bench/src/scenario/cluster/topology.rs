//! The cluster on one machine: a namespace per role, wired to one bridge.
//!
//! ```text
//!                         core namespace: bridge cl-br, 10.202.0.0/24
//!    client 10.202.0.4 ──┤── haproxy 10.202.0.2 ──┬── node-1 10.202.0.11 (sstpd, TUN, NAS node-1)
//!    (sstp-loadgen)      │   :443  leastconn, all │── node-2 10.202.0.12
//!                        │   :4441 node-1 only    └── ...
//!                        └── radius 10.202.0.3 (FreeRADIUS, SQLite: radacct, radippool)
//! ```
//!
//! One flat segment, as a small data centre's load-balancer VLAN: every
//! role is a namespace of its own, so every packet between them crosses a
//! veth and the bridge (the same cost for HAProxy's path and the direct
//! one), and each node has its own TUN device, its own tunnel gateway
//! (10.99.0.1 on every node: the clients never see another node's) and its
//! own kernel routes.
//!
//! Every node listens twice: `:443` with PROXY protocol v2 accepted from
//! HAProxy's address only (what the clients use), and `:4443` plain (the
//! direct path the latency figure is compared with). HAProxy runs in TCP
//! mode, `send-proxy-v2` to every node, `balance leastconn`, health checks
//! every 500 ms on the node's metrics endpoint (`GET /health`: 200, or 503
//! while the node drains, which takes it out of rotation), `option
//! redispatch` and two retries: a connection refused by a dead node is
//! retried on another before the checks have marked it down.
//!
//! Everything is owned by [`Cluster`]: dropping it kills HAProxy, every
//! sstpd and FreeRADIUS, then deletes the namespaces (also on an error or
//! a panic unwinding through it); `sstp-bench` turns SIGINT/SIGTERM into
//! an early return so the drop runs then too.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sstpd::testing::freeradius::{FreeRadius, FreeRadiusConfig, RadiusClient, RadiusUser};
use sstpd::testing::netns::{create_veth_pair, NetNs, VethEnd};

use super::pool::{self, PoolDatabase};
use crate::scenario::loadgen::{spawn_logged, ChildGuard};
use crate::scenario::process::{new_namespace, tail_of_file, SstpdOptions, SstpdProcess};
use crate::scenario::{Binaries, ScenarioError};

/// The segment every role is on.
pub const SEGMENT_PREFIX: u8 = 24;
pub const HAPROXY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 2);
pub const RADIUS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 3);
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 4);
/// Where HAProxy balances over every node.
pub const FRONTEND_ALL: SocketAddr = SocketAddr::new(IpAddr::V4(HAPROXY_ADDR), 443);
/// Where HAProxy sends everything to node 1 alone (the one-node figure).
pub const FRONTEND_ONE: SocketAddr = SocketAddr::new(IpAddr::V4(HAPROXY_ADDR), 4441);
/// The nodes' PROXY protocol listener and their plain one.
pub const NODE_PROXY_PORT: u16 = 443;
pub const NODE_PLAIN_PORT: u16 = 4443;
/// The nodes' metrics endpoint, whose `GET /health` HAProxy checks.
pub const NODE_METRICS_PORT: u16 = 9464;
/// The shared secret between the nodes and FreeRADIUS.
pub const RADIUS_SECRET: &str = "cluster-secret";
/// The most sessions through HAProxy (`maxconn` 9000, two descriptors
/// each, within the 20000 descriptors a root process gets here).
pub const MAX_SESSIONS: u64 = 8000;
/// The most nodes (addresses 10.202.0.11 and up).
pub const MAX_NODES: usize = 16;

/// Node `k`'s (1-based) address on the segment.
pub fn node_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 202, 0, 10 + k as u8)
}

/// Node `k`'s NAS-Identifier.
pub fn node_name(k: usize) -> String {
    format!("node-{k}")
}

/// What the cluster is built with.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// Users `bench0..` in FreeRADIUS (one per session, the load
    /// generator's naming).
    pub users: Vec<(String, String)>,
    /// The shared pool (a prefix sstpd accepts) and the tunnel gateway.
    pub pool: String,
    pub gateway: Ipv4Addr,
    /// sstpd workers per node.
    pub workers: usize,
}

/// One sstpd node.
#[derive(Debug)]
pub struct Node {
    pub index: usize,
    pub name: String,
    pub addr: Ipv4Addr,
    pub sstpd: SstpdProcess,
}

impl Node {
    /// The plain listener, for the direct path.
    pub fn plain(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.addr), NODE_PLAIN_PORT)
    }
}

/// The running cluster; see the module documentation.
#[derive(Debug)]
pub struct Cluster {
    // Dropped in this order: HAProxy, the nodes (each takes its namespace
    // with it), FreeRADIUS, then the remaining namespaces, the bridge's
    // last.
    haproxy: Option<ChildGuard>,
    pub nodes: Vec<Node>,
    radius: Option<FreeRadius>,
    radius_ns: NetNs,
    haproxy_ns: NetNs,
    client_ns: NetNs,
    core_ns: NetNs,
    pub db: PoolDatabase,
    dir: tempfile::TempDir,
}

/// The veth names: `cl-<role>` inside the role's namespace, `cc-<role>`
/// on the bridge.
fn attach(core: &NetNs, ns: &NetNs, role: &str, addr: Ipv4Addr) -> Result<(), ScenarioError> {
    let inner = format!("cl-{role}");
    let outer = format!("cc-{role}");
    create_veth_pair(
        VethEnd {
            ns,
            name: &inner,
            addresses: &[(IpAddr::V4(addr), SEGMENT_PREFIX)],
        },
        VethEnd {
            ns: core,
            name: &outer,
            addresses: &[],
        },
    )
    .map_err(|e| ScenarioError::Setup(format!("veth for {role}: {e}")))?;
    core.ip(&["link", "set", &outer, "master", "cl-br"])
        .map_err(|e| ScenarioError::Setup(format!("bridge port for {role}: {e}")))
}

impl Cluster {
    /// Builds the segment, starts FreeRADIUS, the nodes and HAProxy, and
    /// returns once HAProxy accepts connections and sees every node up.
    pub fn start(binaries: &Binaries, spec: &ClusterSpec) -> Result<Cluster, ScenarioError> {
        if spec.nodes == 0 || spec.nodes > MAX_NODES {
            return Err(ScenarioError::Setup(format!(
                "1 to {MAX_NODES} nodes, not {}",
                spec.nodes
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("sstp-bench-cluster-")
            .tempdir()
            .map_err(ScenarioError::Io)?;
        let core_ns = new_namespace()?;
        core_ns
            .ip(&["link", "add", "cl-br", "type", "bridge"])
            .and_then(|()| core_ns.ip(&["link", "set", "cl-br", "up"]))
            .map_err(|e| ScenarioError::Setup(format!("bridge: {e}")))?;
        let client_ns = new_namespace()?;
        attach(&core_ns, &client_ns, "client", CLIENT_ADDR)?;
        let haproxy_ns = new_namespace()?;
        attach(&core_ns, &haproxy_ns, "haproxy", HAPROXY_ADDR)?;
        let radius_ns = new_namespace()?;
        attach(&core_ns, &radius_ns, "radius", RADIUS_ADDR)?;

        let (first, last) = pool_bounds(&spec.pool)?;
        let db = PoolDatabase::create(&dir.path().join("radius.db"), first, last, spec.gateway)?;
        let radius = FreeRadius::start_in(&radius_ns, &radius_config(spec, &db))
            .map_err(|e| ScenarioError::Setup(format!("FreeRADIUS: {e}")))?;

        let mut cluster = Cluster {
            haproxy: None,
            nodes: Vec::new(),
            radius: Some(radius),
            radius_ns,
            haproxy_ns,
            client_ns,
            core_ns,
            db,
            dir,
        };
        for k in 1..=spec.nodes {
            let ns = new_namespace()?;
            attach(&cluster.core_ns, &ns, &format!("n{k}"), node_addr(k))?;
            let options = node_options(binaries, spec, k);
            let sstpd = SstpdProcess::start_in(ns, &options)?;
            cluster.nodes.push(Node {
                index: k,
                name: node_name(k),
                addr: node_addr(k),
                sstpd,
            });
        }
        cluster.start_haproxy()?;
        Ok(cluster)
    }

    fn start_haproxy(&mut self) -> Result<(), ScenarioError> {
        let haproxy = find_program("haproxy")?;
        let cfg = self.dir.path().join("haproxy.cfg");
        let addrs: Vec<Ipv4Addr> = self.nodes.iter().map(|n| n.addr).collect();
        let stats = self.dir.path().join("haproxy.sock");
        fs::write(&cfg, haproxy_cfg(&addrs, &stats)).map_err(ScenarioError::Io)?;
        let log = self.dir.path().join("haproxy.log");
        let mut command = self.haproxy_ns.command(&haproxy);
        command.arg("-f").arg(&cfg).arg("-db");
        let mut child = spawn_logged(command, &log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(ScenarioError::Setup(format!(
                    "haproxy exited ({status}):\n{}",
                    tail_of_file(&log, 20)
                )));
            }
            let listening = self
                .haproxy_ns
                .try_run(|| {
                    [FRONTEND_ALL, FRONTEND_ONE].iter().all(|a| {
                        std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()
                    })
                })
                .map_err(|e| ScenarioError::Setup(e.to_string()))?;
            if listening {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ScenarioError::Setup(format!(
                    "haproxy does not listen on {FRONTEND_ALL}:\n{}",
                    tail_of_file(&log, 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.haproxy = Some(child);
        // The checks start with every server up (rise is for servers that
        // went down): nothing to wait for.
        Ok(())
    }

    /// What HAProxy's health checks say of node `name` in the balanced
    /// backend: `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming
    /// up), `MAINT`, ... (`show stat` on its stats socket).
    pub fn balancer_status(&self, name: &str) -> Result<String, ScenarioError> {
        use std::io::{Read as _, Write as _};
        let socket = self.dir.path().join("haproxy.sock");
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)
            .map_err(|e| ScenarioError::Setup(format!("{}: {e}", socket.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(ScenarioError::Io)?;
        stream
            .write_all(b"show stat\n")
            .map_err(ScenarioError::Io)?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(ScenarioError::Io)?;
        stat_status(&text, "nodes", name).ok_or_else(|| {
            ScenarioError::Setup(format!("HAProxy's stats have no server {name}:\n{text}"))
        })
    }

    /// The load generator's namespace.
    pub fn client_ns(&self) -> &NetNs {
        &self.client_ns
    }

    /// The run's directory (configurations, logs, the database).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every namespace of the cluster, by name.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = [
            &self.core_ns,
            &self.client_ns,
            &self.haproxy_ns,
            &self.radius_ns,
        ]
        .iter()
        .map(|ns| ns.name().to_owned())
        .collect();
        names.extend(
            self.nodes
                .iter()
                .map(|n| n.sstpd.namespace().name().to_owned()),
        );
        names
    }

    /// The cluster's processes now, named: every sstpd (by node),
    /// `haproxy`, `freeradius`.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut processes: Vec<(String, u32)> = self
            .nodes
            .iter()
            .map(|n| (format!("sstpd_{}", n.name), n.sstpd.pid()))
            .collect();
        processes.extend(
            self.haproxy
                .as_ref()
                .map(|h| ("haproxy".to_owned(), h.pid())),
        );
        processes.extend(
            self.radius
                .as_ref()
                .and_then(FreeRadius::pid)
                .map(|pid| ("freeradius".to_owned(), pid)),
        );
        processes
    }

    /// The pids of [`processes`](Self::processes).
    pub fn pids(&self) -> Vec<u32> {
        self.processes().into_iter().map(|(_, pid)| pid).collect()
    }

    /// FreeRADIUS's log, for a failure.
    pub fn radius_log(&self) -> String {
        self.radius
            .as_ref()
            .map(FreeRadius::log)
            .unwrap_or_default()
    }
}

/// The `status` column of server `server` of `proxy` in `show stat`'s
/// CSV.
fn stat_status(csv: &str, proxy: &str, server: &str) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let column = header.iter().position(|c| *c == "status")?;
    lines.find_map(|line| {
        let fields: Vec<&str> = line.split(',').collect();
        (fields.first() == Some(&proxy) && fields.get(1) == Some(&server))
            .then(|| fields.get(column).map(|s| (*s).to_owned()))
            .flatten()
    })
}

/// The first and last address of a `a.b.c.d/len` pool (network and
/// broadcast excluded).
pub fn pool_bounds(pool: &str) -> Result<(Ipv4Addr, Ipv4Addr), ScenarioError> {
    let bad = || ScenarioError::Setup(format!("pool {pool:?} is not an IPv4 prefix"));
    let (net, len) = pool.split_once('/').ok_or_else(bad)?;
    let net: Ipv4Addr = net.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(bad());
    }
    let size = 1u32 << (32 - len);
    let base = u32::from(net);
    Ok((Ipv4Addr::from(base + 1), Ipv4Addr::from(base + size - 2)))
}

/// sstpd on node `k`: users through RADIUS with its NAS-Identifier and
/// NAS-IP-Address (what Accounting-On closes the rows by), the shared pool
/// as its own (RADIUS picks the address, the node reserves it), PROXY
/// protocol from HAProxy only on :443, plain on :4443.
pub fn node_options(binaries: &Binaries, spec: &ClusterSpec, k: usize) -> SstpdOptions {
    let addr = node_addr(k);
    let mut options = SstpdOptions::new(binaries.sstpd.clone());
    options.workers = spec.workers;
    options.pin_workers = false;
    options.listen = SocketAddr::new(IpAddr::V4(addr), NODE_PLAIN_PORT);
    options.users = Vec::new();
    options.ipv4_pool = spec.pool.clone();
    options.ipv4_gateway = spec.gateway.to_string();
    options.max_sessions = 70_000;
    options.extra_toml = node_toml(k);
    options
}

/// The node's own sections (appended to the generated configuration).
pub fn node_toml(k: usize) -> String {
    let addr = node_addr(k);
    format!(
        "[[server.listener]]\naddress = \"{addr}:{NODE_PROXY_PORT}\"\nproxy_protocol = \"v2\"\n\
         proxy_from = [\"{HAPROXY_ADDR}\"]\n\n\
         [metrics]\nlisten = \"{addr}:{NODE_METRICS_PORT}\"\n\n\
         [ppp]\nauth = [\"mschapv2\"]\n\n\
         [users]\nbackends = [\"radius\"]\n\n\
         [radius]\nnas_identifier = \"{name}\"\nnas_ip_address = \"{addr}\"\n\n\
         [[radius.auth_server]]\naddress = \"{RADIUS_ADDR}:1812\"\nsecret = \"{RADIUS_SECRET}\"\n\n\
         [[radius.acct_server]]\naddress = \"{RADIUS_ADDR}:1813\"\nsecret = \"{RADIUS_SECRET}\"\n",
        name = node_name(k)
    )
}

/// FreeRADIUS: the users, the nodes as clients, the pool and accounting
/// in SQLite; its thread pool, not `-X`.
fn radius_config(spec: &ClusterSpec, db: &PoolDatabase) -> FreeRadiusConfig {
    FreeRadiusConfig {
        users: spec
            .users
            .iter()
            .map(|(name, password)| RadiusUser::new(name, password))
            .collect(),
        address: IpAddr::V4(RADIUS_ADDR),
        clients: vec![RadiusClient {
            address: IpAddr::V4(Ipv4Addr::new(10, 202, 0, 0)),
            prefix_len: SEGMENT_PREFIX,
            secret: RADIUS_SECRET.into(),
        }],
        debug: false,
        site: pool::site(db.path()),
        ..FreeRadiusConfig::default()
    }
}

/// HAProxy's configuration for nodes at `addrs`, as tested.
pub fn haproxy_cfg(addrs: &[Ipv4Addr], stats_socket: &Path) -> String {
    let mut cfg = format!(
        "global\n    maxconn 9000\n    stats socket {} mode 600 level operator\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    \
         timeout server 1h\n    timeout check 1s\n    retries 2\n    option redispatch\n\n",
        stats_socket.display()
    );
    let _ = write!(
        cfg,
        "frontend sstp\n    bind {FRONTEND_ALL}\n    default_backend nodes\n\n\
         frontend sstp_one_node\n    bind {FRONTEND_ONE}\n    default_backend node_1\n\n\
         backend nodes\n    balance leastconn\n    option httpchk\n    \
         http-check send meth GET uri /health\n    http-check expect status 200\n    \
         default-server send-proxy-v2 check port {NODE_METRICS_PORT} inter 500ms fall 2 rise 2\n"
    );
    for (i, addr) in addrs.iter().enumerate() {
        let _ = writeln!(cfg, "    server node-{} {addr}:{NODE_PROXY_PORT}", i + 1);
    }
    if let Some(first) = addrs.first() {
        let _ = write!(
            cfg,
            "\nbackend node_1\n    server node-1 {first}:{NODE_PROXY_PORT} send-proxy-v2\n"
        );
    }
    cfg
}

fn find_program(program: &str) -> Result<PathBuf, ScenarioError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            ScenarioError::Setup(format!(
                "`{program}` is not installed (apt-get install {program})"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balancers_view_of_a_server_is_read_from_its_stats() {
        let csv = "# pxname,svname,qcur,status,weight\n\
                   sstp,FRONTEND,,OPEN,\n\
                   nodes,node-1,0,UP,1\n\
                   nodes,node-2,0,DOWN 1/2,1\n";
        assert_eq!(stat_status(csv, "nodes", "node-1").as_deref(), Some("UP"));
        assert_eq!(
            stat_status(csv, "nodes", "node-2").as_deref(),
            Some("DOWN 1/2")
        );
        assert_eq!(stat_status(csv, "nodes", "node-3"), None);
    }

    #[test]
    fn pools_exclude_network_and_broadcast() {
        assert_eq!(
            pool_bounds("10.99.0.0/20").unwrap(),
            (Ipv4Addr::new(10, 99, 0, 1), Ipv4Addr::new(10, 99, 15, 254))
        );
        assert!(pool_bounds("10.99.0.0").is_err());
        assert!(pool_bounds("10.99.0.0/31").is_err());
    }

    #[test]
    fn every_node_is_behind_the_balancer_with_proxy_protocol() {
        let cfg = haproxy_cfg(&[node_addr(1), node_addr(2)], Path::new("/run/h.sock"));
        for needle in [
            "bind 10.202.0.2:443",
            "bind 10.202.0.2:4441",
            "balance leastconn",
            "option redispatch",
            "send-proxy-v2 check port 9464",
            "http-check send meth GET uri /health",
            "server node-1 10.202.0.11:443",
            "server node-2 10.202.0.12:443",
            "stats socket /run/h.sock",
        ] {
            assert!(cfg.contains(needle), "{needle} missing in\n{cfg}");
        }
    }

    #[test]
    fn sstpd_accepts_a_nodes_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let binaries = Binaries {
            sstpd: "/bin/sstpd".into(),
            loadgen: "/bin/sstp-loadgen".into(),
        };
        let spec = ClusterSpec {
            nodes: 2,
            users: Vec::new(),
            pool: "10.99.0.0/20".into(),
            gateway: Ipv4Addr::new(10, 99, 0, 1),
            workers: 1,
        };
        let path = dir.path().join("sstpd.toml");
        fs::write(
            &path,
            node_options(&binaries, &spec, 2).config_toml(dir.path()),
        )
        .unwrap();
        let config = sstpd::config::Config::load(&path).unwrap();
        assert_eq!(config.radius.nas_identifier, "node-2");
        assert_eq!(
            config.radius.nas_ip_address,
            Some(Ipv4Addr::new(10, 202, 0, 12))
        );
        assert!(!config.server.pin_workers);
        assert_eq!(config.server.listener.len(), 1);
        assert!(config.uses_radius() && config.uses_radius_accounting());
    }
}
