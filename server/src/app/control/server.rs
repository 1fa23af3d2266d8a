//! The control socket's thread, `sstpd-control`: a Unix stream socket
//! serving one [`Request`] per connection, one connection at a time.
//!
//! * The socket is created under a umask of 0177 (mode 0600 from the
//!   start, no window in which others could connect), owned by the
//!   server's user. Each peer is checked with `SO_PEERCRED`: only root and
//!   the server's own uid are served; anyone else gets an error and is
//!   counted (`control_refused_peer`).
//! * A stale socket file (nobody accepts on it) is replaced; a live one
//!   (another sstpd) fails the start, as a busy TCP port does.
//! * Bounds: a request is at most [`MAX_REQUEST`] bytes and must arrive
//!   within [`READ_TIMEOUT`]; the answer gets [`WRITE_TIMEOUT`]; a worker
//!   gets [`WORKER_ANSWER_TIMEOUT`] to describe its sessions and is
//!   reported, not waited for, when it does not. Serving one connection
//!   at a time keeps a flood of connections from costing more than one
//!   thread; a slow client holds it for at most those bounds.
//! * The workers are never blocked: questions and `kill`s go on their
//!   mailboxes' control lanes ([`crate::worker::control`]).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::{
    parse_request, Answer, DrainReport, KillReport, KillSelector, Request, RequestError,
    SessionList, Stats, MAX_REQUEST,
};
use crate::aaa::dae::{ActionOutcome, ActionReply, DaeAction, SessionControl};
use crate::app::drain::Drainer;
use crate::app::exporter::ScrapeGauge;
use crate::app::reload::Reloader;
use crate::metrics::{Event, RateLimitedLog};
use crate::worker::control::{ListedSession, WorkerSessions};
use crate::worker::dae::WorkerControl;
use crate::worker::{send_control, Shared, WorkerMsg};

/// How long a client has to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client has to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the workers have to answer (describe their sessions, confirm
/// a kill).
pub const WORKER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one "refused" log line per this interval (the counter has
/// every one).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The control socket, bound and not yet served; removed when dropped.
#[derive(Debug)]
pub(crate) struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` with mode 0600, replacing a stale socket file.
    pub(crate) fn bind(path: &Path) -> io::Result<ControlSocket> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "control socket {}: another sstpd is listening on it",
                            path.display()
                        ),
                    ))
                }
                Err(_) => {
                    tracing::info!(path = %path.display(), "replacing a stale control socket");
                    std::fs::remove_file(path)?;
                }
            },
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "control socket {}: a file that is not a socket is in the way",
                        path.display()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = with_umask(0o177, || UnixListener::bind(path)).map_err(|e| {
            io::Error::new(e.kind(), format!("control socket {}: {e}", path.display()))
        })?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `f` with the process umask set to `mask`, then restores it. Called
/// by `app::start` before any other thread of the server exists, so no
/// other file is created under the narrower mask.
fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask(2) cannot fail and takes no pointers.
    let old = unsafe { libc::umask(mask) };
    let result = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    result
}

/// What the thread serves from.
pub(crate) struct ControlContext {
    pub shared: Arc<Shared>,
    pub reloader: Arc<Reloader>,
    /// The gauges the Prometheus endpoint shows too.
    pub gauges: Vec<ScrapeGauge>,
    /// The drain in progress (`sstpctl drain`), stopped with this thread.
    pub drainer: Drainer,
}

/// The running `sstpd-control` thread; stopped, joined and its socket
/// removed on drop.
#[derive(Debug)]
pub(crate) struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    pub(crate) fn start(socket: ControlSocket, context: ControlContext) -> io::Result<Self> {
        let path = socket.path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sstpd-control".into())
            .spawn(move || {
                let own_uid = effective_uid();
                let mut refusals = RateLimitedLog::new(REFUSAL_LOG_INTERVAL);
                for stream in socket.listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    match stream {
                        Ok(stream) => serve(stream, &context, own_uid, &mut refusals),
                        Err(error) => {
                            tracing::debug!(%error, "control socket: accept failed");
                            context.shared.metrics.global().event(Event::ControlIoError);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                drop(socket);
            })?;
        tracing::info!(path = %path.display(), "control socket listening");
        Ok(ControlServer {
            path,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let woken = UnixStream::connect(&self.path).is_ok();
        if let Some(thread) = self.thread.take() {
            if woken {
                let _ = thread.join();
            }
        }
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of the process at the other end (`SO_PEERCRED`, unix(7)).
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Serves one connection: check the peer, read the request, answer.
fn serve(
    stream: UnixStream,
    context: &ControlContext,
    own_uid: u32,
    refusals: &mut RateLimitedLog,
) {
    let metrics = context.shared.metrics.global();
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    match peer_uid(&stream) {
        Ok(uid) if uid == 0 || uid == own_uid => {}
        other => {
            metrics.event(Event::ControlRefusedPeer);
            if let Some(suppressed) = refusals.due(Instant::now()) {
                tracing::warn!(
                    peer_uid = ?other.as_ref().ok(),
                    suppressed,
                    "control socket: refusing a peer that is neither root nor the server's user"
                );
            }
            let message = match other {
                Ok(uid) => format!(
                    "permission denied: uid {uid} is neither root nor sstpd's user (uid {own_uid})"
                ),
                Err(e) => format!("permission denied: cannot tell who is connecting ({e})"),
            };
            write_answer(&stream, &Answer::Error { message });
            return;
        }
    }
    let line = match read_request(&stream) {
        Ok(line) => line,
        Err(ReadError::TooLarge) => {
            metrics.event(Event::ControlBadRequest);
            let message = RequestError::TooLarge.to_string();
            write_answer(&stream, &Answer::Error { message });
            return;
        }
        Err(ReadError::Timeout) => {
            metrics.event(Event::ControlTimeout);
            return;
        }
        Err(ReadError::Io) => {
            metrics.event(Event::ControlIoError);
            return;
        }
    };
    let answer = match parse_request(&line) {
        Ok(request) => {
            tracing::debug!(?request, "control request");
            metrics.event(Event::ControlAnswered);
            answer(&request, context)
        }
        Err(e) => {
            metrics.event(Event::ControlBadRequest);
            Answer::Error {
                message: e.to_string(),
            }
        }
    };
    if !write_answer(&stream, &answer) {
        metrics.event(Event::ControlIoError);
    }
}

enum ReadError {
    TooLarge,
    Timeout,
    Io,
}

/// Reads up to the first newline (or the end of the stream), within
/// [`READ_TIMEOUT`] in all and [`MAX_REQUEST`] bytes.
fn read_request(mut stream: &UnixStream) -> Result<Vec<u8>, ReadError> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(ReadError::Io);
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::Timeout)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadError::Io),
        };
        let got = &chunk[..n];
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&got[..end]);
            return finish(line);
        }
        line.extend_from_slice(got);
        if n == 0 {
            return finish(line);
        }
        if line.len() > MAX_REQUEST {
            return Err(ReadError::TooLarge);
        }
    }
}

fn finish(line: Vec<u8>) -> Result<Vec<u8>, ReadError> {
    if line.len() > MAX_REQUEST {
        Err(ReadError::TooLarge)
    } else {
        Ok(line)
    }
}

/// Writes the answer as one line of JSON; `false` when the client did not
/// take it.
fn write_answer(mut stream: &UnixStream, answer: &Answer) -> bool {
    let mut text = serde_json::to_vec(answer).unwrap_or_default();
    text.push(b'\n');
    stream
        .write_all(&text)
        .and_then(|()| stream.flush())
        .is_ok()
}

/// Carries out a request.
fn answer(request: &Request, context: &ControlContext) -> Answer {
    match request {
        Request::Sessions => {
            let (listed, unanswered_workers) = list_sessions(&context.shared);
            Answer::Sessions(SessionList {
                sessions: listed.into_iter().map(|s| s.info).collect(),
                unanswered_workers,
                draining: context.shared.draining.load(Ordering::Acquire),
            })
        }
        Request::Session { id } => {
            let (listed, unanswered_workers) = list_sessions(&context.shared);
            let sessions: Vec<_> = listed
                .into_iter()
                .filter(|s| &s.info.id == id)
                .map(|s| s.info)
                .collect();
            if sessions.is_empty() && unanswered_workers.is_empty() {
                Answer::Error {
                    message: format!("no session with id {id}"),
                }
            } else {
                Answer::Sessions(SessionList {
                    sessions,
                    unanswered_workers,
                    draining: context.shared.draining.load(Ordering::Acquire),
                })
            }
        }
        Request::Kill(selector) => kill(selector, &context.shared),
        Request::Drain { over_ms } => drain(*over_ms, context),
        Request::Resume => {
            let left = context.drainer.resume(&context.shared);
            Answer::Drain(DrainReport {
                draining: false,
                sessions: left,
                ..DrainReport::default()
            })
        }
        Request::Stats => Answer::Stats(stats(context)),
        Request::Reload => match context.reloader.reload() {
            Ok(report) => Answer::Reloaded(report),
            Err(e) => Answer::Error {
                message: format!("reload failed, the old configuration stays: {e}"),
            },
        },
        // The configuration in force: the last good reload's, with the
        // restart-only keys as the server started.
        Request::ShowConfig => match context.shared.live.load().config.redacted().to_toml() {
            Ok(toml) => Answer::Config { toml },
            Err(e) => Answer::Error {
                message: format!("cannot render the configuration: {e}"),
            },
        },
    }
}

/// Every worker's sessions, and the workers that did not answer within
/// [`WORKER_ANSWER_TIMEOUT`].
fn list_sessions(shared: &Shared) -> (Vec<ListedSession>, Vec<usize>) {
    let workers = shared.mailboxes.len();
    let (reply, answers) = crossbeam_channel::bounded(workers);
    for mailbox in &shared.mailboxes {
        send_control(
            mailbox,
            WorkerMsg::ListSessions {
                reply: reply.clone(),
            },
        );
    }
    drop(reply);
    collect_answers(&answers, workers, Instant::now() + WORKER_ANSWER_TIMEOUT)
}

/// The workers' answers until all `workers` answered or `deadline`; the
/// sessions sorted by worker and id, and the workers that did not answer.
fn collect_answers(
    answers: &crossbeam_channel::Receiver<WorkerSessions>,
    workers: usize,
    deadline: Instant,
) -> (Vec<ListedSession>, Vec<usize>) {
    let mut answered = vec![false; workers];
    let mut sessions = Vec::new();
    while answered.iter().any(|a| !a) {
        // Disconnected: every worker answered or dropped the question.
        let Ok((worker, listed)) = answers.recv_deadline(deadline) else {
            break;
        };
        if let Some(a) = answered.get_mut(worker) {
            *a = true;
        }
        sessions.extend(listed);
    }
    sessions.sort_by(|a, b| (a.info.worker, &a.info.id).cmp(&(b.info.worker, &b.info.id)));
    let unanswered = (0..workers).filter(|&w| !answered[w]).collect();
    (sessions, unanswered)
}

/// Ends the sessions `selector` names the way a RADIUS Disconnect-Request
/// does (Call Disconnect; accounting Stop, Admin-Reset).
fn kill(selector: &KillSelector, shared: &Shared) -> Answer {
    if selector.is_empty() {
        return Answer::Error {
            message: "kill needs --id, --user or --address".into(),
        };
    }
    let (listed, unanswered_workers) = list_sessions(shared);
    let targets: Vec<ListedSession> = listed
        .into_iter()
        .filter(|s| selector.matches(&s.info))
        .collect();
    let control = WorkerControl::new(shared.mailboxes.clone());
    let (confirm, confirmations) = crossbeam_channel::bounded(targets.len().max(1));
    for (index, target) in targets.iter().enumerate() {
        let confirm = confirm.clone();
        let reply = ActionReply::new(move |outcome| {
            let _ = confirm.send((index, outcome));
        });
        control.act(target.at, DaeAction::Disconnect, reply);
    }
    drop(confirm);
    let deadline = Instant::now() + WORKER_ANSWER_TIMEOUT;
    let mut ids = Vec::new();
    while let Ok((index, outcome)) = confirmations.recv_deadline(deadline) {
        if outcome == ActionOutcome::Done {
            ids.push(targets[index].info.id.clone());
        }
    }
    ids.sort();
    for id in &ids {
        tracing::info!(session_id = %id, "sstpctl kill: session closing (admin reset)");
    }
    Answer::Killed(KillReport {
        killed: ids.len(),
        ids,
        unanswered_workers,
    })
}

/// Starts draining over `over_ms`, or `server.drain_period`.
fn drain(over_ms: Option<u64>, context: &ControlContext) -> Answer {
    let over = over_ms.map_or_else(
        || context.shared.live.load().config.server.drain_period,
        Duration::from_millis,
    );
    if over > crate::config::MAX_DRAIN_PERIOD {
        return Answer::Error {
            message: "drain: the period must be at most 24h".into(),
        };
    }
    let shared = context.shared.clone();
    let list = move || list_sessions(&shared).0.into_iter().map(|s| s.at).collect();
    match context.drainer.start(&context.shared, over, list) {
        Ok(started) => Answer::Drain(DrainReport {
            draining: true,
            sessions: started.sessions,
            over_ms: u64::try_from(over.as_millis()).unwrap_or(u64::MAX),
            interval_ms: u64::try_from(started.interval.as_millis()).unwrap_or(u64::MAX),
        }),
        Err(e) => Answer::Error {
            message: format!("drain: cannot start its thread: {e}"),
        },
    }
}

/// Every counter by label (zero ones too) and the gauges.
fn stats(context: &ControlContext) -> Stats {
    let snapshot = context.shared.metrics.snapshot();
    let mut counters: std::collections::BTreeMap<String, u64> = Event::ALL
        .iter()
        .map(|&event| (event.label().to_owned(), snapshot.count(event)))
        .collect();
    for (name, value) in [
        ("connections_accepted", snapshot.connections_accepted),
        ("sessions_established", snapshot.sessions_established),
        ("rx_packets", snapshot.rx_packets),
        ("rx_bytes", snapshot.rx_bytes),
        ("tx_packets", snapshot.tx_packets),
        ("tx_bytes", snapshot.tx_bytes),
        ("tun_no_session", snapshot.tun_no_session),
        ("handoff_packets", snapshot.handoff_packets),
        ("tx_queue_full", snapshot.tx_queue_full),
        ("tun_write_queue_full", snapshot.tun_write_queue_full),
        ("ktls_send_batches", snapshot.ktls_send_batches),
        ("ktls_send_packets", snapshot.ktls_send_packets),
    ] {
        counters.insert(name.to_owned(), value);
    }
    let mut gauges: std::collections::BTreeMap<String, i64> = context
        .gauges
        .iter()
        .map(|g| (g.name().to_owned(), g.read()))
        .collect();
    gauges.insert("sessions_active".into(), snapshot.sessions_active);
    Stats { counters, gauges }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::session_table::SessionRef;

    fn listed(worker: usize, id: &str) -> ListedSession {
        let info: super::super::protocol::SessionInfo = serde_json::from_value(serde_json::json!({
            "id": id, "user": null, "ipv4": null, "ipv6_prefix": null,
            "client": "192.0.2.1:1", "worker": worker, "established": false,
            "started_unix": 0, "uptime_secs": 0, "bytes_in": 0, "bytes_out": 0,
            "packets_in": 0, "packets_out": 0, "tls_version": null,
            "tls_cipher": null, "ktls": false, "crypto_binding": null
        }))
        .unwrap();
        ListedSession {
            at: SessionRef {
                worker: worker as u16,
                slot: 0,
                generation: 0,
            },
            info,
        }
    }

    #[test]
    fn a_worker_that_does_not_answer_is_reported_not_waited_for() {
        let (reply, answers) = crossbeam_channel::bounded(3);
        reply
            .send((2, vec![listed(2, "b"), listed(2, "a")]))
            .unwrap();
        reply.send((0, vec![listed(0, "c")])).unwrap();
        // Worker 1 holds its question (`reply` stays alive) and never
        // answers.
        let deadline = Instant::now() + Duration::from_millis(50);
        let (sessions, unanswered) = collect_answers(&answers, 3, deadline);
        assert!(Instant::now() >= deadline);
        let ids: Vec<_> = sessions.iter().map(|s| s.info.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(unanswered, [1]);

        // A worker that is gone drops the question: no wait at all.
        drop(reply);
        let far = Instant::now() + Duration::from_secs(3600);
        let (sessions, unanswered) = collect_answers(&answers, 2, far);
        assert!(sessions.is_empty());
        assert_eq!(unanswered, [0, 1]);
    }
}
