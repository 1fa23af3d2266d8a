//! A TUN queue driven by io_uring: reads parked in the kernel until a
//! packet arrives, writes submitted in batches.
//!
//! Queues are opened `O_NONBLOCK` (see [`super`], "Using a queue with
//! io_uring", for why). The kernels this runs on (6.1 and 6.18 measured)
//! then treat the queue as able to answer without blocking: a write is
//! done at once, in the order the batch was submitted, and a read with
//! nothing waiting is parked on the queue's poll list. An older io_uring
//! (5.11) instead hands `EAGAIN` back for a non-blocking file; [`read`]
//! then waits for the queue to become readable through the tokio runtime
//! that tokio-uring drives (epoll on a duplicate of the descriptor) and
//! reads again, so the caller never sees `EAGAIN`.
//!
//! [`read`]: UringQueue::read

use std::cell::OnceCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

/// One TUN queue on the current thread's tokio-uring runtime.
pub struct UringQueue {
    file: tokio_uring::fs::File,
    /// Registered with the tokio reactor the first time a read finds the
    /// queue empty and is handed `EAGAIN` (only on kernels that do so).
    readable: OnceCell<AsyncFd<OwnedFd>>,
}

impl std::fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringQueue")
            .field("fd", &self.file.as_raw_fd())
            .field("readiness_fallback", &self.readable.get().is_some())
            .finish()
    }
}

impl UringQueue {
    /// Takes a queue descriptor (from [`super::TunDevice::take_queues`]);
    /// must be called on a tokio-uring runtime's thread.
    pub fn new(queue: File) -> Self {
        UringQueue {
            file: tokio_uring::fs::File::from_std(queue),
            readable: OnceCell::new(),
        }
    }

    /// The queue for writes (`write_at(buf, 0).submit()`: a TUN write
    /// injects one packet, done at submission on a non-blocking queue).
    pub fn file(&self) -> &tokio_uring::fs::File {
        &self.file
    }

    /// Reads one packet into `buf` (from its start, up to its capacity),
    /// waiting for one to arrive.
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let (mut res, mut buf) = self.file.read_at(buf, 0).await;
        while matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            if let Err(e) = self.wait_readable().await {
                return (Err(e), buf);
            }
            buf.clear();
            (res, buf) = self.file.read_at(buf, 0).await;
        }
        (res, buf)
    }

    /// Reads one packet into `buf` (from its start, up to its capacity)
    /// with a plain non-blocking `read(2)`, if one is waiting: `Ok(None)`
    /// when the queue is empty. For draining a burst after a read through
    /// the ring completed, without a second read parked on the queue.
    pub fn try_read(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        buf.clear();
        // SAFETY: reads at most `capacity` bytes into the vector's own
        // allocation, whose length is then set to what the kernel wrote.
        let n = unsafe {
            libc::read(
                self.file.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.capacity(),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(error),
            };
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first `n` bytes.
        unsafe { buf.set_len(n) };
        Ok(Some(n))
    }

    /// Waits until the queue has a packet (or was readable since the last
    /// read that found it empty).
    pub async fn wait_readable(&self) -> io::Result<()> {
        let readable = match self.readable.get() {
            Some(r) => r,
            None => {
                // SAFETY: the descriptor belongs to `self.file`, open for
                // as long as `self`; the borrow lasts for the dup only.
                let dup = unsafe { BorrowedFd::borrow_raw(self.file.as_raw_fd()) }
                    .try_clone_to_owned()?;
                // SAFETY: the AsyncFd owns the duplicate, which stays open
                // (and the same) until it is dropped.
                let r =
                    unsafe { AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE) }?;
                tracing::info!(
                    "io_uring answers EAGAIN on a non-blocking TUN queue: reads wait on readiness"
                );
                self.readable.get_or_init(|| r)
            }
        };
        let mut guard = readable.readable().await?;
        // Cleared before the read that follows, and only if no event came
        // since this one (tokio compares ticks): a packet that lands after
        // this point raises a new event, so the next wait cannot miss it.
        guard.clear_ready();
        Ok(())
    }
}

impl AsRawFd for UringQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::FromRawFd;

    /// A non-blocking pipe: its read end as a queue, its write end.
    fn pipe() -> (UringQueue, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array it is given.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        // SAFETY: two fresh descriptors nothing else owns.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        (UringQueue::new(read), write)
    }

    #[test]
    fn a_plain_read_takes_what_waits_and_says_when_nothing_does() {
        crate::sys::uring::start(8, async {
            let (queue, mut write) = pipe();
            let mut buf = Vec::with_capacity(64);
            assert_eq!(queue.try_read(&mut buf).unwrap(), None);
            write.write_all(b"packet").unwrap();
            assert_eq!(queue.try_read(&mut buf).unwrap(), Some(6));
            assert_eq!(buf, b"packet");
            assert_eq!(queue.try_read(&mut buf).unwrap(), None);
            assert!(buf.is_empty());
            // At most the buffer's capacity, as a TUN read is.
            write.write_all(&[7; 100]).unwrap();
            assert_eq!(queue.try_read(&mut buf).unwrap(), Some(64));
            assert_eq!(buf.len(), 64);
        })
        .unwrap();
    }

    #[test]
    fn a_failed_plain_read_is_an_error_and_end_of_file_is_zero() {
        crate::sys::uring::start(8, async {
            let (queue, write) = pipe();
            // Reading the write end of a pipe fails (EBADF).
            let write_end = UringQueue::new(write);
            let mut buf = Vec::with_capacity(16);
            let err = write_end.try_read(&mut buf).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EBADF));
            drop(write_end);
            // No writer left: end of file, not "nothing waiting".
            assert_eq!(queue.try_read(&mut buf).unwrap(), Some(0));
        })
        .unwrap();
    }
}
