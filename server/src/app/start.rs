//! Starting and stopping the server: TLS, users, pools, the TUN device,
//! one listener per worker and address, and the workers themselves.
//!
//! [`start`] returns a [`ServerHandle`] (used by tests, the benchmark suite
//! and [`run`]); [`run`] is the binary's main loop: start, then wait for
//! SIGINT/SIGTERM (graceful shutdown) or SIGHUP (reload).

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aaa::chain::AaaChain;
use crate::aaa::local::LocalUsers;
use crate::aaa::radius::{RadiusService, RadiusStartError};
use crate::config::{Config, TunOffload};
use crate::metrics::{Event, Metrics, MetricsSnapshot};
use crate::proto::auth::Authenticator;
use crate::proto::ppp::{FsmConfig, IpcpConfig, Ipv6cpConfig, LcpConfig, PppConfig};
use crate::proto::session::SessionConfig;
use crate::proto::sstp::{CertHashes, HashProtocols, SstpConfig};
use crate::routing::framed_route::FramedRouteTable;
use crate::routing::pool::{Ipv4Range as PoolIpv4Range, Ipv6PrefixRange};
use crate::routing::session_table::SessionTable;
use crate::routing::ServerPools;
use crate::tun::routes::KernelRoutes;
use crate::tun::{TunDevice, TunError, TunOffloads, TunOptions};
use crate::worker::{self, Shared, WorkerSetup};

/// Why the server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    Tls(crate::tls::TlsError),
    Users(crate::aaa::local::UsersError),
    Pool(crate::routing::pool::PoolError),
    Tun(crate::tun::TunError),
    Listen { addr: SocketAddr, error: io::Error },
    Radius(RadiusStartError),
    Io(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Tls(e) => write!(f, "TLS: {e}"),
            StartError::Users(e) => write!(f, "users: {e}"),
            StartError::Pool(e) => write!(f, "address pool: {e}"),
            StartError::Tun(e) => write!(f, "TUN device: {e}"),
            StartError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Radius(e) => write!(f, "RADIUS: {e}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<StartError> for io::Error {
    fn from(e: StartError) -> io::Error {
        match e {
            StartError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

use super::control::server::{ControlContext, ControlServer, ControlSocket};
use super::reload::Reloader;
pub use super::reload::{ReloadError, ReloadReport};

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    reloader: Arc<Reloader>,
    threads: Vec<std::thread::JoinHandle<()>>,
    local_addrs: Vec<SocketAddr>,
    tun_name: String,
    /// The RADIUS thread, when `users.backends` names RADIUS; stopped
    /// once the workers are.
    radius: Option<Arc<RadiusService>>,
    /// The dynamic authorization listener, when `[[radius.dae.client]]`
    /// is configured.
    dae: Option<crate::aaa::dae::DaeListener>,
    /// The thread installing Framed-Route kernel routes; stopped (taking
    /// its routes with it) once the workers are.
    kernel_routes: Option<KernelRoutes>,
    /// The Prometheus endpoint, when `[metrics] listen` is set.
    metrics_endpoint: Option<super::exporter::MetricsServer>,
    /// The control socket's thread, when `[control] socket` is set;
    /// stopped (its socket removed) when shutdown begins.
    control: std::sync::Mutex<Option<ControlServer>>,
    _tun: TunDevice,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addrs", &self.local_addrs)
            .field("tun", &self.tun_name)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The TUN device's name.
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    /// The UDP addresses the dynamic authorization listener (RFC 5176)
    /// bound; empty when it does not run.
    pub fn dae_addrs(&self) -> &[SocketAddr] {
        self.dae.as_ref().map_or(&[], |d| d.local_addrs())
    }

    /// The live, authenticated sessions `selector` names, as a
    /// Disconnect-Request or CoA-Request would find them; none when the
    /// dynamic authorization listener does not run.
    pub fn find_sessions(
        &self,
        selector: &crate::aaa::dae::Selector,
    ) -> Vec<crate::aaa::dae::registry::Selected> {
        self.shared
            .dae_sessions
            .as_ref()
            .map_or_else(Vec::new, |registry| registry.select(selector))
    }

    /// The address the Prometheus endpoint bound, when it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_endpoint.as_ref().map(|m| m.local_addr())
    }

    /// Hashes of the certificate new connections see (for the crypto
    /// binding); a reload may change it.
    pub fn cert_hashes(&self) -> CertHashes {
        self.shared.live.load().cert
    }

    /// The counters, summed over workers.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The live counters, for a thread that watches them while the server
    /// runs ([`Metrics::snapshot`](crate::metrics::Metrics::snapshot)).
    pub fn counters(&self) -> crate::metrics::Metrics {
        self.shared.metrics.clone()
    }

    /// Re-reads the configuration file and applies what can change
    /// without a restart (see the `reload` module); on any error nothing
    /// changes. Sessions of users no longer in the store are then closed
    /// (counted as `user_removed`).
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        self.reloader.reload()
    }

    /// Waits (at most `timeout`) until every worker's runtime has run its
    /// heartbeat task, which it spawns after its accept loops: then every
    /// worker listens. `false` on timeout or a [`failure`](Self::failure).
    pub fn wait_workers_running(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.fatal.error().is_some() {
                return false;
            }
            if self.shared.heartbeats.all_started() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sessions alive on all workers.
    pub fn sessions_active(&self) -> i64 {
        self.shared.metrics.sessions_active()
    }

    /// Starts the thread that pings systemd's watchdog every `watchdog`
    /// (while every worker is alive) and refreshes `STATUS=`.
    pub fn systemd_monitor(
        &self,
        watchdog: Option<Duration>,
    ) -> io::Result<super::systemd::Monitor> {
        super::systemd::Monitor::start(self.shared.clone(), watchdog)
    }

    /// Accounting records waiting in the spool for a server's
    /// acknowledgement (0 without RADIUS accounting).
    pub fn accounting_spooled(&self) -> usize {
        self.radius.as_ref().map_or(0, |r| r.spooled())
    }

    /// Connections open, and those not yet authenticated (admission
    /// control's counts).
    pub fn admission_counts(&self) -> (usize, usize) {
        self.shared.admission.counts()
    }

    /// Why the server can no longer serve, once that has happened: a worker
    /// died, lost its TUN queue, or one of its own tasks (an accept loop,
    /// the TUN reader or writer, the hand-over) ended. The server should
    /// then be shut down and the process exit non-zero, for its service
    /// manager to restart it ([`run`] does).
    pub fn failure(&self) -> Option<String> {
        self.shared.fatal.error()
    }

    /// Calls `hook`, from whichever thread finds it, once there is a
    /// [`failure`](Self::failure) (at once if there is one already).
    pub fn on_failure(&self, hook: impl FnOnce() + Send + 'static) {
        self.shared.fatal.on_report(Box::new(hook));
    }

    /// Begins a graceful shutdown: every session gets LCP Terminate and
    /// CALL_DISCONNECT; workers exit when their sessions are gone or
    /// `server.shutdown_timeout` has passed.
    pub fn shutdown(&self) {
        if let Some(dae) = &self.dae {
            dae.stop();
        }
        if let Ok(mut control) = self.control.lock() {
            drop(control.take());
        }
        worker::broadcast_shutdown(&self.shared);
    }

    /// Waits for the workers to exit; `false` if some did not within
    /// `timeout` (they are then abandoned; the process is about to exit).
    pub fn join(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.threads.iter().all(|t| t.is_finished()) {
                for t in self.threads.drain(..) {
                    let _ = t.join();
                }
                if let Some(mut routes) = self.kernel_routes.take() {
                    routes.stop();
                }
                if let Some(radius) = self.radius.take() {
                    // Stops from the sessions just closed, then
                    // Accounting-Off, in the time left.
                    radius.shutdown(deadline.max(Instant::now() + Duration::from_millis(100)));
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Starts the server described by `config` and returns once every worker
/// is accepting.
pub fn start(config: Config) -> Result<ServerHandle, StartError> {
    let config = Arc::new(config);
    let workers = config.worker_count().max(1);
    // First, while no other thread of the server exists (see
    // `ControlSocket::bind`'s umask).
    let control_socket = bind_control_socket(&config)?;

    let tls = crate::tls::prepare_server_tls(&config).map_err(StartError::Tls)?;
    if let Some(key) = &config.tls.private_key {
        if let Some(mode) = crate::tls::certs::loose_key_permissions(key) {
            tracing::warn!("{}", crate::tls::certs::loose_key_warning(key, mode));
        }
    }
    let cert = CertHashes::of_der(tls.identity.leaf().as_ref());
    let metrics = Metrics::new(workers);
    if let Some((reason, _)) = tls.ktls.startup_notice() {
        metrics.global().event(reason);
    }
    note_ring_setup(crate::sys::uring::probe(), &metrics);

    let (users, summary) = LocalUsers::load(&config.users).map_err(StartError::Users)?;
    let users = Arc::new(users);
    tracing::info!(?summary, "users loaded");
    for warning in crate::app::cli::weak_auth_warnings(&config) {
        tracing::warn!("{warning}");
    }
    let radius = if config.uses_radius() || config.uses_radius_accounting() {
        let state_dir = if config.uses_radius_accounting() {
            Some(
                config
                    .state_dir()
                    .map_err(|e| StartError::Io(io::Error::other(e.to_string())))?,
            )
        } else {
            None
        };
        let service = RadiusService::start(&config.radius, state_dir.as_deref(), metrics.clone())
            .map_err(StartError::Radius)?;
        Some(service)
    } else {
        None
    };
    let remote = radius
        .clone()
        .filter(|_| config.uses_radius())
        .map(|r| r as Arc<dyn Authenticator>);
    let local = config.uses_local_users().then(|| users.clone());
    let authenticator: Arc<dyn Authenticator> = Arc::new(AaaChain::new(local, remote));

    let pools = Arc::new(ServerPools::from_config(&config).map_err(StartError::Pool)?);
    let ipv4_ranges: Vec<PoolIpv4Range> = pools.ipv4_pools().map(|p| p.range()).collect();
    let ipv6_ranges: Vec<Ipv6PrefixRange> = pools.ipv6.iter().map(|p| p.range()).collect();
    let table = SessionTable::new(&ipv4_ranges, &ipv6_ranges)
        .map_err(|e| StartError::Io(io::Error::other(e.to_string())))?;

    let (tun, tun_offloads) = open_tun(&config, workers, &metrics)?;
    let tun_name = tun.name().to_string();
    let drop_filter = attach_drop_filter(&config, &tun, &metrics);
    let steering = attach_steering(&config, &tun, tun.queues().len(), &metrics);
    // Opened here, in the device's network namespace, which the file keeps.
    let tun_stats = crate::tun::DeviceStats::open(&tun_name)
        .map_err(|e| tracing::warn!(error = %e, "no /proc/net/dev for the TUN device's counters"))
        .ok()
        .map(Arc::new);
    // Framed-Route: no route over a pool or the gateway (see
    // routing::framed_route); kernel routes via the TUN device.
    let mut framed_routes = FramedRouteTable::new(
        ipv4_ranges
            .iter()
            .map(|r| (r.first(), r.last()))
            .chain([(config.ipv4.gateway, config.ipv4.gateway)]),
    );
    if steering.is_some() || drop_filter.is_some() {
        framed_routes = framed_routes.with_observer(observe_framed_routes(
            steering.clone(),
            drop_filter.clone(),
            &metrics,
        ));
    }
    let framed_routes = Arc::new(framed_routes);
    let kernel_routes = KernelRoutes::start(
        framed_routes.clone(),
        tun.ifindex().map_err(StartError::Tun)?,
        metrics.clone(),
    )
    .map_err(StartError::Io)?;
    let mut tun = tun;
    let queues = tun.take_queues();

    let mut listeners: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut local_addrs = Vec::new();
    let user_timeout = worker::user_timeout_for(config.sstp.hello_interval);
    let mut inherited: Option<worker::InheritedSocketOptions> = None;
    // `listen`, then `[[server.listener]]`: the workers pair them with
    // their options in this order.
    for addr in config.server.listeners().iter().map(|l| l.address) {
        // Port 0: the first worker's bind picks the port; the others join it.
        let mut bound = addr;
        for per_worker in listeners.iter_mut() {
            let (listener, passed_on) = reuseport_listener(bound, user_timeout)
                .map_err(|error| StartError::Listen { addr, error })?;
            inherited = Some(inherited.map_or(passed_on, |all| all.both(passed_on)));
            bound = listener.local_addr().map_err(StartError::Io)?;
            per_worker.push(listener);
        }
        local_addrs.push(bound);
    }

    let mut senders = Vec::with_capacity(workers);
    let mut mailboxes = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = crate::worker::mailbox::mailbox(4096).map_err(StartError::Io)?;
        senders.push(tx);
        mailboxes.push(rx);
    }

    let session_config = session_config(&config);
    let shared = Arc::new(Shared {
        config: config.clone(),
        live: arc_swap::ArcSwap::from_pointee(worker::Live {
            config: config.clone(),
            session_config,
            tls: tls.config.clone(),
            cert,
        }),
        ktls: tls.ktls.clone(),
        tun_offloads,
        drop_filter,
        steering,
        tun_stats,
        authenticator,
        users: users.clone(),
        throttle: crate::aaa::throttle::AuthThrottle::new(&config.auth_throttle),
        session_ids: crate::aaa::session_id::SessionIds::default(),
        radius: radius.clone(),
        dae_sessions: config.radius.dae.enabled().then(|| {
            Arc::new(crate::aaa::dae::SessionRegistry::new(
                config.server.max_sessions,
            ))
        }),
        admission: crate::worker::admission::Admission::new(&config.server),
        pools,
        table,
        framed_routes,
        metrics,
        mailboxes: senders,
        handover: worker::handover::HandoverLanes::new(workers),
        stopping: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        drain_pending: std::sync::atomic::AtomicUsize::new(0),
        fatal: worker::Fatal::default(),
        heartbeats: worker::Heartbeats::new(workers),
        inherited_socket_options: inherited.unwrap_or_default(),
    });

    // Before the workers: a listener that cannot bind stops the start
    // while nothing runs yet.
    let dae = match &shared.dae_sessions {
        Some(registry) => Some(
            crate::aaa::dae::DaeListener::start(
                &config,
                registry.clone(),
                Arc::new(worker::dae::WorkerControl::new(shared.mailboxes.clone())),
                shared.metrics.clone(),
            )
            .map_err(StartError::Io)?,
        ),
        None => None,
    };

    let metrics_endpoint = match config.metrics.listen {
        Some(addr) => Some(
            super::exporter::MetricsServer::start(
                addr,
                exporter_for(&shared),
                shared.metrics.clone(),
            )
            .map_err(|error| StartError::Listen { addr, error })?,
        ),
        None => None,
    };

    let reloader = Arc::new(Reloader::new(shared.clone()));
    let control = match control_socket {
        Some(socket) => Some(
            ControlServer::start(
                socket,
                ControlContext {
                    shared: shared.clone(),
                    reloader: reloader.clone(),
                    gauges: scrape_gauges(&shared),
                    drainer: Default::default(),
                },
            )
            .map_err(StartError::Io)?,
        ),
        None => None,
    };

    let cores = if config.server.pin_workers {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut threads = Vec::with_capacity(workers);
    for (index, ((listeners, tun_queue), mailbox)) in
        listeners.into_iter().zip(queues).zip(mailboxes).enumerate()
    {
        let setup = WorkerSetup {
            index,
            listeners,
            tun_queue,
            mailbox,
            core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
        };
        threads.push(worker::spawn(shared.clone(), setup).map_err(StartError::Io)?);
    }
    tracing::info!(workers, listen = ?local_addrs, tun = %tun_name, "sstpd ready");
    Ok(ServerHandle {
        reloader,
        control: std::sync::Mutex::new(control),
        shared,
        threads,
        local_addrs,
        tun_name,
        radius,
        dae,
        kernel_routes: Some(kernel_routes),
        metrics_endpoint,
        _tun: tun,
    })
}

/// Binds `[control] socket`, when set. Without a configuration file (the
/// embedded defaults) a socket that cannot be made is a warning, not a
/// start error: the demo runs unprivileged, where `/run/sstpd` is not
/// writable.
fn bind_control_socket(config: &Config) -> Result<Option<ControlSocket>, StartError> {
    let Some(path) = &config.control.socket else {
        return Ok(None);
    };
    let bound = ensure_parent_dir(path).and_then(|()| ControlSocket::bind(path));
    match bound {
        Ok(socket) => Ok(Some(socket)),
        Err(e) if matches!(config.source, crate::config::ConfigSource::Embedded { .. }) => {
            tracing::warn!(error = %e, "no control socket: sstpctl cannot reach this server");
            Ok(None)
        }
        Err(e) => Err(StartError::Io(e)),
    }
}

/// Creates the socket's directory when it is missing (mode 0755: the
/// socket's own mode is what keeps others out).
fn ensure_parent_dir(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("control socket directory {}: {e}", dir.display()),
                )
            }),
        _ => Ok(()),
    }
}

/// The Prometheus exposition of this server: its counters, and the
/// [`scrape_gauges`].
fn exporter_for(shared: &Arc<Shared>) -> super::exporter::Exporter {
    let draining = Arc::downgrade(shared);
    super::exporter::Exporter::new(shared.metrics.clone(), scrape_gauges(shared)).with_drain_state(
        move || {
            draining
                .upgrade()
                .is_some_and(|s| s.draining.load(std::sync::atomic::Ordering::Acquire))
        },
    )
}

/// Gauges read when asked (a scrape, `sstpctl stats`): admission's counts
/// and caps (a reload changes the caps), the address pools' use (a leak
/// shows as addresses in use beyond the sessions), RADIUS's queues (zero without
/// RADIUS, as [`ServerHandle::accounting_spooled`]), each RADIUS server's
/// state, the workers' mailboxes and the kTLS state. They hold the
/// server's state weakly: the endpoint does not keep it alive.
fn scrape_gauges(shared: &Arc<Shared>) -> Vec<super::exporter::ScrapeGauge> {
    use super::exporter::ScrapeGauge;
    let gauge = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    type Read = fn(&Shared) -> usize;
    let table: [(&str, &str, Read); 13] = [
        (
            "connections_open",
            "TCP connections open (admission control's count).",
            |s| s.admission.counts().0,
        ),
        (
            "connections_preauth",
            "Connections not yet authenticated (limit: server.max_preauth_sessions).",
            |s| s.admission.counts().1,
        ),
        (
            "max_sessions",
            "server.max_sessions: the session limit.",
            |s| s.admission.limits().0,
        ),
        (
            "max_preauth_sessions",
            "server.max_preauth_sessions: the pre-authentication limit.",
            |s| s.admission.limits().1,
        ),
        (
            "radius_auth_queued",
            "Access-Requests waiting in the queue to the RADIUS thread.",
            |s| s.radius.as_deref().map_or(0, |r| r.queued().0),
        ),
        (
            "radius_accounting_queued",
            "Accounting records waiting in the queue to the RADIUS thread.",
            |s| s.radius.as_deref().map_or(0, |r| r.queued().1),
        ),
        (
            "radius_accounting_spooled",
            "Accounting records in the spool, not yet acknowledged by a server.",
            |s| s.radius.as_deref().map_or(0, |r| r.spooled()),
        ),
        (
            "pool_ipv4_in_use",
            "IPv4 addresses handed out from the pools (the named ones too).",
            |s| s.pools.ipv4_pools().map(|p| p.usage().in_use).sum(),
        ),
        (
            "pool_ipv4_size",
            "IPv4 addresses the pools can hand out (the named ones too).",
            |s| s.pools.ipv4_pools().map(|p| p.usage().capacity).sum(),
        ),
        (
            "pool_ipv6_in_use",
            "IPv6 prefixes handed out (0 with IPv6 off).",
            |s| s.pools.ipv6.as_ref().map_or(0, |p| p.usage().in_use),
        ),
        (
            "pool_ipv6_size",
            "IPv6 prefixes the pool can hand out (0 with IPv6 off).",
            |s| s.pools.ipv6.as_ref().map_or(0, |p| p.usage().capacity),
        ),
        (
            "draining",
            "1 while the node drains (sstpctl drain): new connections are refused.",
            |s| usize::from(s.draining.load(std::sync::atomic::Ordering::Acquire)),
        ),
        (
            "drain_pending",
            "Sessions the drain (sstpctl drain) has yet to disconnect.",
            |s| s.drain_pending.load(std::sync::atomic::Ordering::Relaxed),
        ),
    ];
    let mut gauges: Vec<ScrapeGauge> = table
        .into_iter()
        .map(|(name, help, read)| {
            let shared = Arc::downgrade(shared);
            ScrapeGauge::new(name, help, move || {
                gauge(shared.upgrade().map_or(0, |s| read(&s)))
            })
        })
        .collect();
    // Queue depths: what waits in each worker's mailbox (packets handed
    // over by other workers; control messages such as auth answers).
    let workers = shared.mailboxes.len();
    type LaneRead = fn((usize, usize)) -> usize;
    let lanes: [(&str, &str, LaneRead); 2] = [
        (
            "worker_mailbox_packet_batches",
            "Packet batches from other workers waiting in each worker's mailbox.",
            |(batches, _)| batches,
        ),
        (
            "worker_mailbox_control",
            "Control messages (authentication answers that come later, disconnects) waiting in each worker's mailbox.",
            |(_, control)| control,
        ),
    ];
    for (name, help, lane) in lanes {
        let shared = Arc::downgrade(shared);
        gauges.push(ScrapeGauge::per_worker(name, help, workers, move |i| {
            gauge(
                shared
                    .upgrade()
                    .map_or(0, |s| lane(s.mailboxes[i].queued())),
            )
        }));
    }
    // Each RADIUS server new requests go to: whether it answers, and its
    // requests in flight (no series without RADIUS).
    type ServerRead = fn(&crate::radius::client::ServerStats) -> i64;
    let per_server: [(&str, &str, ServerRead); 2] = [
        (
            "radius_server_up",
            "1 while a RADIUS server answers, 0 while it is considered dead, by server and role.",
            |s| i64::from(s.alive),
        ),
        (
            "radius_server_in_flight",
            "Requests in flight to each RADIUS server, by server and role.",
            |s| i64::try_from(s.in_flight).unwrap_or(i64::MAX),
        ),
    ];
    for (name, help, read) in per_server {
        let shared = Arc::downgrade(shared);
        gauges.push(ScrapeGauge::series(name, help, move || {
            let servers = shared
                .upgrade()
                .and_then(|s| s.radius.as_ref().map(|r| r.servers()))
                .unwrap_or_default();
            servers
                .iter()
                .map(|s| {
                    let labels = vec![
                        ("server", s.addr.to_string()),
                        ("role", s.role.as_str().to_string()),
                    ];
                    (labels, read(s))
                })
                .collect()
        }));
    }
    // kTLS as configured and as the kernel allows (an info metric: the
    // labels carry the state, the value is 1).
    gauges.push(
        ScrapeGauge::new(
            "ktls_info",
            "tls.ktls (mode) and whether the kernel has usable kTLS (kernel).",
            || 1,
        )
        .with_labels(vec![
            ("mode", shared.ktls.mode().as_str()),
            (
                "kernel",
                if shared.ktls.kernel_has_ktls() {
                    "available"
                } else {
                    "unavailable"
                },
            ),
        ]),
    );
    // The TUN offloads in use (an info metric like ktls_info).
    let active = match shared.tun_offloads {
        None => "none",
        Some(TunOffloads { uso: true, .. }) => "tso_uso",
        Some(TunOffloads { .. }) => "tso",
    };
    gauges.push(
        ScrapeGauge::new(
            "tun_offload_info",
            "tun.offload (mode) and the segmentation offloads the kernel took (active).",
            || 1,
        )
        .with_labels(vec![
            ("mode", shared.config.tun.offload.as_str()),
            ("active", active),
        ]),
    );
    gauges.push(switch_info(
        "tun_drop_filter_info",
        "tun.drop_filter (configured) and whether the kernel took the filter (active).",
        shared.config.tun.drop_filter,
        shared.drop_filter.is_some(),
    ));
    gauges.push(switch_info(
        "tun_steering_info",
        "tun.steering (configured) and whether the kernel took the program that sends each session's packets to its owner's queue (active).",
        shared.config.tun.steering,
        shared.steering.is_some(),
    ));
    let stats = shared.tun_stats.clone();
    gauges.push(ScrapeGauge::new(
        "tun_kernel_tx_dropped",
        "Packets the kernel dropped on their way to the TUN device: the drop filter's and those of a full device queue (the device's tx_dropped).",
        move || {
            stats
                .as_ref()
                .and_then(|s| s.tx_dropped())
                .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
        },
    ));
    gauges
}

/// Runs the server until SIGINT or SIGTERM, reloading on SIGHUP.
///
/// Under systemd (`NOTIFY_SOCKET` set) it speaks the notification
/// protocol ([`super::systemd`]): `READY=1` once every worker runs,
/// `RELOADING=1`/`READY=1` around a SIGHUP, `STOPPING=1` on the way out,
/// `STATUS=` and the watchdog pings from a thread of their own.
///
/// A [failure](ServerHandle::failure) (a worker died, a TUN queue was
/// lost) also stops the server, and then `run` returns it as an error: the
/// process exits non-zero and its service manager restarts it.
pub fn run(config: Config) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Register before starting so an early signal is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let shutdown_timeout = config.server.shutdown_timeout;
    let server = start(config)?;
    // A failure ends the wait for signals below.
    let signals_handle = signals.handle();
    server.on_failure(move || signals_handle.close());
    let monitor = if super::systemd::notify_socket_set() {
        if server.wait_workers_running(Duration::from_secs(30)) {
            super::systemd::ready(&super::systemd::status_text(server.sessions_active()));
        } else if server.failure().is_none() {
            tracing::warn!("the workers did not all start within 30 s: READY=1 not sent");
        }
        let watchdog = super::systemd::watchdog_interval();
        if let Some(interval) = watchdog {
            tracing::info!(
                ?interval,
                "systemd watchdog: pinging while every worker runs"
            );
        }
        Some(server.systemd_monitor(watchdog)?)
    } else {
        None
    };
    for signal in signals.forever() {
        match signal {
            SIGHUP => {
                super::systemd::reloading();
                let status = match server.reload() {
                    Ok(_) => super::systemd::status_text(server.sessions_active()),
                    // Logged by the reloader.
                    Err(e) => format!("reload failed, old configuration kept: {e}"),
                };
                super::systemd::ready(&status);
            }
            _ => {
                tracing::info!(signal, "shutting down: disconnecting every session");
                break;
            }
        }
    }
    let failure = server.failure();
    if failure.is_some() {
        tracing::info!("stopping after a failure: disconnecting every session");
    }
    super::systemd::stopping(match &failure {
        Some(failure) => failure,
        None => "disconnecting every session",
    });
    // No more watchdog pings or status updates while draining.
    drop(monitor);
    server.shutdown();
    let stats = server.metrics();
    // Workers bound their own drain by shutdown_timeout; allow a little more
    // for the threads to unwind.
    if !server.join(shutdown_timeout + Duration::from_secs(2)) {
        tracing::warn!("some workers did not stop in time");
    }
    tracing::info!(%stats, "sstpd stopped");
    match failure {
        Some(failure) => Err(io::Error::other(format!(
            "{failure}: sstpd cannot serve without it; exiting for the service manager \
             to restart it"
        ))),
        None => Ok(()),
    }
}

/// The smallest prefix that holds the gateway and the whole pool: the
/// subnet configured on the TUN device, so the kernel routes the pool to it.
fn tun_ipv4_prefix_len(gateway: Ipv4Addr, first: Ipv4Addr, last: Ipv4Addr) -> u8 {
    let g = u32::from(gateway);
    let spread =
        (u32::from(first) ^ u32::from(last)) | (u32::from(first) ^ g) | (u32::from(last) ^ g);
    spread.leading_zeros() as u8
}

/// [`tun_ipv4_prefix_len`] over every pool, the named ones too: the TUN
/// subnet is the smallest prefix holding the gateway and all of them.
fn tun_ipv4_prefix_len_all(config: &Config) -> u8 {
    let v4 = &config.ipv4;
    std::iter::once(&v4.pool)
        .chain(v4.pools.iter().map(|p| &p.range))
        .map(|range| tun_ipv4_prefix_len(v4.gateway, range.first(), range.last()))
        .min()
        .unwrap_or(32)
}

fn open_tun(
    config: &Config,
    workers: usize,
    metrics: &Metrics,
) -> Result<(TunDevice, Option<TunOffloads>), StartError> {
    let queues = if config.tun.multi_queue { workers } else { 1 };
    if queues < workers {
        return Err(StartError::Io(io::Error::other(
            "tun.multi_queue = false needs server.workers = 1 (each worker reads its own queue)",
        )));
    }
    let (tun, offloads) = create_tun(config, queues, metrics)?;
    tun.set_mtu(u32::from(config.tun.mtu))
        .map_err(StartError::Tun)?;
    let v4 = &config.ipv4;
    let prefix = tun_ipv4_prefix_len_all(config);
    tun.set_ipv4(v4.gateway, prefix).map_err(StartError::Tun)?;
    if config.ipv6.enabled {
        let p = &config.ipv6.prefix;
        let gateway = config.ipv6.gateway();
        tun.add_ipv6(gateway, p.len).map_err(StartError::Tun)?;
    }
    tun.set_up(true).map_err(StartError::Tun)?;
    Ok((tun, offloads))
}

/// With `tun.drop_filter` (the default), the kernel's drop filter for
/// sessions whose queue is full ([`crate::tun::drop_filter`]).
fn attach_drop_filter(
    config: &Config,
    tun: &TunDevice,
    metrics: &Metrics,
) -> Option<Arc<crate::tun::drop_filter::DropFilter>> {
    if !config.tun.drop_filter {
        return None;
    }
    attach_device_program(
        metrics,
        || tun.attach_drop_filter(program_capacity(config)),
        "tun.drop_filter: the kernel refused the BPF drop filter; a full session queue drops in sstpd",
    )
}

/// With `tun.steering` (the default) and more than one queue, the BPF
/// program that sends each session's packets to its owner's queue
/// ([`crate::tun::steering`]).
fn attach_steering(
    config: &Config,
    tun: &TunDevice,
    queues: usize,
    metrics: &Metrics,
) -> Option<Arc<crate::tun::steering::Steering>> {
    if !config.tun.steering || queues < 2 {
        return None;
    }
    attach_device_program(
        metrics,
        || tun.attach_steering(program_capacity(config)),
        "tun.steering: the kernel refused the BPF queue steering; the tun driver picks each packet's queue",
    )
}

/// Keeps the device programs' prefix maps with the Framed-Route table:
/// each routed prefix to its owner's queue ([`crate::tun::steering`]), and
/// a change of owner clears the prefix's congestion mark
/// ([`crate::tun::drop_filter`]), so a take-over never inherits one.
fn observe_framed_routes(
    steering: Option<Arc<crate::tun::steering::Steering>>,
    drop_filter: Option<Arc<crate::tun::drop_filter::DropFilter>>,
    metrics: &Metrics,
) -> crate::routing::framed_route::RouteObserver {
    let metrics = metrics.clone();
    Box::new(move |prefix, owner| {
        // A congestion mark belongs to the owner that set it: gone with it.
        if let Some(filter) = &drop_filter {
            if let Err(error) = filter.clear_prefix(prefix) {
                metrics.global().event(Event::TunDropFilterClearFailed);
                tracing::error!(%prefix, %error, "drop filter: could not clear a congested route");
            }
        }
        let Some(steering) = &steering else {
            return;
        };
        let (result, failed) = match owner {
            Some(owner) => (
                steering.steer_prefix(prefix, owner.worker),
                Event::TunSteeringSteerFailed,
            ),
            None => (
                steering.forget_prefix(prefix),
                Event::TunSteeringForgetFailed,
            ),
        };
        if let Err(error) = result {
            metrics.global().event(failed);
            tracing::warn!(%prefix, %error, "TUN steering: could not update a Framed-Route");
        }
    })
}

/// Room in a device program's map: an IPv4 address and an IPv6 /64 per
/// session.
fn program_capacity(config: &Config) -> u32 {
    u32::try_from(config.server.max_sessions.saturating_mul(2)).unwrap_or(u32::MAX)
}

/// Attaches a device program (`tun::bpf`); where the kernel refuses, one
/// warning (`refused`) and a count of the step that failed.
fn attach_device_program<T>(
    metrics: &Metrics,
    attach: impl FnOnce() -> Result<T, crate::tun::drop_filter::AttachError>,
    refused: &str,
) -> Option<Arc<T>> {
    match attach() {
        Ok(program) => Some(Arc::new(program)),
        Err(error) => {
            tracing::warn!(%error, "{refused}");
            metrics.global().event(&error);
            None
        }
    }
}

/// An info gauge (always 1) of a feature the configuration turns on and
/// the kernel may refuse: `configured` and `active`, `true` or `false`.
fn switch_info(
    name: &'static str,
    help: &'static str,
    configured: bool,
    active: bool,
) -> super::exporter::ScrapeGauge {
    let flag = |on: bool| if on { "true" } else { "false" };
    super::exporter::ScrapeGauge::new(name, help, || 1).with_labels(vec![
        ("configured", flag(configured)),
        ("active", flag(active)),
    ])
}

/// Says once, with a warning and an `io_uring_setup_fallbacks` count, that
/// the kernel refused a ring flag ([`crate::sys::uring`]): the workers run
/// without it, correct but with more interrupts.
fn note_ring_setup(probe: &crate::sys::uring::Probe, metrics: &Metrics) {
    if let Some(error) = &probe.coop_taskrun_refused {
        tracing::warn!(
            %error,
            "io_uring: the kernel refused IORING_SETUP_COOP_TASKRUN (5.19 or later has it); completions interrupt the workers"
        );
        metrics.global().event(Event::IoUringCoopTaskrunRefused);
    }
}

/// Creates the device; with `tun.offload = "auto"` every queue has
/// `IFF_VNET_HDR` and the kernel is asked for TSO and USO. Where it refuses
/// either, one warning, a `tun_offload_fallbacks` count, and the device is
/// made again without the header: the workers then run the plain path.
fn create_tun(
    config: &Config,
    queues: usize,
    metrics: &Metrics,
) -> Result<(TunDevice, Option<TunOffloads>), StartError> {
    let options = TunOptions::new(config.tun.name.clone(), queues);
    if config.tun.offload == TunOffload::Auto {
        let offloaded = TunOptions {
            vnet_hdr: true,
            ..options.clone()
        };
        let refused = match TunDevice::create(&offloaded) {
            Ok(tun) => match tun.set_offloads(true) {
                Ok(offloads) => return Ok((tun, Some(offloads))),
                Err(error) => (Event::TunOffloadFeaturesRefused, error),
            },
            // What the plain device would fail on too is no refusal of the offload.
            Err(
                error @ (TunError::NameInUse { .. }
                | TunError::InvalidName { .. }
                | TunError::NeedsCapNetAdmin { .. }
                | TunError::DriverMissing(_)),
            ) => return Err(StartError::Tun(error)),
            Err(error) => (Event::TunOffloadVnetHdrRefused, error),
        };
        let (step, error) = refused;
        tracing::warn!(
            %error,
            "tun.offload = \"auto\": the kernel refused segmentation offload; one packet per TUN read and write"
        );
        metrics.global().event(step);
    }
    let tun = TunDevice::create(&options).map_err(StartError::Tun)?;
    Ok((tun, None))
}

/// A listening socket of one worker's, and the options it passes on to the
/// connections it accepts (`TCP_NODELAY`, the `TCP_USER_TIMEOUT` of
/// `user_timeout`).
fn reuseport_listener(
    addr: SocketAddr,
    user_timeout: std::time::Duration,
) -> io::Result<(std::net::TcpListener, worker::InheritedSocketOptions)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    let inherited = worker::InheritedSocketOptions::apply(&socket, user_timeout);
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok((socket.into(), inherited))
}

/// Protocol-core configuration from the file's `[sstp]`, `[ppp]`, `[ipv4]`
/// and `[ipv6]` sections.
pub fn session_config(config: &Config) -> SessionConfig {
    let s = &config.sstp;
    let bits = s.crypto_binding.iter().fold(0u8, |bits, h| {
        bits | match h {
            crate::config::CryptoBindingHash::Sha1 => HashProtocols::SHA1.bits(),
            crate::config::CryptoBindingHash::Sha256 => HashProtocols::SHA256.bits(),
        }
    });
    let hashes = HashProtocols::from_bits(bits);
    let sstp = SstpConfig {
        negotiation_timeout: s.negotiation_timeout,
        call_connected_timeout: s.negotiation_timeout,
        hello_interval: s.hello_interval,
        abort_timer_1: s.abort_timeout,
        abort_timer_2: s.abort_ack_timeout,
        disconnect_timer_1: s.disconnect_timeout,
        disconnect_timer_2: s.disconnect_ack_timeout,
        server_hash_protocols: hashes,
        ..SstpConfig::default()
    };
    let p = &config.ppp;
    let ppp = PppConfig {
        fsm: FsmConfig {
            restart_interval: p.lcp_restart_interval,
            max_configure: p.lcp_max_configure,
            max_terminate: p.lcp_max_terminate,
            max_failure: p.lcp_max_failure,
        },
        lcp: LcpConfig {
            mru: p.mru,
            echo_interval: (!p.lcp_echo_interval.is_zero()).then_some(p.lcp_echo_interval),
            echo_failures: p.lcp_echo_failures,
            ..LcpConfig::default()
        },
        auth_protocols: p.auth.clone(),
        auth: crate::proto::auth::AuthConfig {
            eap_relay: config.radius.eap_pass_through,
            ..p.auth_config()
        },
        ipcp: IpcpConfig {
            enabled: true,
            local_address: Some(config.ipv4.gateway),
            dns: [
                config.ipv4.dns.first().copied(),
                config.ipv4.dns.get(1).copied(),
            ],
            nbns: [
                config.ipv4.nbns.first().copied(),
                config.ipv4.nbns.get(1).copied(),
            ],
            ..IpcpConfig::default()
        },
        ipv6cp: Ipv6cpConfig {
            enabled: config.ipv6.enabled,
        },
    };
    let mut session = SessionConfig::new(sstp, ppp);
    session.ipv6_dns = config.ipv6.dns.clone();
    session.ipv6_mtu = Some(u32::from(config.tun.mtu));
    session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_listener_passes_nodelay_and_the_user_timeout_to_what_it_accepts() {
        let timeout = Duration::from_secs(120);
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let (listener, inherited) = reuseport_listener(addr.parse().unwrap(), timeout).unwrap();
            assert_eq!(
                inherited,
                worker::InheritedSocketOptions {
                    nodelay: true,
                    user_timeout: Some(timeout),
                }
            );
            let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            // What sessions no longer set themselves: the kernel's copy.
            assert!(accepted.nodelay().unwrap());
            let socket = socket2::SockRef::from(&accepted);
            assert_eq!(socket.tcp_user_timeout().unwrap(), Some(timeout));
        }
    }

    #[test]
    fn sessions_set_what_any_listener_did_not_pass_on() {
        use worker::InheritedSocketOptions as Inherited;
        let t = Duration::from_secs(120);
        let full = Inherited {
            nodelay: true,
            user_timeout: Some(t),
        };
        assert!(!full.needs_nodelay());
        assert!(!full.needs_user_timeout(t));
        // A reload changed sstp.hello_interval: the listeners' is stale.
        assert!(full.needs_user_timeout(Duration::from_secs(60)));
        let refused = Inherited {
            nodelay: false,
            user_timeout: None,
        };
        assert_eq!(full.both(refused), refused);
        assert_eq!(refused.both(full), refused);
        let other_timeout = Inherited {
            nodelay: true,
            user_timeout: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            full.both(other_timeout),
            Inherited {
                nodelay: true,
                user_timeout: None,
            }
        );
        assert_eq!(full.both(full), full);
        // No listener at all: sessions set everything.
        assert!(Inherited::default().needs_nodelay());
        assert!(Inherited::default().needs_user_timeout(t));
    }

    #[test]
    fn tun_prefix_covers_gateway_and_pool() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            tun_ipv4_prefix_len(a("10.99.0.1"), a("10.99.0.2"), a("10.99.0.254")),
            24
        );
        assert_eq!(
            tun_ipv4_prefix_len(a("10.99.0.1"), a("10.99.0.0"), a("10.99.3.255")),
            22
        );
        assert_eq!(
            tun_ipv4_prefix_len(a("10.0.0.1"), a("10.99.0.2"), a("10.99.0.9")),
            9
        );
    }
}
