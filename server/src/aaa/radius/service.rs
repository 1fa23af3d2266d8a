//! The RADIUS thread: UDP sockets, the sans-IO [`Client`], the accounting
//! spool, and the [`Authenticator`] the workers hand requests to (see the
//! module documentation of [`super`] for why it is one thread).
//!
//! # Accounting
//!
//! Workers hand records over with [`RadiusService::account`] (a bounded
//! channel: full, the record is lost and counted `radius_acct_queue_full`).
//! The thread takes every record waiting, writes each to the spool, syncs
//! the spool once, then sends them ([`super::spool`]): a record leaves the
//! disk when a server acknowledges it. One whose request failed (every
//! server tried) waits `acct_timeout`, doubling per failure up to
//! [`MAX_RETRY_DELAY`], and is sent again; records found in the spool at
//! start are sent after Accounting-On, one Stop per session
//! ([`Replay::after_restart`]: a Start or Interim-Update sent after it
//! would reopen a session the server has just closed). Accounting-On/Off are not spooled: a
//! late Accounting-On would make the server close sessions that are up.
//! [`RadiusService::shutdown`] sends what the workers queued, waits for
//! the answers, then sends Accounting-Off, within a deadline; what is not
//! acknowledged by then stays in the spool for the next start.
//!
//! # Reload
//!
//! [`RadiusService::reconfigure`] gives the thread a new server list,
//! secrets, timeouts, retries and bounds. New requests go to a new
//! [`Client`]; the old one is kept, with its own sockets, until every
//! request it holds has been answered or has failed over its own list:
//! a request in flight finishes against the servers (and the secret) it
//! was sent with, so an answer signed with the old secret is still
//! verified. Accounting records are not lost either way: the spool
//! belongs to the thread, not to a client, and a record whose request
//! fails waits and is sent again through the new list. The NAS
//! attributes, `max_pending`, the spool bound and whether accounting
//! runs at all stay as started.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use super::accounting::{unix_now, AcctKind, AcctRecord, Replay};
use super::mapping::{self, DecryptedKeys, NasIdentity};
use super::spool::{Spool, SpoolId};
use crate::config::{RadiusSection, RadiusServer};
use crate::metrics::{Event, Metrics, RadiusAuthResult};
use crate::proto::auth::{
    AuthContext, AuthDecision, AuthReply, AuthRequest, Authenticator, Credentials,
};
use crate::radius::attr::ms;
use crate::radius::client::{self, Client, ClientConfig, ServerConfig, ServerRole, ServerStats};
use crate::radius::packet::Code;

/// Datagrams read from the sockets waiting for the client; more are
/// dropped (counted `radius_rx_dropped`): the socket buffers hold the rest.
const DATAGRAM_QUEUE: usize = 1024;
/// The largest RADIUS packet ([RFC 2865] 3).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
const MAX_PACKET: usize = 4096;
/// The longest wait before a spooled record whose request failed is sent
/// again.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// How long a spooled record waits when the client has no room for it.
const NO_ROOM_DELAY: Duration = Duration::from_millis(100);

/// Why the RADIUS thread could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum RadiusStartError {
    /// The thread or its runtime could not be created.
    Io(io::Error),
    /// The accounting spool could not be opened.
    Spool(io::Error),
}

impl RadiusStartError {
    pub fn as_str(&self) -> &'static str {
        match self {
            RadiusStartError::Io(_) => "io",
            RadiusStartError::Spool(_) => "spool",
        }
    }
}

impl fmt::Display for RadiusStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RadiusStartError::Io(e) => write!(f, "cannot start the RADIUS thread: {e}"),
            RadiusStartError::Spool(e) => write!(f, "cannot open the accounting spool: {e}"),
        }
    }
}

impl std::error::Error for RadiusStartError {}

/// The RADIUS client of the server: authenticates through
/// `[[radius.auth_server]]` and accounts to `[[radius.acct_server]]`.
/// Cloning the `Arc` shares the one thread.
pub struct RadiusService {
    jobs: mpsc::Sender<Job>,
    acct: mpsc::Sender<AcctRecord>,
    control: mpsc::UnboundedSender<Control>,
    stop: Arc<Notify>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    nas: NasIdentity,
    accounting: bool,
    spooled: Arc<AtomicUsize>,
    /// The servers new requests go to, and their states, as the thread
    /// last published them.
    servers: Arc<Mutex<Vec<ServerStats>>>,
    metrics: Metrics,
}

impl fmt::Debug for RadiusService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadiusService")
            .field("nas", &self.nas)
            .field("accounting", &self.accounting)
            .finish_non_exhaustive()
    }
}

/// Authentication work for the RADIUS thread.
enum Job {
    Access {
        request: client::Request,
        pending: PendingAuth,
    },
}

/// Orders to the thread.
enum Control {
    /// New requests go to a client with this configuration (see the
    /// module doc, "Reload").
    Reconfigure {
        client: Box<ClientConfig>,
        acct_timeout: Duration,
    },
    /// Send what is queued, wait for the answers, send Accounting-Off,
    /// then stop; by `deadline` at the latest. Answered when done.
    Shutdown {
        deadline: Instant,
        done: std::sync::mpsc::Sender<()>,
    },
}

/// A request on its way: what the answer needs, and where it goes.
/// Answered exactly once: dropped unanswered (the thread stopped, the
/// client gave the tag back without an event) it answers "service
/// unavailable".
struct PendingAuth {
    credentials: Credentials,
    user: String,
    reply: Option<AuthReply>,
    /// When the session asked (for the latency histogram).
    asked_at: Instant,
}

impl PendingAuth {
    fn answer(mut self, decision: AuthDecision) {
        if let Some(reply) = self.reply.take() {
            reply.send(decision);
        }
    }
}

impl Drop for PendingAuth {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            reply.send(AuthDecision::Reject(mapping::unavailable()));
        }
    }
}

/// An accounting record on its way, with its place in the spool (none:
/// the spool was full or failed).
struct PendingAcct {
    spooled: Option<SpoolId>,
    record: AcctRecord,
    /// Requests for it that failed so far.
    failures: u32,
}

/// The client's tag for a request.
enum Tag {
    Auth(PendingAuth),
    Acct(PendingAcct),
}

fn server_config(server: &RadiusServer) -> ServerConfig {
    ServerConfig {
        addr: server.address,
        secret: server.secret.0.as_bytes().to_vec(),
    }
}

/// The sans-IO client's configuration from `[radius]`.
fn client_config(r: &RadiusSection) -> ClientConfig {
    ClientConfig {
        auth_servers: r.auth_server.iter().map(server_config).collect(),
        acct_servers: r.acct_server.iter().map(server_config).collect(),
        auth_timeout: r.auth_timeout,
        acct_timeout: r.acct_timeout,
        retries: r.retries,
        dead_time: r.dead_time,
        require_message_authenticator: r.require_message_authenticator,
        require_message_authenticator_accounting: r.require_message_authenticator_accounting,
        max_queued: r.max_pending,
        max_outstanding_accounting: r.acct_max_in_flight,
        ..ClientConfig::default()
    }
}

impl RadiusService {
    /// Starts the RADIUS thread for `config`, counting into `metrics`'
    /// process-wide table. With accounting servers configured, the spool
    /// lives in `state_dir` (required then) and Accounting-On is sent.
    pub fn start(
        config: &RadiusSection,
        state_dir: Option<&Path>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, RadiusStartError> {
        let accounting = !config.acct_server.is_empty();
        let (spool, recovered) = match (accounting, state_dir) {
            (true, Some(dir)) => {
                let (spool, recovered) =
                    Spool::open(&dir.join(super::spool::SPOOL_DIR), config.acct_spool_max)
                        .map_err(RadiusStartError::Spool)?;
                (Some(spool), recovered)
            }
            (true, None) => {
                return Err(RadiusStartError::Spool(io::Error::other(
                    "accounting needs a state directory for its spool",
                )))
            }
            (false, _) => (None, Default::default()),
        };
        if recovered.unreadable > 0 {
            metrics.global().events_n(
                Event::RadiusAcctSpoolUnreadable,
                recovered.unreadable as u64,
            );
            tracing::warn!(
                files = recovered.unreadable,
                "unreadable accounting records in the spool renamed *.bad"
            );
        }
        if !recovered.records.is_empty() {
            tracing::info!(
                records = recovered.records.len(),
                "accounting records left by the last run: sending them again"
            );
        }
        let spooled = Arc::new(AtomicUsize::new(recovered.records.len()));
        let (jobs, job_rx) = mpsc::channel(config.max_pending);
        let (acct, acct_rx) = mpsc::channel(config.max_pending);
        let (control, control_rx) = mpsc::unbounded_channel();
        let stop = Arc::new(Notify::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(RadiusStartError::Io)?;
        let nas = NasIdentity {
            nas_identifier: config.nas_identifier.clone(),
            nas_ip_address: config.nas_ip_address,
            called_station_id: config.called_station_id.clone(),
        };
        let client = Client::new(client_config(config));
        let published: Vec<ServerStats> = client.servers().collect();
        let servers = Arc::new(Mutex::new(published.clone()));
        let mut runner = Runner {
            client,
            servers: servers.clone(),
            published,
            generation: 0,
            retiring: Vec::new(),
            sockets: Sockets::default(),
            spool,
            spooled: spooled.clone(),
            waiting: BTreeMap::new(),
            waiting_seq: 0,
            acct_in_flight: 0,
            acct_timeout: config.acct_timeout,
            nas: nas.clone(),
            metrics: metrics.clone(),
        };
        if accounting {
            runner.send_unspooled(AcctRecord::nas(AcctKind::AccountingOn, unix_now()));
            let replay = Replay::after_restart(recovered.records);
            if !replay.superseded.is_empty() {
                tracing::info!(
                    superseded = replay.superseded.len(),
                    "accounting records of the last run replaced by their session's Stop"
                );
            }
            if let Some(spool) = runner.spool.as_mut() {
                for id in replay.superseded {
                    if let Err(e) = spool.acknowledge(id) {
                        metrics.global().event(Event::RadiusAcctSpoolError);
                        tracing::error!(error = %e, "cannot remove a superseded accounting record");
                    }
                }
            }
            for (id, record) in replay.send {
                metrics.global().event(Event::RadiusAcctReplayed);
                runner.send_acct(PendingAcct {
                    spooled: Some(id),
                    record,
                    failures: 0,
                });
            }
        }
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sstpd-radius".into())
            .spawn(move || {
                runtime.block_on(runner.run(job_rx, acct_rx, control_rx, thread_stop));
            })
            .map_err(RadiusStartError::Io)?;
        tracing::info!(
            auth_servers = ?config.auth_server.iter().map(|s| s.address).collect::<Vec<_>>(),
            acct_servers = ?config.acct_server.iter().map(|s| s.address).collect::<Vec<_>>(),
            "RADIUS client started"
        );
        Ok(Arc::new(RadiusService {
            jobs,
            acct,
            control,
            stop,
            thread: Mutex::new(Some(thread)),
            nas,
            accounting,
            spooled,
            servers,
            metrics,
        }))
    }

    /// The servers new requests go to (authentication, then accounting,
    /// in the configured order): whether each answers, and its requests in
    /// flight.
    pub fn servers(&self) -> Vec<ServerStats> {
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The NAS attributes sent with every request.
    pub fn nas(&self) -> &NasIdentity {
        &self.nas
    }

    /// Whether sessions are accounted (accounting servers configured).
    pub fn accounting(&self) -> bool {
        self.accounting
    }

    /// Accounting records on disk, not yet acknowledged.
    pub fn spooled(&self) -> usize {
        self.spooled.load(Ordering::Relaxed)
    }

    /// Requests waiting in the queues to the RADIUS thread: (Access-Requests,
    /// accounting records). Two atomic loads; for the metrics endpoint.
    pub fn queued(&self) -> (usize, usize) {
        let depth = |max: usize, free: usize| max.saturating_sub(free);
        (
            depth(self.jobs.max_capacity(), self.jobs.capacity()),
            depth(self.acct.max_capacity(), self.acct.capacity()),
        )
    }

    /// Hands an accounting record to the RADIUS thread without waiting.
    /// With the queue full the record is lost: counted
    /// (`radius_acct_queue_full`) and logged.
    pub fn account(&self, record: AcctRecord) {
        if !self.accounting {
            return;
        }
        if let Err(e) = self.acct.try_send(record) {
            let record = match e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            self.metrics.global().event(Event::RadiusAcctQueueFull);
            tracing::warn!(
                session = %record.session_id,
                kind = record.kind.as_str(),
                "accounting queue full: record lost"
            );
        }
    }

    /// Sends new requests to the servers of a reloaded `[radius]` (see
    /// the module doc, "Reload"); requests in flight finish where they
    /// are.
    pub fn reconfigure(&self, config: &RadiusSection) {
        let order = Control::Reconfigure {
            client: Box::new(client_config(config)),
            acct_timeout: config.acct_timeout,
        };
        if self.control.send(order).is_err() {
            tracing::warn!("the RADIUS thread is gone: new RADIUS settings not applied");
        }
    }

    /// Sends the accounting records queued so far, waits for their
    /// answers, then sends Accounting-Off, by `deadline` at the latest;
    /// then stops the thread. Records not acknowledged stay in the spool.
    pub fn shutdown(&self, deadline: Instant) {
        let (done, wait) = std::sync::mpsc::channel();
        if self
            .control
            .send(Control::Shutdown { deadline, done })
            .is_ok()
        {
            // The thread answers by the deadline; a dead one drops `done`.
            let margin = Duration::from_millis(100);
            let _ = wait.recv_timeout(deadline.saturating_duration_since(Instant::now()) + margin);
        }
        self.stop();
    }

    /// Stops the thread at once; requests still outstanding are answered
    /// "service unavailable", spooled records stay on disk. Idempotent.
    pub fn stop(&self) {
        self.stop.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for RadiusService {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Authenticator for RadiusService {
    fn authenticate(&self, request: AuthRequest, context: AuthContext, reply: AuthReply) {
        let global = self.metrics.global();
        let built = match mapping::access_request(&self.nas, &request, &context) {
            Ok(built) => built,
            Err(e) => {
                global.event(Event::RadiusRequestUnencodable);
                tracing::info!(user = %request.username, error = %e, "cannot put the credentials into an Access-Request");
                reply.send(AuthDecision::Reject(mapping::unavailable()));
                return;
            }
        };
        let pending = PendingAuth {
            credentials: request.credentials,
            user: request.username,
            reply: Some(reply),
            asked_at: Instant::now(),
        };
        let job = Job::Access {
            request: built,
            pending,
        };
        if let Err(e) = self.jobs.try_send(job) {
            // Full, or the thread is gone: the pending request inside is
            // dropped, which answers "service unavailable".
            global.event(match e {
                mpsc::error::TrySendError::Full(_) => Event::RadiusQueueFull,
                mpsc::error::TrySendError::Closed(_) => Event::RadiusUnavailable,
            });
        }
    }
}

/// A datagram from a server, as read.
struct Datagram {
    /// The client generation whose socket read it.
    generation: u64,
    socket: usize,
    server: SocketAddr,
    from: SocketAddr,
    data: Vec<u8>,
}

/// The thread's state.
struct Runner {
    /// The client new requests go to.
    client: Client<Tag>,
    /// Its servers' states, published for [`RadiusService::servers`]
    /// when they change, and what was last published.
    servers: Arc<Mutex<Vec<ServerStats>>>,
    published: Vec<ServerStats>,
    /// Its generation: one more per reload; sockets belong to one.
    generation: u64,
    /// Clients replaced by a reload, kept until their requests are done.
    retiring: Vec<(u64, Client<Tag>)>,
    sockets: Sockets,
    spool: Option<Spool>,
    spooled: Arc<AtomicUsize>,
    /// Spooled records waiting to be sent again, by when.
    waiting: BTreeMap<(Instant, u64), PendingAcct>,
    waiting_seq: u64,
    /// Accounting requests the client has, not yet answered or failed.
    acct_in_flight: usize,
    acct_timeout: Duration,
    nas: NasIdentity,
    metrics: Metrics,
}

/// Where a shutdown is.
enum Draining {
    No,
    /// Sending what is queued and waiting for the answers.
    Records {
        deadline: Instant,
        done: std::sync::mpsc::Sender<()>,
    },
    /// Accounting-Off sent; waiting for its answer.
    Off {
        deadline: Instant,
        done: std::sync::mpsc::Sender<()>,
    },
}

impl Runner {
    /// Publishes the servers' states when they changed (the lock is
    /// taken only then).
    fn publish_servers(&mut self) {
        if self.published.iter().copied().eq(self.client.servers()) {
            return;
        }
        self.published.clear();
        self.published.extend(self.client.servers());
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone_from(&self.published);
    }

    /// The loop: requests in, datagrams out and in, timers, answers back
    /// through each request's reply.
    async fn run(
        mut self,
        mut jobs: mpsc::Receiver<Job>,
        mut acct: mpsc::Receiver<AcctRecord>,
        mut control: mpsc::UnboundedReceiver<Control>,
        stop: Arc<Notify>,
    ) {
        let (datagram_tx, mut datagrams) = mpsc::channel::<Datagram>(DATAGRAM_QUEUE);
        let mut draining = Draining::No;
        loop {
            while let Some(transmit) = self.client.poll_transmit() {
                self.sockets
                    .send(self.generation, &transmit, &datagram_tx, &self.metrics)
                    .await;
            }
            while let Some(event) = self.client.poll_event() {
                self.handle_event(event);
            }
            self.step_retiring(&datagram_tx).await;
            self.spooled
                .store(self.spool.as_ref().map_or(0, Spool::len), Ordering::Relaxed);
            self.publish_servers();
            draining = match draining {
                Draining::Records { deadline, done }
                    if acct.is_empty() && self.acct_in_flight == 0 =>
                {
                    self.send_unspooled(AcctRecord::nas(AcctKind::AccountingOff, unix_now()));
                    draining = Draining::Off { deadline, done };
                    // Transmit it, and take the client's events at once.
                    continue;
                }
                Draining::Off { done, .. } if self.acct_in_flight == 0 => {
                    let _ = done.send(());
                    break;
                }
                other => other,
            };
            let drain_deadline = match &draining {
                Draining::No => None,
                Draining::Records { deadline, .. } | Draining::Off { deadline, .. } => {
                    Some(*deadline)
                }
            };
            let retiring_timeout = self
                .retiring
                .iter()
                .filter_map(|(_, c)| c.poll_timeout())
                .min();
            let deadline = [
                self.client.poll_timeout(),
                retiring_timeout,
                self.waiting.keys().next().map(|(at, _)| *at),
                drain_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = stop.notified() => break,
                order = control.recv() => match order {
                    Some(Control::Shutdown { deadline, done }) => {
                        draining = Draining::Records { deadline, done };
                    }
                    Some(Control::Reconfigure { client, acct_timeout }) => {
                        self.reconfigure(*client, acct_timeout);
                    }
                    // The service is gone.
                    None => break,
                },
                job = jobs.recv() => match job {
                    Some(Job::Access { request, pending }) => self.send_access(request, pending),
                    None => break,
                },
                Some(record) = acct.recv() => {
                    let mut batch = vec![record];
                    while let Ok(record) = acct.try_recv() {
                        batch.push(record);
                    }
                    self.spool_and_send(batch);
                }
                Some(datagram) = datagrams.recv() => self.handle_datagram(datagram),
                () = sleep => {
                    let now = Instant::now();
                    self.client.handle_timeout(now);
                    for (_, client) in &mut self.retiring {
                        client.handle_timeout(now);
                    }
                    self.retry_due(now);
                    if drain_deadline.is_some_and(|at| now >= at) {
                        tracing::warn!(
                            in_flight = self.acct_in_flight,
                            spooled = self.spool.as_ref().map_or(0, Spool::len),
                            "shutdown: accounting not all acknowledged in time; the spool keeps it"
                        );
                        if let Draining::Records { done, .. } | Draining::Off { done, .. } = draining {
                            let _ = done.send(());
                        }
                        break;
                    }
                }
            }
        }
        // Outstanding requests are dropped with the client: each pending
        // authentication answers "service unavailable" (PendingAuth's
        // drop); spooled records stay on disk.
    }

    /// A reload: new requests go to a new client; the current one
    /// retires (see the module doc, "Reload").
    fn reconfigure(&mut self, config: ClientConfig, acct_timeout: Duration) {
        tracing::info!(
            auth_servers = ?config.auth_servers.iter().map(|s| s.addr).collect::<Vec<_>>(),
            acct_servers = ?config.acct_servers.iter().map(|s| s.addr).collect::<Vec<_>>(),
            "RADIUS client reconfigured: new requests go to these servers"
        );
        let old = std::mem::replace(&mut self.client, Client::new(config));
        self.retiring.push((self.generation, old));
        self.generation += 1;
        self.acct_timeout = acct_timeout;
    }

    /// Sends and reports what the retiring clients have; drops those
    /// with nothing left, and their sockets.
    async fn step_retiring(&mut self, datagram_tx: &mpsc::Sender<Datagram>) {
        let mut index = 0;
        while index < self.retiring.len() {
            let generation = self.retiring[index].0;
            while let Some(transmit) = self.retiring[index].1.poll_transmit() {
                self.sockets
                    .send(generation, &transmit, datagram_tx, &self.metrics)
                    .await;
            }
            while let Some(event) = self.retiring[index].1.poll_event() {
                self.handle_event(event);
            }
            if self.retiring[index].1.is_idle() {
                self.retiring.swap_remove(index);
                self.sockets.close_generation(generation);
                tracing::debug!(generation, "RADIUS client retired: its requests are done");
            } else {
                index += 1;
            }
        }
    }

    fn send_access(&mut self, request: client::Request, pending: PendingAuth) {
        if let Err(e) = self
            .client
            .send(Instant::now(), request, Tag::Auth(pending))
        {
            // The tag was dropped with the refused request: answered
            // "service unavailable".
            self.metrics.global().event(match e {
                client::SendError::QueueFull => Event::RadiusQueueFull,
                _ => Event::RadiusRequestUnencodable,
            });
            tracing::debug!(error = %e, "RADIUS request refused by the client");
        }
    }

    /// Spools a batch of records (one synced file for all), then sends
    /// them.
    fn spool_and_send(&mut self, batch: Vec<AcctRecord>) {
        let global = self.metrics.global();
        let ids = match self.spool.as_mut().map(|s| s.store_batch(&batch)) {
            Some(Ok(ids)) => ids,
            Some(Err(e)) => {
                global.event(Event::RadiusAcctSpoolError);
                tracing::error!(error = %e, "cannot spool accounting records; sending them anyway");
                vec![None; batch.len()]
            }
            None => vec![None; batch.len()],
        };
        let spooled = ids.iter().filter(|id| id.is_some()).count();
        global.events_n(Event::RadiusAcctSpooled, spooled as u64);
        if self.spool.is_some() {
            global.events_n(Event::RadiusAcctSpoolFull, (batch.len() - spooled) as u64);
        }
        for (record, spooled) in batch.into_iter().zip(ids) {
            self.send_acct(PendingAcct {
                spooled,
                record,
                failures: 0,
            });
        }
    }

    /// Accounting-On/Off: sent once (with the client's retries and
    /// failover), never spooled.
    fn send_unspooled(&mut self, record: AcctRecord) {
        self.send_acct(PendingAcct {
            spooled: None,
            record,
            failures: 0,
        });
    }

    fn send_acct(&mut self, pending: PendingAcct) {
        if !self.client.has_room(ServerRole::Acct) {
            return self.wait_or_lose(pending, NO_ROOM_DELAY);
        }
        let attrs = pending.record.attributes(&self.nas, unix_now());
        let request = client::Request::accounting(attrs);
        match self
            .client
            .send(Instant::now(), request, Tag::Acct(pending))
        {
            Ok(_) => self.acct_in_flight += 1,
            Err(e) => {
                // Only an oversized record (Class attributes adding up
                // beyond 4096 octets) gets here: has_room said yes.
                self.metrics.global().event(Event::RadiusAcctLost);
                tracing::error!(error = %e, "accounting record refused by the client: lost");
            }
        }
    }

    /// A spooled record waits `delay` and is sent again; one that is not
    /// spooled is lost (counted).
    fn wait_or_lose(&mut self, pending: PendingAcct, delay: Duration) {
        if pending.spooled.is_none() {
            if pending.record.kind.is_session() {
                self.metrics.global().event(Event::RadiusAcctLost);
            } else {
                self.metrics.global().event(Event::RadiusAcctNasUnanswered);
            }
            tracing::warn!(
                session = %pending.record.session_id,
                kind = pending.record.kind.as_str(),
                "accounting record not delivered and not spooled: lost"
            );
            return;
        }
        self.waiting_seq += 1;
        self.waiting
            .insert((Instant::now() + delay, self.waiting_seq), pending);
    }

    /// Sends the waiting records whose time has come.
    fn retry_due(&mut self, now: Instant) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let pending = entry.remove();
            self.send_acct(pending);
        }
    }

    fn handle_datagram(&mut self, datagram: Datagram) {
        let client = if datagram.generation == self.generation {
            Some(&mut self.client)
        } else {
            self.retiring
                .iter_mut()
                .find(|(generation, _)| *generation == datagram.generation)
                .map(|(_, client)| client)
        };
        let Some(client) = client else {
            // A late answer to a client already retired.
            self.metrics.global().event(Event::RadiusResponseDropped);
            return;
        };
        let result = client.handle_datagram(
            Instant::now(),
            datagram.from,
            datagram.socket,
            &datagram.data,
        );
        if let Err(reason) = result {
            self.metrics.global().event(Event::RadiusResponseDropped);
            tracing::debug!(server = %datagram.server, from = %datagram.from, reason = reason.as_str(), "RADIUS datagram dropped");
        }
    }

    /// Acts on one of the client's events.
    fn handle_event(&mut self, event: client::Event<Tag>) {
        let global = self.metrics.global();
        match event {
            client::Event::Response { tag, response, .. } => match tag {
                Tag::Auth(pending) => auth_answer(pending, &response, &self.metrics),
                Tag::Acct(pending) => {
                    self.acct_in_flight = self.acct_in_flight.saturating_sub(1);
                    global.event(Event::RadiusAcctAcknowledged);
                    if let (Some(id), Some(spool)) = (pending.spooled, self.spool.as_mut()) {
                        if let Err(e) = spool.acknowledge(id) {
                            global.event(Event::RadiusAcctSpoolError);
                            tracing::error!(error = %e, "cannot remove an acknowledged accounting record; it will be sent again");
                        }
                    }
                }
            },
            client::Event::Failed { tag, reason, .. } => match tag {
                Tag::Auth(pending) => {
                    global.event(Event::RadiusTimeout);
                    global.radius_auth(RadiusAuthResult::NoAnswer, pending.asked_at.elapsed());
                    tracing::info!(user = %pending.user, reason = reason.as_str(), "no answer from any RADIUS server");
                    pending.answer(AuthDecision::Reject(mapping::unavailable()));
                }
                Tag::Acct(mut pending) => {
                    self.acct_in_flight = self.acct_in_flight.saturating_sub(1);
                    global.event(Event::RadiusAcctFailed);
                    let delay = retry_delay(self.acct_timeout, pending.failures);
                    pending.failures = pending.failures.saturating_add(1);
                    tracing::debug!(
                        session = %pending.record.session_id,
                        kind = pending.record.kind.as_str(),
                        reason = reason.as_str(),
                        retry_in = ?delay,
                        "no accounting server answered"
                    );
                    self.wait_or_lose(pending, delay);
                }
            },
            client::Event::ServerDown { addr, role } => {
                global.event(Event::RadiusServerDown);
                tracing::warn!(server = %addr, role = role.as_str(), "RADIUS server not answering: failing over");
            }
            client::Event::ServerUp { addr, role } => {
                global.event(Event::RadiusServerUp);
                tracing::info!(server = %addr, role = role.as_str(), "RADIUS server answering again");
            }
        }
    }
}

/// How long a spooled record waits after its `failures`-th failed request:
/// `base` doubled per earlier failure, at most [`MAX_RETRY_DELAY`].
fn retry_delay(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32 << failures.min(16))
        .min(MAX_RETRY_DELAY)
}

/// Turns an Access-Accept or Access-Reject into the session's decision.
fn auth_answer(pending: PendingAuth, response: &client::Response, metrics: &Metrics) {
    let global = metrics.global();
    let packet = response.packet();
    let result = match response.code() {
        Code::AccessAccept => RadiusAuthResult::Accept,
        Code::AccessReject => RadiusAuthResult::Reject,
        _ => RadiusAuthResult::Other,
    };
    global.radius_auth(result, pending.asked_at.elapsed());
    match response.code() {
        Code::AccessAccept => {
            let keys: DecryptedKeys = response.mppe_keys().map(|r| r.map_err(|_| ()));
            let usable = mapping::accept(&packet.attributes, &pending.credentials, keys).and_then(
                |(mut accept, ignored)| {
                    if let Credentials::Eap { .. } = pending.credentials {
                        let key =
                            |ms_type| response.decrypt_ms_key(ms_type).map(|r| r.map_err(|_| ()));
                        accept.eap_msk = Some(mapping::eap_msk(
                            key(ms::MPPE_RECV_KEY),
                            key(ms::MPPE_SEND_KEY),
                        )?);
                    }
                    Ok((accept, ignored))
                },
            );
            match usable {
                Ok((accept, ignored)) => {
                    global.event(Event::RadiusAccept);
                    global.events_n(Event::RadiusAttributeIgnored, ignored as u64);
                    pending.answer(AuthDecision::Accept(accept));
                }
                Err(e) => {
                    global.event(Event::RadiusAcceptUnusable);
                    tracing::warn!(user = %pending.user, error = %e, "RADIUS Access-Accept unusable: refusing the session");
                    pending.answer(AuthDecision::Reject(mapping::unavailable()));
                }
            }
        }
        Code::AccessReject => {
            global.event(Event::RadiusReject);
            let reject = mapping::reject(&packet.attributes);
            tracing::debug!(user = %pending.user, reason = reject.reason.as_str(), "RADIUS Access-Reject");
            pending.answer(AuthDecision::Reject(reject));
        }
        Code::AccessChallenge if matches!(pending.credentials, Credentials::Eap { .. }) => {
            match mapping::challenge(&packet.attributes) {
                Some(challenge) => {
                    global.event(Event::RadiusChallenge);
                    pending.answer(AuthDecision::Challenge(challenge));
                }
                None => {
                    global.event(Event::RadiusUnexpectedCode);
                    tracing::warn!(user = %pending.user, "RADIUS Access-Challenge without an EAP-Message: refusing the session");
                    pending.answer(AuthDecision::Reject(mapping::unavailable()));
                }
            }
        }
        code => {
            // Access-Challenge for a method other than relayed EAP: the
            // PPP methods have no second round.
            global.event(Event::RadiusUnexpectedCode);
            tracing::warn!(user = %pending.user, ?code, "RADIUS answered with a code sstpd cannot use");
            pending.answer(AuthDecision::Reject(mapping::unavailable()));
        }
    }
}

/// The UDP sockets, one per client generation, server and client socket
/// index, opened when the client first sends on one; each has a task
/// reading it. A generation has sockets of its own because identifiers
/// are per socket, and two clients must never hand out the same one.
#[derive(Default)]
struct Sockets {
    open: HashMap<(u64, SocketAddr, usize), (Arc<UdpSocket>, tokio::task::AbortHandle)>,
}

impl Sockets {
    async fn send(
        &mut self,
        generation: u64,
        transmit: &client::Transmit,
        datagrams: &mpsc::Sender<Datagram>,
        metrics: &Metrics,
    ) {
        let key = (generation, transmit.server, transmit.socket);
        let socket = match self.open.get(&key) {
            Some((socket, _)) => socket.clone(),
            None => match open_socket(transmit.server).await {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    let reader = tokio::spawn(read_socket(
                        socket.clone(),
                        SocketOrigin {
                            generation,
                            index: transmit.socket,
                            server: transmit.server,
                        },
                        datagrams.clone(),
                        metrics.clone(),
                    ));
                    self.open
                        .insert(key, (socket.clone(), reader.abort_handle()));
                    socket
                }
                Err(e) => {
                    metrics.global().event(Event::RadiusSendError);
                    tracing::warn!(server = %transmit.server, error = %e, "cannot open a RADIUS socket");
                    return;
                }
            },
        };
        // A UDP send waits only while the socket's buffer is full (tokio's
        // try_send_to would also refuse a socket the reactor has not yet
        // seen writable, losing every new socket's first datagram).
        if let Err(e) = socket.send_to(&transmit.payload, transmit.server).await {
            metrics.global().event(Event::RadiusSendError);
            tracing::debug!(server = %transmit.server, error = %e, "RADIUS send failed");
        }
    }

    /// Closes the sockets of a retired client (their reading tasks end).
    fn close_generation(&mut self, generation: u64) {
        self.open.retain(|(g, _, _), (_, reader)| {
            let keep = *g != generation;
            if !keep {
                reader.abort();
            }
            keep
        });
    }
}

/// Which socket a reading task reads.
#[derive(Clone, Copy)]
struct SocketOrigin {
    generation: u64,
    index: usize,
    server: SocketAddr,
}

async fn open_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    UdpSocket::bind(any).await
}

/// Reads one socket for as long as the thread runs.
async fn read_socket(
    socket: Arc<UdpSocket>,
    origin: SocketOrigin,
    datagrams: mpsc::Sender<Datagram>,
    metrics: Metrics,
) {
    let SocketOrigin {
        generation,
        index,
        server,
    } = origin;
    let mut buf = vec![0u8; MAX_PACKET + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let datagram = Datagram {
                    generation,
                    socket: index,
                    server,
                    from,
                    data: buf[..n].to_vec(),
                };
                match datagrams.try_send(datagram) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics.global().event(Event::RadiusRxDropped)
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            // ICMP port unreachable from a server that is down shows up
            // as ECONNREFUSED on some kernels: the client's timers handle
            // the silence.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                metrics.global().event(Event::RadiusSendError);
                tracing::debug!(%server, error = %e, "RADIUS socket read failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_records_back_off_to_a_minute() {
        let base = Duration::from_secs(5);
        let delays: Vec<u64> = (0..6).map(|f| retry_delay(base, f).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(retry_delay(base, u32::MAX), MAX_RETRY_DELAY);
    }
}
