//! One worker per core: a pinned thread running its own tokio-uring
//! runtime, with its own `SO_REUSEPORT` listeners and its own queue of the
//! multi-queue TUN device.
//!
//! A session lives on the worker that accepted it, from accept to close: its
//! TLS state, protocol state and buffers are only ever touched by that
//! thread, so the per-packet path takes no locks.
//!
//! Packets read from this worker's TUN queue are routed by destination
//! through the lock-free [`SessionTable`].
//! When the owning session lives on another worker, the packet is handed over
//! through that worker's [`Mailbox`] (crossbeam
//! channel plus an eventfd the receiving io_uring waits on), in batches: all
//! packets read in one scheduler tick go out as one message per destination
//! worker.

pub(crate) mod admission;
pub mod control;
pub(crate) mod dae;
pub(crate) mod handover;
pub mod mailbox;
mod session;
mod slots;
mod supervise;
mod tun_io;
mod tun_offload;

pub(crate) use session::{user_timeout_for, InheritedSocketOptions};

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::TcpListener as StdTcpListener;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::aaa::local::LocalUsers;
use crate::aaa::throttle::{AuthThrottle, ThrottleKind};
use crate::config::Config;
use crate::metrics::{Event, Metrics, WorkerMetrics};
use crate::proto::auth::{AuthDecision, AuthRequestId, Authenticator};
use crate::proto::session::SessionConfig;
use crate::proto::sstp::CertHashes;
use crate::routing::framed_route::{FramedRouteTable, RouteReader};
use crate::routing::session_table::{dst_of_ipv4_packet, SessionRef, SessionTable};
use crate::tls::ktls::KtlsPlan;
#[cfg(test)]
use crate::worker::mailbox::SendBatchErrorKind;
use crate::worker::mailbox::{Mailbox, MailboxSender};

use crate::tun::PacketQueue;
pub(crate) use session::SessionCtx;
use slots::Slots;
pub(crate) use supervise::{Fatal, Heartbeats};

/// What workers send each other. Packets go in batches on the mailbox's
/// bounded lane (dropped and counted when it is full); the rest are
/// control messages, sent with [`send_control`] on its control lane, which
/// never drops.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// IP packets read from TUN for sessions living on the receiving
    /// worker (see [`handover`]). With segmentation offload each carries
    /// its read's virtio-net header (a super-packet, or a packet whose
    /// checksum may be partial): the receiving worker cuts it to the
    /// session's MRU.
    Packets(handover::PacketBatch),
    /// An [`Authenticator`]'s answer for a session of the receiving worker,
    /// to the request named `request` (the session applies it to that
    /// request only; control).
    Auth {
        to: SessionRef,
        request: AuthRequestId,
        decision: AuthDecision,
    },
    /// Close a session of the receiving worker, counting `reason` as its
    /// close reason (an older session whose address a newer one of the
    /// same user took over; control).
    Disconnect { to: SessionRef, reason: Event },
    /// A dynamic authorization action (RFC 5176) for a session of the
    /// receiving worker, confirmed through `reply` (control).
    Dae {
        to: SessionRef,
        action: crate::aaa::dae::DaeAction,
        reply: crate::aaa::dae::ActionReply,
    },
    /// Describe every session of the receiving worker (`sstpctl
    /// sessions`; control).
    ListSessions {
        reply: crossbeam_channel::Sender<control::WorkerSessions>,
    },
    /// The users were reloaded: close the sessions of users that are gone
    /// (control).
    UsersReloaded,
    /// Disconnect every session and stop (control).
    Shutdown,
}

/// What a reload may replace: loaded once per accepted connection (one
/// atomic load at accept, none per packet), so a connection sees one
/// consistent snapshot from its TLS handshake to its crypto binding.
#[derive(Debug)]
pub(crate) struct Live {
    /// The configuration in force: the file's last good version, with the
    /// restart-only keys kept as the server started (see `app::reload`).
    pub config: Arc<Config>,
    pub session_config: SessionConfig,
    pub tls: Arc<rustls::ServerConfig>,
    /// Hashes of the certificate `tls` serves (for the crypto binding).
    pub cert: CertHashes,
}

/// Everything the workers share (read-only after startup, swapped
/// whole by a reload, or internally synchronised).
pub(crate) struct Shared {
    /// The configuration as the server started: read here only what a
    /// reload cannot change (listen addresses, TUN, pools, the per-packet
    /// `ipv4.client_to_client`, ...); the rest comes from [`Shared::live`].
    pub config: Arc<Config>,
    /// Replaced by a reload; see [`Live`].
    pub live: arc_swap::ArcSwap<Live>,
    pub ktls: KtlsPlan,
    /// The segmentation offloads the kernel took for the TUN device
    /// (`tun.offload = "auto"`), or `None`: one packet per read and write.
    pub tun_offloads: Option<crate::tun::TunOffloads>,
    /// The kernel's drop filter for sessions whose queue is full, where
    /// `tun.drop_filter` is on and the kernel took it.
    pub drop_filter: Option<Arc<crate::tun::drop_filter::DropFilter>>,
    /// The device's queue steering by session owner, where `tun.steering`
    /// is on, the device has several queues and the kernel took it.
    pub steering: Option<Arc<crate::tun::steering::Steering>>,
    /// The TUN device's kernel counters.
    pub tun_stats: Option<Arc<crate::tun::DeviceStats>>,
    pub authenticator: Arc<dyn Authenticator>,
    /// The local user store (sessions of users removed from it are closed
    /// on reload).
    pub users: Arc<LocalUsers>,
    /// Back-off for password guessing.
    pub throttle: AuthThrottle,
    /// Acct-Session-Ids for new sessions.
    pub session_ids: crate::aaa::session_id::SessionIds,
    /// The RADIUS client, when authentication or accounting uses it.
    pub radius: Option<Arc<crate::aaa::radius::RadiusService>>,
    /// The authenticated sessions for dynamic authorization, when its
    /// listener runs (`[[radius.dae.client]]` configured).
    pub dae_sessions: Option<Arc<crate::aaa::dae::SessionRegistry>>,
    /// Connection and pre-authentication caps.
    pub admission: Arc<admission::Admission>,
    pub pools: Arc<crate::routing::ServerPools>,
    pub table: SessionTable,
    /// Prefixes routed behind clients (RADIUS Framed-Route); the TUN path
    /// asks it when `table` has no owner.
    pub framed_routes: Arc<FramedRouteTable>,
    pub metrics: Metrics,
    pub mailboxes: Vec<MailboxSender<WorkerMsg>>,
    /// The bound on packets waiting for each worker, and the way home of
    /// their buffers (see [`handover`]).
    pub handover: handover::HandoverLanes,
    /// Set once shutdown has begun: stop accepting.
    pub stopping: AtomicBool,
    /// Set while the node drains (`sstpctl drain`): new connections are
    /// refused (`app::drain`).
    pub draining: AtomicBool,
    /// Sessions still on the drain's schedule.
    pub drain_pending: std::sync::atomic::AtomicUsize,
    /// A worker died or lost its TUN queue: the server must stop.
    pub fatal: Fatal,
    /// Each worker's last sign of life (for systemd's watchdog).
    pub heartbeats: Heartbeats,
    /// The socket options accepted connections get from their listener.
    pub inherited_socket_options: InheritedSocketOptions,
}

/// The per-worker resources created before the thread starts.
pub(crate) struct WorkerSetup {
    pub index: usize,
    /// One per `ServerSection::listeners()`, in that order.
    pub listeners: Vec<StdTcpListener>,
    pub tun_queue: std::fs::File,
    pub mailbox: Mailbox<WorkerMsg>,
    pub core: Option<core_affinity::CoreId>,
}

/// Starts worker `setup.index` on its own thread.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    setup: WorkerSetup,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sstpd-worker-{}", setup.index))
        .spawn(move || {
            if let Some(core) = setup.core {
                if !core_affinity::set_for_current(core) {
                    tracing::warn!(
                        worker = setup.index,
                        core = core.id,
                        "could not pin worker to its core"
                    );
                }
            }
            let index = setup.index;
            let watched = shared.clone();
            supervise::watch_worker(index, &shared.fatal, &shared.stopping, move || {
                crate::sys::uring::start(crate::sys::uring::DEFAULT_ENTRIES, async move {
                    Worker::run(watched, setup).await
                })
                .and_then(|run| run)
            });
        })
}

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    sessions: RefCell<Slots<SessionCtx>>,
    tun: crate::tun::UringQueue,
    tun_queue: RefCell<PacketQueue>,
    tun_wake: Notify,
    /// Set when the TUN queue carries virtio-net headers (segmentation offload).
    offload: Option<tun_offload::OffloadPath>,
    /// Signalled when the TUN queue drains below its low-water mark.
    tun_space: Notify,
    /// Packets for other workers, collected during one tick.
    outbound: RefCell<Vec<handover::PacketBatch>>,
    flush_wake: Notify,
    mailbox: RefCell<Mailbox<WorkerMsg>>,
    stopping: Cell<bool>,
    /// Signalled whenever a session ends (shutdown waits on it).
    session_ended: Notify,
    /// Sessions of this worker that ended since its freed memory was last
    /// given back ([`return_freed_memory`]).
    ended_since_memory_return: Cell<u64>,
    /// Rate limits of the refusal log lines (the counters have them all).
    refusal_logs: RefCell<admission::RefusalLogs>,
    /// Rate limit of the "throttle engaged" log line.
    throttle_log: RefCell<admission::RateLimitedLog>,
    /// TUN reads that failed in a row (all of this worker's readers).
    tun_read_failures: Cell<u32>,
    /// This worker's view of the routed prefixes.
    route_reader: RefCell<RouteReader>,
    /// Connections refused while draining that are being closed gently.
    gentle_refusals: Cell<usize>,
}

/// Marks the worker stopping when dropped: at the end of [`Worker::run`],
/// however it ends.
struct StopOnExit(Rc<Worker>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.stopping.set(true);
    }
}

impl Worker {
    async fn run(shared: Arc<Shared>, setup: WorkerSetup) -> io::Result<()> {
        let workers = shared.mailboxes.len();
        let mtu = usize::from(shared.config.tun.mtu);
        let worker = Rc::new(Worker {
            index: setup.index,
            sessions: RefCell::new(Slots::new(setup.index as u16)),
            tun: crate::tun::UringQueue::new(setup.tun_queue),
            tun_queue: RefCell::new(tun_io::write_queue(mtu)),
            tun_wake: Notify::new(),
            offload: shared.tun_offloads.map(tun_offload::OffloadPath::new),
            tun_space: Notify::new(),
            outbound: RefCell::new(
                (0..workers)
                    .map(|_| handover::PacketBatch::new(setup.index))
                    .collect(),
            ),
            flush_wake: Notify::new(),
            mailbox: RefCell::new(setup.mailbox),
            stopping: Cell::new(false),
            session_ended: Notify::new(),
            ended_since_memory_return: Cell::new(0),
            refusal_logs: RefCell::default(),
            throttle_log: RefCell::new(admission::RateLimitedLog::new(
                admission::REFUSAL_LOG_INTERVAL,
            )),
            tun_read_failures: Cell::new(0),
            route_reader: RefCell::new(shared.framed_routes.reader()),
            gentle_refusals: Cell::new(0),
            shared,
        });
        // However `run` ends, its tasks are dropped with the runtime after
        // it: the worker is stopping then (see `spawn_watched`).
        let _stopping = StopOnExit(worker.clone());
        let mut listener_wait = worker.mailbox.borrow().listener()?;

        // In the order app::start bound them.
        let options = worker.shared.config.server.listeners();
        for (listener, options) in setup.listeners.into_iter().zip(options) {
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            let what = format!("its accept task on {}", options.address);
            let task = session::accept_loop(worker.clone(), listener, std::rc::Rc::new(options));
            worker.spawn_watched(what, task);
        }
        // One reader: see `tun_io::tun_reader` for why not more.
        worker.spawn_watched("its TUN reader".into(), tun_io::tun_reader(worker.clone()));
        worker.spawn_watched("its TUN writer".into(), tun_io::tun_writer(worker.clone()));
        worker.spawn_watched("its hand-over".into(), flush_outbound(worker.clone()));
        tokio_uring::spawn(stats_logger(worker.clone()));
        tokio_uring::spawn(heartbeat(worker.clone()));
        tokio_uring::spawn(return_freed_memory(worker.clone()));

        // The mailbox loop is the worker's main task: it ends the runtime
        // once shutdown has drained every session.
        loop {
            listener_wait.wait().await?;
            let mut shutdown = false;
            let mut messages = Vec::new();
            worker
                .mailbox
                .borrow_mut()
                .drain(&mut |msg| messages.push(msg));
            for msg in messages {
                match msg {
                    WorkerMsg::Packets(batch) => worker.deliver_handed_over(batch),
                    WorkerMsg::Auth {
                        to,
                        request,
                        decision,
                    } => {
                        let session = worker.sessions.borrow().get(to).cloned();
                        match session {
                            Some(s) => s.auth_decision(&worker, request, decision),
                            None => worker.metrics().event(Event::AuthAnswerForClosedSession),
                        }
                    }
                    WorkerMsg::Disconnect { to, reason } => worker.disconnect(to, reason),
                    WorkerMsg::Dae { to, action, reply } => worker.dae_action(to, action, reply),
                    WorkerMsg::ListSessions { reply } => worker.list_sessions(reply),
                    WorkerMsg::UsersReloaded => worker.close_removed_users(),
                    WorkerMsg::Shutdown => shutdown = true,
                }
            }
            if shutdown {
                worker.shutdown().await;
                return Ok(());
            }
        }
    }

    /// Spawns one of the worker's own tasks, watched
    /// ([`supervise::watch_task`]): its end before the worker stops is
    /// fatal, for the process to exit and its service manager to restart
    /// it.
    fn spawn_watched(self: &Rc<Self>, what: String, task: impl Future<Output = ()> + 'static) {
        let worker = self.clone();
        let shared = self.shared.clone();
        let what = format!("worker {}: {what}", self.index);
        tokio_uring::spawn(supervise::watch_task(
            what,
            move || worker.stopping.get(),
            move |error| shared.fatal.report(error),
            task,
        ));
    }

    /// Whether the node drains (`sstpctl drain`): new connections are
    /// refused.
    fn draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    fn metrics(&self) -> &WorkerMetrics {
        self.shared.metrics.worker(self.index)
    }

    /// Counts a connection refused at accept; logs it at most once a
    /// second per reason.
    fn refused(&self, refusal: admission::Refusal, peer: std::net::SocketAddr) {
        self.metrics().event(refusal);
        let due = self
            .refusal_logs
            .borrow_mut()
            .due(refusal, std::time::Instant::now());
        if let Some(suppressed) = due {
            tracing::warn!(
                %peer,
                limit = refusal.key(),
                suppressed,
                "refusing connection: {} reached",
                refusal.key()
            );
        }
    }

    /// Counts a throttle engaging; logs it at most once a second.
    fn throttle_engaged(
        &self,
        kind: ThrottleKind,
        source: std::net::IpAddr,
        user: &str,
        now: std::time::Instant,
    ) {
        self.metrics().event(match kind {
            ThrottleKind::Source => Event::AuthThrottleEngagedSource,
            ThrottleKind::User => Event::AuthThrottleEngagedUser,
        });
        if let Some(suppressed) = self.throttle_log.borrow_mut().due(now) {
            let source = crate::aaa::throttle::SourceKey::of(source);
            let lockout =
                humantime_serde::re::humantime::format_duration(self.shared.throttle.lockout());
            match kind {
                ThrottleKind::Source => tracing::warn!(
                    %source,
                    user,
                    suppressed,
                    "repeated authentication failures: source locked out for {lockout}"
                ),
                ThrottleKind::User => tracing::warn!(
                    %source,
                    user,
                    suppressed,
                    "repeated authentication failures: user locked out for {lockout}"
                ),
            }
        }
    }

    /// Sends the packets to `addr` (a route a session of this worker just
    /// took) to this worker's TUN queue ([`crate::tun::steering`]).
    fn steer(&self, addr: std::net::IpAddr) {
        if let Some(steering) = self.shared.steering.as_deref() {
            // Queue indexes are worker indexes, at most 256 (MAX_QUEUES).
            self.steer_to(steering, addr, self.index as u16);
        }
    }

    /// Steers `addr` to worker `queue`'s TUN queue; a refusal is counted.
    fn steer_to(
        &self,
        steering: &crate::tun::steering::Steering,
        addr: std::net::IpAddr,
        queue: u16,
    ) {
        if let Err(error) = steering.steer(addr, queue) {
            self.metrics().event(Event::TunSteeringSteerFailed);
            tracing::warn!(%addr, %error, "TUN steering: could not steer an address to its worker");
        }
    }

    /// Takes `addr` (a route a session of this worker just gave up) out of
    /// the TUN steering. A newer session (on any worker) may have taken
    /// the address and steered it between the route's removal and this;
    /// then it is steered to that session's worker again.
    fn unsteer(&self, addr: std::net::IpAddr) {
        let Some(steering) = self.shared.steering.as_deref() else {
            return;
        };
        if let Err(error) = steering.forget(addr) {
            self.metrics().event(Event::TunSteeringForgetFailed);
            tracing::warn!(%addr, %error, "TUN steering: could not forget an address");
        }
        if let Some(owner) = self.shared.table.lookup(addr) {
            self.steer_to(steering, addr, owner.worker);
        }
    }

    /// Closes `to` (on whichever worker it lives) for `reason`.
    fn disconnect(&self, to: SessionRef, reason: Event) {
        if usize::from(to.worker) == self.index {
            let session = self.sessions.borrow().get(to).cloned();
            if let Some(s) = session {
                s.close_for(self, reason);
            }
            return;
        }
        if let Some(mailbox) = self.shared.mailboxes.get(usize::from(to.worker)) {
            send_control(mailbox, WorkerMsg::Disconnect { to, reason });
        }
    }

    /// After a reload: closes the sessions whose user is no longer in the
    /// user store (policy: removing a user ends their sessions).
    fn close_removed_users(&self) {
        let sessions: Vec<_> = self.sessions.borrow().values().cloned().collect();
        for s in sessions {
            if !s.authenticated_locally() {
                // RADIUS users are not in the local store.
                continue;
            }
            let Some(user) = s.username() else { continue };
            if crate::proto::auth::PasswordStore::lookup(&*self.shared.users, &user).is_none() {
                tracing::info!(
                    user,
                    "user removed from the user store: closing the session"
                );
                s.close_for(self, Event::UserRemoved);
            }
        }
    }

    /// Disconnects every session (CALL_DISCONNECT after LCP terminate) and
    /// waits, within the configured bound, for them to finish.
    async fn shutdown(&self) {
        self.stopping.set(true);
        let sessions: Vec<_> = self.sessions.borrow().values().cloned().collect();
        tracing::info!(
            worker = self.index,
            sessions = sessions.len(),
            "shutting down"
        );
        for s in &sessions {
            s.close(self);
        }
        drop(sessions);
        let deadline = tokio::time::Instant::now() + self.shared.config.server.shutdown_timeout;
        while !self.sessions.borrow().is_empty() {
            let ended = self.session_ended.notified();
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                let left = self.sessions.borrow().len();
                tracing::warn!(
                    worker = self.index,
                    sessions = left,
                    "shutdown timeout: dropping the rest"
                );
                self.metrics()
                    .events_n(Event::ShutdownForcedClose, left as u64);
                break;
            }
        }
    }

    /// The session a packet's destination belongs to: the exact table
    /// first (a tunnel address; one atomic load), then the prefixes routed
    /// behind clients (one more load while none is live).
    #[inline]
    fn destination_owner(&self, packet: &[u8]) -> Option<SessionRef> {
        if let Some(owner) = self.shared.table.lookup_packet_destination(packet) {
            return Some(owner);
        }
        let dst = dst_of_ipv4_packet(packet)?;
        self.shared
            .framed_routes
            .lookup(&mut self.route_reader.borrow_mut(), dst)
    }

    /// Routes a packet read from TUN (or handed over by another worker) to
    /// the session that owns its destination.
    fn route_from_tun(&self, packet: &[u8]) {
        let Some(owner) = self.destination_owner(packet) else {
            WorkerMetrics::add(&self.metrics().tun_no_session, 1);
            return;
        };
        if usize::from(owner.worker) == self.index {
            self.deliver_to_session(owner, packet);
            return;
        }
        self.hand_over(owner, None, packet);
    }

    /// Adds a packet for a session of another worker to this tick's batch
    /// for that worker; a batch that reached
    /// [`handover::MAX_BATCH_BYTES`] goes at once.
    fn hand_over(
        &self,
        to: SessionRef,
        header: Option<crate::tun::offload::VirtioNetHdr>,
        packet: &[u8],
    ) {
        let target = usize::from(to.worker);
        let full = {
            let mut outbound = self.outbound.borrow_mut();
            let Some(batch) = outbound.get_mut(target) else {
                WorkerMetrics::add(&self.metrics().tun_no_session, 1);
                return;
            };
            if batch.is_empty() {
                self.flush_wake.notify_one();
            }
            batch.push(to, header, packet);
            WorkerMetrics::add(&self.metrics().handoff_packets, 1);
            batch.bytes_len() >= handover::MAX_BATCH_BYTES
        };
        if full {
            self.send_handover(target);
        }
    }

    /// Sends this tick's batch for worker `target`, if it holds packets.
    fn send_handover(&self, target: usize) {
        let batch = {
            let mut outbound = self.outbound.borrow_mut();
            let Some(slot) = outbound.get_mut(target) else {
                return;
            };
            if slot.is_empty() {
                return;
            }
            std::mem::replace(slot, self.shared.handover.fresh(self.index))
        };
        let mailbox = &self.shared.mailboxes[target];
        if let Err(dropped) = self.shared.handover.send(target, batch, mailbox) {
            self.metrics().events_n(dropped.event, dropped.packets);
        }
    }

    /// Delivers the packets another worker handed over, then sends their
    /// buffers back to it.
    fn deliver_handed_over(&self, batch: handover::PacketBatch) {
        self.shared
            .handover
            .deliver(self.index, batch, |to, header, packet| match header {
                Some(header) => self.deliver_offloaded(to, header, packet),
                None => self.deliver_to_session(to, packet),
            });
    }

    fn deliver_to_session(&self, to: SessionRef, packet: &[u8]) {
        let session = self.sessions.borrow().get(to).cloned();
        match session {
            Some(s) => s.send_ip(self, packet),
            None => WorkerMetrics::add(&self.metrics().tun_no_session, 1),
        }
    }

    /// Queues a packet from a client for the TUN device (with offload, into
    /// the batch that [`Worker::end_tun_batch`] queues).
    fn write_to_tun(&self, packet: &[u8]) {
        if let Some(offload) = &self.offload {
            self.coalesce_for_tun(offload, packet);
        } else if self.tun_queue.borrow_mut().push(packet) {
            self.tun_wake.notify_one();
        } else {
            WorkerMetrics::add(&self.metrics().tun_write_queue_full, 1);
        }
    }
}

/// Sends the packets collected for other workers, once per scheduler tick.
async fn flush_outbound(worker: Rc<Worker>) {
    loop {
        worker.flush_wake.notified().await;
        // Let every other ready task (TUN reads completing in the same
        // io_uring batch) add to the batches first.
        tokio::task::yield_now().await;
        #[cfg(any(test, feature = "testing"))]
        injected_panic(crate::testing::faults::WorkerTask::HandOver);
        let targets = worker.outbound.borrow().len();
        for target in 0..targets {
            worker.send_handover(target);
        }
    }
}

/// Test builds: panics if a test asked `task` to
/// ([`crate::testing::faults`]). Not compiled into the shipped server.
#[cfg(any(test, feature = "testing"))]
#[track_caller]
fn injected_panic(task: crate::testing::faults::WorkerTask) {
    use crate::testing::faults::WorkerTask;
    if crate::testing::faults::worker_task_should_panic(task) {
        let what = match task {
            WorkerTask::Accept => "accept loop",
            WorkerTask::TunReader => "TUN reader",
            WorkerTask::TunWriter => "TUN writer",
            WorkerTask::HandOver => "hand-over",
        };
        panic!("injected panic in the worker's {what}");
    }
}

/// Logs this worker's share of the counters now and then (debug level), so
/// an operator can see it is alive.
async fn stats_logger(worker: Rc<Worker>) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        if worker.index == 0 {
            tracing::info!(stats = %worker.shared.metrics.snapshot(), "server statistics");
        }
    }
}

/// Tells the supervisor, every [`supervise::HEARTBEAT_INTERVAL`], that
/// this worker's runtime still runs its tasks (spawned after the accept
/// loops: its first beat means the worker listens).
async fn heartbeat(worker: Rc<Worker>) {
    loop {
        worker
            .shared
            .heartbeats
            .beat(worker.index, std::time::Instant::now());
        tokio::time::sleep(supervise::HEARTBEAT_INTERVAL).await;
    }
}

/// How often a worker whose sessions ended gives their memory back.
const MEMORY_RETURN_INTERVAL: Duration = Duration::from_secs(2);

/// Every [`MEMORY_RETURN_INTERVAL`], if any of this worker's sessions
/// ended since the last time, gives the memory freed on this thread back
/// to the kernel ([`crate::sys::memory::return_freed_memory`]): otherwise
/// a worker left quiet after a storm keeps its peak RSS. The first
/// interval with no session ending after some did, it collects once more,
/// forced ([`crate::sys::memory::return_all_freed_memory`]): what the last
/// endings freed after the last plain collect goes back too. Under steady
/// churn sessions end in every interval, so the forced walk (longer, over
/// every page of the thread) runs only once the endings pause.
async fn return_freed_memory(worker: Rc<Worker>) {
    let mut endings_to_settle = false;
    loop {
        tokio::time::sleep(MEMORY_RETURN_INTERVAL).await;
        if worker.ended_since_memory_return.replace(0) > 0 {
            crate::sys::memory::return_freed_memory();
            endings_to_settle = true;
        } else if std::mem::take(&mut endings_to_settle) {
            crate::sys::memory::return_all_freed_memory();
        }
    }
}

/// Asks every worker to shut down.
pub(crate) fn broadcast_shutdown(shared: &Shared) {
    if shared.stopping.swap(true, Ordering::SeqCst) {
        return;
    }
    for mailbox in &shared.mailboxes {
        send_control(mailbox, WorkerMsg::Shutdown);
    }
}

/// Sends a control message (a later authentication answer, shutdown) on the
/// mailbox's control lane, which is never full: a lost answer would leave
/// its session waiting until it times out, a lost shutdown a worker
/// running. It fails only when the receiving worker is gone, and then
/// there is nobody left to tell.
pub(crate) fn send_control(mailbox: &MailboxSender<WorkerMsg>, msg: WorkerMsg) {
    if mailbox.send_control(msg).is_err() {
        tracing::debug!("control message for a worker that has stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::AuthAccept;

    fn session(slot: u32) -> SessionRef {
        SessionRef {
            worker: 0,
            slot,
            generation: 0,
        }
    }

    #[test]
    fn control_messages_get_through_a_mailbox_full_of_packets() {
        let (tx, mut rx) = crate::worker::mailbox::mailbox::<WorkerMsg>(2).unwrap();
        let mut packets = 0;
        loop {
            let mut handed = handover::PacketBatch::new(1);
            handed.push(session(1), None, &[0x45; 20]);
            let batch = vec![WorkerMsg::Packets(handed)];
            match tx.send_batch(batch) {
                Ok(()) => packets += 1,
                Err(e) => {
                    assert_eq!(e.kind, SendBatchErrorKind::Full);
                    break;
                }
            }
        }
        assert_eq!(packets, 2);
        send_control(
            &tx,
            WorkerMsg::Auth {
                to: session(7),
                request: AuthRequestId::from_raw(1),
                decision: AuthDecision::Accept(AuthAccept::default()),
            },
        );
        send_control(&tx, WorkerMsg::Shutdown);

        let mut got = Vec::new();
        while rx.drain(&mut |msg| got.push(msg)) > 0 {}
        let kinds: Vec<&str> = got
            .iter()
            .map(|msg| match msg {
                WorkerMsg::Packets(_) => "packets",
                WorkerMsg::Auth { .. } => "auth",
                WorkerMsg::Disconnect { .. } => "disconnect",
                WorkerMsg::Dae { .. } => "dae",
                WorkerMsg::ListSessions { .. } => "list_sessions",
                WorkerMsg::UsersReloaded => "users_reloaded",
                WorkerMsg::Shutdown => "shutdown",
            })
            .collect();
        // Control first: an answer is not held up behind a backlog of
        // packets.
        assert_eq!(kinds, ["auth", "shutdown", "packets", "packets"]);
        // The packet that did not fit was counted; the control messages
        // are not packets and were neither dropped nor counted as such.
        assert_eq!(rx.stats().items_dropped, 1);
    }
}
