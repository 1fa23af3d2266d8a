//! [`DaeListener`]: the thread (`sstpd-dae`) with the UDP sockets of
//! `radius.dae.listen` around a [`DaeServer`].
//!
//! One thread with a current-thread tokio runtime (epoll), apart from the
//! workers: Disconnect and CoA requests come a few at a time, and the
//! workers' io_uring loops stay free of them. The thread owns the
//! [`DaeServer`]; a task per socket reads datagrams into a bounded channel
//! (full: the task waits and the kernel's socket buffer takes the rest,
//! then drops); the workers' confirmations come back on a channel of their
//! own, bounded by the actions handed out (`max_pending` requests, each
//! for the sessions it matched). Answers are sent without waiting
//! (`try_send_to`); one the socket cannot take is counted
//! (`dae_send_failed`) and the client retransmits.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use super::registry::SessionRegistry;
use super::server::DaeServer;
use super::{ActionOutcome, ActionReply, SessionControl};
use crate::config::Config;
use crate::metrics::{Event, Metrics};
use crate::radius::packet::MAX_PACKET_LEN;

/// Datagrams read but not yet handled, all sockets together.
const RECEIVED_QUEUE: usize = 256;

/// The running listener; stopped when dropped.
pub struct DaeListener {
    local_addrs: Vec<SocketAddr>,
    stop: Arc<Notify>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for DaeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaeListener")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl DaeListener {
    /// Binds `config.radius.dae.listen` and starts the thread: requests
    /// find sessions in `registry` and reach them through `control`;
    /// counters go to `metrics`' global table.
    pub fn start(
        config: &Config,
        registry: Arc<SessionRegistry>,
        control: Arc<dyn SessionControl>,
        metrics: Metrics,
    ) -> io::Result<DaeListener> {
        let mut sockets = Vec::new();
        let mut local_addrs = Vec::new();
        for &addr in &config.radius.dae.listen {
            let socket = StdUdpSocket::bind(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("radius.dae.listen: cannot bind {addr}: {e}"),
                )
            })?;
            socket.set_nonblocking(true)?;
            local_addrs.push(socket.local_addr()?);
            sockets.push(socket);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let server = DaeServer::new(config, registry, metrics.clone());
        let stop = Arc::new(Notify::new());
        let thread_stop = stop.clone();
        let addrs = local_addrs.clone();
        let thread = std::thread::Builder::new()
            .name("sstpd-dae".into())
            .spawn(move || {
                runtime.block_on(run(server, sockets, addrs, control, thread_stop, metrics))
            })?;
        tracing::info!(listen = ?local_addrs, "dynamic authorization (RFC 5176) listening");
        Ok(DaeListener {
            local_addrs,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The addresses bound (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Asks the thread to stop (requests still waiting are not answered;
    /// their clients retransmit to a server that is going away).
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// Stops the thread and waits for it.
    pub fn join(&self) {
        self.stop();
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the dynamic authorization thread panicked");
            }
        }
    }
}

impl Drop for DaeListener {
    fn drop(&mut self) {
        self.join();
    }
}

type Datagram = (usize, SocketAddr, Vec<u8>);

async fn run(
    mut server: DaeServer,
    sockets: Vec<StdUdpSocket>,
    local_addrs: Vec<SocketAddr>,
    control: Arc<dyn SessionControl>,
    stop: Arc<Notify>,
    metrics: Metrics,
) {
    let mut udp = Vec::with_capacity(sockets.len());
    for socket in sockets {
        match UdpSocket::from_std(socket) {
            Ok(socket) => udp.push(Arc::new(socket)),
            Err(e) => {
                tracing::error!(error = %e, "dynamic authorization socket unusable; not listening");
                return;
            }
        }
    }
    let (received_tx, mut received) = mpsc::channel::<Datagram>(RECEIVED_QUEUE);
    let readers: Vec<_> = udp
        .iter()
        .enumerate()
        .map(|(index, socket)| tokio::spawn(receive(index, socket.clone(), received_tx.clone())))
        .collect();
    drop(received_tx);
    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel::<(u64, ActionOutcome)>();
    loop {
        while let Some(transmit) = server.poll_transmit() {
            let Some(socket) = udp.get(transmit.socket) else {
                continue;
            };
            if let Err(e) = socket.try_send_to(&transmit.payload, transmit.to) {
                metrics.global().event(Event::DaeSendFailed);
                tracing::warn!(to = %transmit.to, error = %e, "dynamic authorization answer not sent");
            }
        }
        while let Some(job) = server.poll_job() {
            let tx = outcome_tx.clone();
            let token = job.token;
            let reply = ActionReply::new(move |outcome| {
                let _ = tx.send((token, outcome));
            });
            control.act(job.location, job.action, reply);
        }
        let deadline = server.poll_timeout();
        tokio::select! {
            biased;
            () = stop.notified() => break,
            Some((token, outcome)) = outcomes.recv() => {
                server.handle_outcome(Instant::now(), token, outcome);
            }
            datagram = received.recv() => {
                let Some((index, from, data)) = datagram else { break };
                let unix_now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                server.handle_datagram(Instant::now(), unix_now, index, local_addrs[index], from, &data);
            }
            () = sleep_until(deadline) => server.handle_timeout(Instant::now()),
        }
    }
    for reader in readers {
        reader.abort();
    }
    tracing::info!("dynamic authorization listener stopped");
}

/// Reads one socket into the shared queue until the thread stops.
async fn receive(index: usize, socket: Arc<UdpSocket>, queue: mpsc::Sender<Datagram>) {
    let mut buf = vec![0u8; MAX_PACKET_LEN];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, from)) => {
                if queue
                    .send((index, from, buf[..len].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                // Transient (an ICMP error reported on the socket); do not
                // spin on one that persists.
                tracing::debug!(error = %e, "dynamic authorization receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
