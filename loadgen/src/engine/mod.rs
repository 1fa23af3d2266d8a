//! The engine: worker threads, each a tokio-uring runtime pinned to a core
//! (like sstpd's), each running many sessions of the protocol core's client
//! role over real TLS ([`sstpd::client`]).
//!
//! A run has three phases:
//!
//! 1. **ramp**: sessions are started at `--rate` per second (spread over
//!    the workers: session `i` runs on worker `i % workers`), at most
//!    `--setup-concurrency` setups at a time;
//! 2. **window**: once every setup has finished (established or failed),
//!    all workers start traffic at the same instant and run it for
//!    `--duration`; rates are computed over this window;
//! 3. **finish**: replies in flight are awaited (`--drain`), the peer is
//!    asked for its counters, and sessions close gracefully.
//!
//! Churn mode has no separate ramp: the window is the whole run.
//!
//! With `--reconnect` a session lost before the window ends is set up
//! again after a back-off ([`crate::backoff`]) in its own slot and task;
//! the window does not wait for it, and attempts stop when it ends.
//!
//! Workers measure into their own [`WorkerStats`] (nothing shared on the
//! data path). Every 200 ms each publishes its counters and its interval
//! histograms into a mutex-guarded slot, which the calling thread reads
//! once a second for the [`Observer`] (progress line, hdrhistogram log).

mod session;
mod tunnel;

pub use session::{wait_until, FINE_PACING_FROM};
pub use tunnel::{FIRST_TABLE, RULE_PRIORITY, TUN_SETUP_FAILED};

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use sstpd::client::ClientOptions;
use sstpd::proto::ppp::{Ipv6cpConfig, PppConfig};
use sstpd::proto::session::SessionConfig;
use sstpd::proto::sstp::SstpConfig;
use tokio::sync::{Notify, Semaphore};

use crate::config::{LoadConfig, Mode, Pinning};
use crate::report::{Report, RunTiming};
use crate::stats::{rusage, thread_cpu_time, Counters, Histo, WorkerStats};

/// How often workers publish their counters for the observer.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// `go` and `stop` not yet decided.
const NOT_YET: u64 = u64::MAX;

/// Why a run could not start or finish.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is unusable (message names the option).
    Config(String),
    /// The TLS client configuration could not be built (e.g. `--ca`).
    Tls(sstpd::tls::TlsError),
    /// A worker thread could not be started.
    Thread(std::io::Error),
    /// A worker thread panicked.
    WorkerPanicked(usize),
}

impl RunError {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunError::Config(_) => "config",
            RunError::Tls(_) => "tls_config",
            RunError::Thread(_) => "thread_spawn",
            RunError::WorkerPanicked(_) => "worker_panicked",
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(m) => f.write_str(m),
            RunError::Tls(e) => write!(f, "TLS: {e}"),
            RunError::Thread(e) => write!(f, "cannot start a worker thread: {e}"),
            RunError::WorkerPanicked(i) => write!(f, "worker {i} panicked"),
        }
    }
}

impl std::error::Error for RunError {}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Ramp,
    Window,
    Finish,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Window => "run",
            Phase::Finish => "finish",
        }
    }
}

/// What an [`Observer`] sees about once a second.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// Since the start of the run.
    pub elapsed: Duration,
    /// Start of the interval this snapshot covers (since the run start).
    pub interval_start: Duration,
    pub phase: Phase,
    /// Sessions configured.
    pub sessions: u64,
    /// Cumulative counters over all workers.
    pub counters: &'a Counters,
    /// Round trip times recorded in this interval.
    pub rtt: &'a Histo,
    /// Setup times (total) recorded in this interval.
    pub setup: &'a Histo,
    /// The final snapshot (the workers have finished).
    pub last: bool,
}

/// Receives progress during a run.
pub trait Observer {
    fn interval(&mut self, snapshot: &Snapshot<'_>);
}

/// Ignores progress.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn interval(&mut self, _: &Snapshot<'_>) {}
}

/// Several observers in turn.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn interval(&mut self, s: &Snapshot<'_>) {
        self.0.interval(s);
        self.1.interval(s);
    }
}

/// The client-role protocol configuration for a run: the run's methods,
/// its hello interval, IPv6CP only when asked; everything else the
/// protocol core's defaults, so the load generator relies on nothing
/// sstpd-specific.
pub fn client_session_config(config: &LoadConfig) -> SessionConfig {
    let sstp = SstpConfig {
        hello_interval: config.keepalive,
        ..SstpConfig::default()
    };
    let mut ppp = PppConfig {
        auth_protocols: config.auth.clone(),
        ipv6cp: Ipv6cpConfig {
            enabled: config.negotiates_ipv6(),
        },
        ..PppConfig::default()
    };
    ppp.auth.eap_peer = config.eap_peer.clone();
    SessionConfig::new(sstp, ppp)
}

/// A configured run.
pub struct Engine {
    config: Arc<LoadConfig>,
    options: ClientOptions,
    abort: Arc<AtomicBool>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Validates the configuration and builds the TLS client configuration.
    pub fn new(config: LoadConfig) -> Result<Engine, RunError> {
        config.validate().map_err(RunError::Config)?;
        let tls = sstpd::tls::client::build_client_config(&sstpd::tls::client::ClientOptions {
            verification: config.verification.clone(),
            min_version: config.tls_versions.0,
            max_version: config.tls_versions.1,
            // Lets the sessions take their records over from rustls after
            // the handshake (`sstpd::net::established`).
            secret_extraction: true,
            ..Default::default()
        })
        .map_err(RunError::Tls)?;
        let server_name =
            sstpd::tls::client::server_name(&config.server_name).map_err(RunError::Tls)?;
        let options = ClientOptions {
            target: config.target,
            bind: None,
            tls,
            server_name,
            host: config.server_name.clone(),
            username: String::new(),
            password: Vec::new(),
            session: client_session_config(&config),
            setup_timeout: config.setup_timeout,
        };
        Ok(Engine {
            config: Arc::new(config),
            options,
            abort: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// Setting this flag ends the run early (SIGINT): traffic stops, and
    /// sessions drain and close as at the normal end.
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    /// Runs to the end and returns the report. Worker threads inherit the
    /// calling thread's network namespace.
    pub fn run(self, observer: &mut dyn Observer) -> Result<Report, RunError> {
        let started_unix_s = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let cpu_before = rusage(libc::RUSAGE_SELF);
        let workers = self.config.workers;
        let shared = Shared::new(&self, workers, rand::random());
        if matches!(self.config.mode, Mode::Churn { .. }) {
            shared.set_go(shared.epoch);
        }
        let cores = core_ids(&self.config.pinning);
        let mut threads = Vec::with_capacity(workers);
        for index in 0..workers {
            let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
            let shared_w = shared.clone();
            let options = self.options.clone();
            let spawned = thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || worker_thread(index, shared_w, options, core));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.abort.store(true, Ordering::Relaxed);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(RunError::Thread(e));
                }
            }
        }

        observe(&shared, &threads, observer);

        let mut total = WorkerStats::default();
        let mut panicked = None;
        for (i, t) in threads.into_iter().enumerate() {
            match t.join() {
                Ok(stats) => total.add(&stats),
                Err(_) => panicked = Some(i),
            }
        }
        if let Some(i) = panicked {
            return Err(RunError::WorkerPanicked(i));
        }
        let end = Instant::now();
        let cpu_after = rusage(libc::RUSAGE_SELF);
        let (ramp, window) = match shared.go() {
            Some(go) => {
                let stop = shared.stop_at(go).min(end);
                (go - shared.epoch, stop.saturating_duration_since(go))
            }
            None => (end - shared.epoch, Duration::ZERO),
        };
        let timing = RunTiming {
            started_unix_s,
            ramp,
            window,
            total: end - shared.epoch,
            process_cpu: (
                cpu_after.0.saturating_sub(cpu_before.0),
                cpu_after.1.saturating_sub(cpu_before.1),
            ),
        };
        Ok(Report::build(&self.config, &total, timing))
    }
}

fn core_ids(pinning: &Pinning) -> Vec<core_affinity::CoreId> {
    match pinning {
        Pinning::None => Vec::new(),
        Pinning::Spread => core_affinity::get_core_ids().unwrap_or_default(),
        Pinning::Cores(ids) => ids.iter().map(|&id| core_affinity::CoreId { id }).collect(),
    }
}

/// Reads the workers' slots once a second until they have all finished.
fn observe(
    shared: &Shared,
    threads: &[thread::JoinHandle<WorkerStats>],
    observer: &mut dyn Observer,
) {
    let mut rtt = Histo::new();
    let mut setup = Histo::new();
    let mut interval_start = Duration::ZERO;
    let mut tick = 1u32;
    loop {
        let finished = threads.iter().all(|t| t.is_finished());
        let due = shared.epoch + Duration::from_secs(u64::from(tick));
        let now = Instant::now();
        if !finished && now < due {
            thread::sleep((due - now).min(Duration::from_millis(50)));
            continue;
        }
        let mut counters = Counters::default();
        for slot in &shared.slots {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            counters.add(&slot.counters);
            rtt.add(&slot.rtt);
            setup.add(&slot.setup);
            slot.rtt.reset();
            slot.setup.reset();
        }
        let elapsed = now - shared.epoch;
        observer.interval(&Snapshot {
            elapsed,
            interval_start,
            phase: shared.phase(now),
            sessions: shared.config.sessions,
            counters: &counters,
            rtt: &rtt,
            setup: &setup,
            last: finished,
        });
        rtt.reset();
        setup.reset();
        interval_start = elapsed;
        if finished {
            return;
        }
        tick += 1;
    }
}

/// What workers publish for the observer.
#[derive(Default)]
struct Slot {
    counters: Counters,
    rtt: Histo,
    setup: Histo,
}

/// State shared by the workers and the calling thread.
struct Shared {
    epoch: Instant,
    config: Arc<LoadConfig>,
    abort: Arc<AtomicBool>,
    /// Setups finished (either way); when all have, the window opens.
    setups_finished: AtomicU64,
    /// When the window opened (nanoseconds since `epoch`).
    go_ns: AtomicU64,
    /// When an abort ended the window early.
    stop_ns: AtomicU64,
    slots: Vec<Mutex<Slot>>,
    /// Flow ids are `flow_base + session index`: unique within the run,
    /// different between runs (the peer keeps counters per flow).
    flow_base: u32,
}

impl Shared {
    fn new(engine: &Engine, workers: usize, flow_base: u32) -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            config: engine.config.clone(),
            abort: engine.abort.clone(),
            setups_finished: AtomicU64::new(0),
            go_ns: AtomicU64::new(NOT_YET),
            stop_ns: AtomicU64::new(NOT_YET),
            slots: (0..workers).map(|_| Mutex::default()).collect(),
            flow_base,
        })
    }

    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    fn at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }

    fn set_go(&self, at: Instant) {
        let _ =
            self.go_ns
                .compare_exchange(NOT_YET, self.ns(at), Ordering::AcqRel, Ordering::Acquire);
    }

    fn go(&self) -> Option<Instant> {
        match self.go_ns.load(Ordering::Acquire) {
            NOT_YET => None,
            ns => Some(self.at(ns)),
        }
    }

    /// The end of the window that opened at `go`.
    fn stop_at(&self, go: Instant) -> Instant {
        let planned = go + self.config.duration;
        match self.stop_ns.load(Ordering::Acquire) {
            NOT_YET => planned,
            ns => self.at(ns).min(planned),
        }
    }

    fn setup_finished(&self) {
        let n = self.setups_finished.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.config.sessions {
            self.set_go(Instant::now());
        }
    }

    fn phase(&self, now: Instant) -> Phase {
        match self.go() {
            None => Phase::Ramp,
            Some(go) if now < self.stop_at(go) => Phase::Window,
            Some(_) => Phase::Finish,
        }
    }
}

fn worker_thread(
    index: usize,
    shared: Arc<Shared>,
    options: ClientOptions,
    core: Option<core_affinity::CoreId>,
) -> WorkerStats {
    if let Some(core) = core {
        // Best effort, as in sstpd: an unpinned worker still works.
        let _ = core_affinity::set_for_current(core);
    }
    // The ring flags sstpd's workers get (`sstpd::sys::uring`).
    sstpd::sys::uring::start(
        sstpd::sys::uring::DEFAULT_ENTRIES,
        worker_main(index, shared, options),
    )
    .expect("an io_uring runtime for the load generator's worker")
}

/// One worker's state, shared by its tasks.
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    config: Arc<LoadConfig>,
    options: ClientOptions,
    stats: RefCell<WorkerStats>,
    interval_rtt: RefCell<Histo>,
    interval_setup: RefCell<Histo>,
    /// The window, as this worker has seen it.
    go: Cell<Option<Instant>>,
    stopped: Cell<bool>,
    phase_changed: Notify,
    setups: Arc<Semaphore>,
    /// When the next session may start (`--rate`).
    next_start: Cell<Instant>,
    cpu_at_go: Cell<Option<Duration>>,
    cpu_in_window: Cell<Option<Duration>>,
    done: Cell<bool>,
}

async fn worker_main(index: usize, shared: Arc<Shared>, options: ClientOptions) -> WorkerStats {
    let config = shared.config.clone();
    let workers = config.workers;
    let permits = (config.setup_concurrency / workers).max(1);
    let first_start = match config.rate {
        Some(rate) => shared.epoch + Duration::from_secs_f64(index as f64 / rate),
        None => shared.epoch,
    };
    let w = Worker::new(index, shared, options, permits, first_start);
    let monitor = tokio_uring::spawn(monitor(w.clone()));
    let publisher = tokio_uring::spawn(publisher(w.clone()));

    let sessions = session::start_all(&w).await;
    for s in sessions {
        let _ = s.await;
    }
    w.done.set(true);
    let _ = monitor.await;
    let _ = publisher.await;
    w.publish();
    let mut stats = w.stats.borrow().clone();
    stats.cpu = match (w.cpu_in_window.get(), w.cpu_at_go.get()) {
        (Some(window), _) => window,
        (None, Some(at_go)) => thread_cpu_time().saturating_sub(at_go),
        (None, None) => Duration::ZERO,
    };
    stats
}

/// Follows the shared phase: opens the window when the last setup has
/// finished, closes it after the duration or on abort.
async fn monitor(w: Rc<Worker>) {
    while !w.done.get() {
        let now = Instant::now();
        if w.shared.abort.load(Ordering::Relaxed) && !w.stopped.get() {
            let _ = w.shared.stop_ns.compare_exchange(
                NOT_YET,
                w.shared.ns(now),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            // Sessions waiting for the window must see it (and its end).
            w.shared.set_go(now);
        }
        if w.go.get().is_none() {
            if let Some(go) = w.shared.go() {
                w.go.set(Some(go));
                w.cpu_at_go.set(Some(thread_cpu_time()));
                w.phase_changed.notify_waiters();
            }
        }
        let mut pause = Duration::from_millis(2);
        if let Some(go) = w.go.get() {
            let stop = w.shared.stop_at(go);
            if now >= stop && !w.stopped.get() {
                w.stopped.set(true);
                let at_go = w.cpu_at_go.get().unwrap_or_default();
                w.cpu_in_window
                    .set(Some(thread_cpu_time().saturating_sub(at_go)));
                w.phase_changed.notify_waiters();
            }
            pause = if w.stopped.get() {
                Duration::from_millis(10)
            } else {
                stop.saturating_duration_since(now)
                    .clamp(Duration::from_millis(1), Duration::from_millis(10))
            };
        }
        tokio::time::sleep(pause).await;
    }
}

async fn publisher(w: Rc<Worker>) {
    while !w.done.get() {
        tokio::time::sleep(PUBLISH_EVERY).await;
        w.publish();
    }
}

impl Worker {
    fn publish(&self) {
        let mut slot = self.shared.slots[self.index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.counters = self.stats.borrow().counters;
        slot.rtt.add(&self.interval_rtt.borrow());
        slot.setup.add(&self.interval_setup.borrow());
        self.interval_rtt.borrow_mut().reset();
        self.interval_setup.borrow_mut().reset();
    }

    /// Nanoseconds since the run began: the probes' timestamp clock.
    fn now_ns(&self) -> u64 {
        self.shared.ns(Instant::now())
    }

    fn counters(&self) -> std::cell::RefMut<'_, Counters> {
        std::cell::RefMut::map(self.stats.borrow_mut(), |s| &mut s.counters)
    }

    /// Waits for the next start slot under `--rate`.
    async fn pace(&self) {
        let Some(rate) = self.config.rate else {
            return;
        };
        let interval = Duration::from_secs_f64(self.config.workers as f64 / rate);
        let at = self.next_start.get().max(Instant::now());
        self.next_start.set(at + interval);
        tokio::time::sleep_until(at.into()).await;
    }

    async fn wait_go(&self) -> Instant {
        loop {
            let changed = self.phase_changed.notified();
            if let Some(go) = self.go.get() {
                return go;
            }
            changed.await;
        }
    }

    async fn wait_stopped(&self) {
        loop {
            let changed = self.phase_changed.notified();
            if self.stopped.get() {
                return;
            }
            changed.await;
        }
    }

    fn aborted(&self) -> bool {
        self.shared.abort.load(Ordering::Relaxed)
    }
}

impl Worker {
    fn new(
        index: usize,
        shared: Arc<Shared>,
        options: ClientOptions,
        setup_permits: usize,
        first_start: Instant,
    ) -> Rc<Worker> {
        Rc::new(Worker {
            index,
            config: shared.config.clone(),
            shared,
            options,
            stats: RefCell::default(),
            interval_rtt: RefCell::default(),
            interval_setup: RefCell::default(),
            go: Cell::new(None),
            stopped: Cell::new(false),
            phase_changed: Notify::new(),
            setups: Arc::new(Semaphore::new(setup_permits)),
            next_start: Cell::new(first_start),
            cpu_at_go: Cell::new(None),
            cpu_in_window: Cell::new(None),
            done: Cell::new(false),
        })
    }
}

#[cfg(test)]
impl Worker {
    /// Worker 0 of `engine`'s run, outside a runtime: for tests that look
    /// at its tasks without running them.
    fn for_test(engine: &Engine) -> Rc<Worker> {
        let shared = Shared::new(engine, 1, 0);
        Worker::new(0, shared, engine.options.clone(), 1, Instant::now())
    }
}
