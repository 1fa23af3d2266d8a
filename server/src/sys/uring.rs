//! The io_uring ring under every tokio-uring runtime: sstpd's workers, the
//! load generator's, and the benchmark's bare-TLS references, so that a
//! same-run ratio compares like with like.
//!
//! Rings are set up with `IORING_SETUP_COOP_TASKRUN` where the kernel has it
//! (5.19 and later). A read that waits in the kernel (a TUN read, a socket
//! read, a poll) finishes as task work on the thread that submitted it.
//! Without the flag, the kernel interrupts that thread with an inter-processor
//! interrupt (`TWA_SIGNAL`) for every such completion that arrives while it
//! runs; in a virtual machine each one is a trip through the hypervisor. With
//! it, the work waits for the thread's next system call, and a runtime makes
//! at least one per turn of its loop (the submission before it parks), so a
//! completion is late by at most one turn; a thread that sleeps is still
//! woken at once. The flag is meant for a ring that one thread both submits
//! to and reaps, which is how every runtime here uses its own.
//!
//! Measured on this project's 2-core machine, sstpd built with and without
//! (4 alternated pairs of `sstp-bench run pps_down`): server CPU per packet
//! a quarter lower (5,234 to 3,962 ns in the mean), per session set up
//! 15% lower (`setup`); bulk and latency unchanged within their noise.
//! docs/benchmarking.md, "Completions without interrupts", has the runs.
//!
//! A kernel that refuses the flag (`EINVAL`, older than 5.19) gets rings
//! without it: [`probe`] says so once, and the caller logs and counts it.
//!
//! # Submission in batches of [`SUBMIT_BATCH`]
//!
//! tokio-uring queues an operation's entry when the operation is made and
//! hands the queue to the kernel in two cases only: when the runtime parks
//! (it has no task left to run) and when the submission queue is full. A
//! busy runtime therefore held every send, read and poll of a turn until
//! the turn ended: the load generator, with 64 sessions setting up, handed
//! 35–40 operations to the kernel per `io_uring_enter`, sstpd 10, and each
//! side waited for the other's whole turn; neither core was busy all the
//! time (the load generator 0.87 of its core, sstpd 0.68) while sessions
//! queued. A ring whose submission queue holds [`SUBMIT_BATCH`] entries
//! hands them over at most that many at a time, also in the middle of a
//! turn; its completion queue keeps the size it had (twice the `entries`
//! the runtime is started with), so completions have the same room.
//! Measured (docs/benchmarking.md, "Operations handed to the kernel during
//! a turn"): the setup rate from 0.51–0.59 of the bare handshake's to
//! 0.65–0.70, its p50 from 17–19 ms to 14–15 ms; the server's CPU per
//! session, the references and the data path unchanged.
//!
//! A full queue is now an ordinary event, and tokio-uring takes a refused
//! submission there as a panic of the task that queued the operation (at
//! park it ignored it and tried again later). The kernel refuses only what
//! it cannot allocate (`EAGAIN`; a full completion queue, `EBUSY`, is
//! handled by reaping first): with `GFP_KERNEL` requests that is the
//! out-of-memory killer's territory. A session's task that panics is
//! counted and its session closed by its guard (`session_panicked`); a
//! worker's own task (accepting, TUN, the hand-over) that ends is fatal
//! for the process (`worker::supervise::watch_task`), for its service
//! manager to restart.

use std::future::Future;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

/// Operations a runtime's ring makes room for when the caller does not
/// choose (tokio-uring's own default is 256): its completion queue holds
/// twice as many.
pub const DEFAULT_ENTRIES: u32 = 1024;

/// The most operations a runtime's ring queues before it hands them to the
/// kernel (the size of its submission queue): see the module doc.
pub const SUBMIT_BATCH: u32 = 32;

/// The setup flags that rings get on this kernel, decided once by [`probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSetup {
    /// `IORING_SETUP_COOP_TASKRUN`: completions wait for the thread's next
    /// system call instead of interrupting it.
    pub coop_taskrun: bool,
}

impl RingSetup {
    /// No optional flag: what every kernel with io_uring accepts.
    pub const PLAIN: RingSetup = RingSetup {
        coop_taskrun: false,
    };

    /// The `io_uring::Builder` with these flags.
    pub fn uring_builder(self) -> io_uring::Builder {
        let mut builder = tokio_uring::uring_builder();
        if self.coop_taskrun {
            builder.setup_coop_taskrun();
        }
        builder
    }

    /// A tokio-uring builder of a ring with these flags, room for
    /// `2 * entries` completions and a submission queue of at most
    /// [`SUBMIT_BATCH`] entries (fewer when `entries` is smaller).
    pub fn runtime_builder(self, entries: u32) -> tokio_uring::Builder {
        let submissions = entries.min(SUBMIT_BATCH);
        let mut uring = self.uring_builder();
        uring.setup_cqsize(2 * entries);
        let mut builder = tokio_uring::builder();
        builder.entries(submissions).uring_builder(&uring);
        builder
    }
}

/// What [`probe`] found: the setup to use, and the kernel's refusal of the
/// flag when there was one (for the caller's log line and counter).
#[derive(Debug)]
pub struct Probe {
    pub setup: RingSetup,
    pub coop_taskrun_refused: Option<io::Error>,
}

/// Asks the kernel, with a two-entry ring, whether it takes the flags; the
/// first call decides for the whole process.
pub fn probe() -> &'static Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(|| {
        probe_with(|builder| builder.build(2).map(drop)).unwrap_or(Probe {
            // No ring at all: the runtime's own start will fail and say
            // why; no flag was refused, so none is reported.
            setup: RingSetup::PLAIN,
            coop_taskrun_refused: None,
        })
    })
}

/// [`probe`] with the ring creation given, for tests: a refusal of the flag
/// falls back to [`RingSetup::PLAIN`]; an error that a plain ring gets too
/// is returned.
pub fn probe_with(
    mut try_build: impl FnMut(&io_uring::Builder) -> io::Result<()>,
) -> io::Result<Probe> {
    let preferred = RingSetup { coop_taskrun: true };
    match try_build(&preferred.uring_builder()) {
        Ok(()) => Ok(Probe {
            setup: preferred,
            coop_taskrun_refused: None,
        }),
        Err(refused) => {
            try_build(&RingSetup::PLAIN.uring_builder())?;
            Ok(Probe {
                setup: RingSetup::PLAIN,
                coop_taskrun_refused: Some(refused),
            })
        }
    }
}

/// Runs `future` to completion on a new tokio-uring runtime on this thread,
/// its ring set up as [`probe`] decided (`tokio_uring::builder().start`,
/// with the flags, and an error instead of a panic when no ring can be
/// made), sized as [`RingSetup::runtime_builder`] says.
pub fn start<F: Future>(entries: u32, future: F) -> io::Result<F::Output> {
    let runtime = tokio_uring::Runtime::new(&probe().setup.runtime_builder(entries))?;
    Ok(runtime.block_on(future))
}

/// Sleeps for `duration` on this thread's ring (`IORING_OP_TIMEOUT`, a
/// relative timeout on the kernel's high-resolution timers), for pacing
/// finer than tokio's timer. tokio's timer wheel counts whole milliseconds,
/// so a task that paced packets with `tokio::time::sleep_until` woke once a
/// millisecond and sent what had fallen due since, in one burst; every
/// session's timers that fell due in the same millisecond fired together.
/// The load generator's latency points measured those bursts' queueing
/// (docs/benchmarking.md, "Pacing finer than a millisecond").
///
/// Dropped before it fires, the timeout stays in the ring until it does
/// (tokio-uring keeps its data).
///
/// # Panics
///
/// Outside a tokio-uring runtime, as every tokio-uring operation does.
pub async fn sleep(duration: Duration) -> io::Result<()> {
    struct Fired;
    impl tokio_uring::OneshotOutputTransform for Fired {
        type Output = io::Result<()>;
        // The timespec the entry points to: boxed, so that it stays put
        // while the future moves.
        type StoredData = Box<io_uring::types::Timespec>;
        fn transform_oneshot_output(
            self,
            _timespec: Self::StoredData,
            cqe: io_uring::cqueue::Entry,
        ) -> io::Result<()> {
            match cqe.result() {
                // A timeout that ran out completes with ETIME.
                res if res == -libc::ETIME || res >= 0 => Ok(()),
                res => Err(io::Error::from_raw_os_error(-res)),
            }
        }
    }
    let timespec = Box::new(io_uring::types::Timespec::from(duration));
    let entry = io_uring::opcode::Timeout::new(&*timespec as *const _).build();
    tokio_uring::UnsubmittedOneshot::new(timespec, Fired, entry)
        .submit()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_takes_cooperative_task_running() {
        // The machines this is built and tested on run 6.1 or later.
        let probe = probe();
        assert_eq!(probe.setup, RingSetup { coop_taskrun: true });
        assert!(probe.coop_taskrun_refused.is_none());
    }

    #[test]
    fn a_refused_flag_falls_back_to_a_plain_ring() {
        let mut calls = 0;
        // A kernel that refuses the first ring asked for (the one with the
        // flag) and takes the second.
        let probe = probe_with(|_| {
            calls += 1;
            if calls == 1 {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                Ok(())
            }
        })
        .expect("a plain ring");
        assert_eq!(calls, 2);
        assert_eq!(probe.setup, RingSetup::PLAIN);
        assert_eq!(
            probe.coop_taskrun_refused.and_then(|e| e.raw_os_error()),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn a_kernel_without_io_uring_is_an_error_not_a_fallback() {
        let err = probe_with(|_| Err(io::Error::from_raw_os_error(libc::ENOSYS)))
            .expect_err("no ring at all");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSYS));
    }

    #[test]
    fn a_ring_sleep_waits_at_least_its_duration() {
        let slept = start(8, async {
            let before = std::time::Instant::now();
            sleep(Duration::from_micros(300)).await.expect("a timeout");
            before.elapsed()
        })
        .expect("a runtime");
        assert!(slept >= Duration::from_micros(300), "{slept:?}");
    }

    #[test]
    fn a_ring_sleep_dropped_before_it_fires_leaves_the_ring_usable() {
        let out = start(8, async {
            // Dropped while in flight: its timespec must outlive the drop.
            let long = Box::pin(sleep(Duration::from_millis(20)));
            let mut long = Some(long);
            std::future::poll_fn(|cx| {
                let _ = long.as_mut().expect("once").as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
            drop(long.take());
            sleep(Duration::from_micros(50)).await.expect("a timeout");
            // The first one fires into the ignored slot; the ring goes on.
            sleep(Duration::from_millis(30)).await.expect("a timeout");
            tokio_uring::no_op().await.expect("a no-op");
            7
        })
        .expect("a runtime");
        assert_eq!(out, 7);
    }

    /// Bytes waiting in a pipe, asked of the kernel without reading them.
    fn bytes_in(pipe: &std::io::PipeReader) -> usize {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer.
        let rc = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
        assert_eq!(rc, 0, "FIONREAD: {}", io::Error::last_os_error());
        usize::try_from(n).expect("a count")
    }

    #[test]
    fn a_busy_turn_hands_its_operations_to_the_kernel_every_submit_batch() {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let batch = SUBMIT_BATCH as usize;
        let seen = start(DEFAULT_ENTRIES, async {
            let file = tokio_uring::fs::File::from_std(std::fs::File::from(
                std::os::fd::OwnedFd::from(writer),
            ));
            // Queued by a task that does not wait in between, so the
            // runtime does not park: one byte an operation.
            let mut writes: Vec<_> = (0..batch)
                .map(|_| file.write_at(vec![1u8], 0).submit())
                .collect();
            let queued = bytes_in(&reader);
            writes.push(file.write_at(vec![1u8], 0).submit());
            let one_more = bytes_in(&reader);
            for write in writes {
                let (written, _) = write.await;
                assert_eq!(written.expect("a pipe write"), 1);
            }
            (queued, one_more, bytes_in(&reader))
        })
        .expect("a runtime");
        // A full queue went to the kernel before the turn ended; the last
        // one when the runtime waited for the writes.
        assert_eq!(seen, (0, batch, batch + 1));
    }

    #[test]
    fn a_runtime_with_the_flags_completes_io() {
        let out = start(8, async {
            tokio_uring::no_op()
                .await
                .expect("a no-op through the ring");
            7
        })
        .expect("a runtime");
        assert_eq!(out, 7);
    }
}
