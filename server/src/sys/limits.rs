//! The open-file limit: every session is a socket, so the soft limit
//! (1,024 in a login shell) would cap sstpd far below
//! `server.max_sessions`. At startup sstpd raises the soft limit to the
//! hard one, and the hard one to what `max_sessions` needs where it may
//! (root), and says when the limit is still too low.

/// Descriptors that are not sessions: listeners, TUN queues, eventfds,
/// io_uring rings, log and state files, per worker and in total.
pub const DESCRIPTORS_PER_WORKER: u64 = 8;
pub const DESCRIPTORS_BESIDES_WORKERS: u64 = 64;

/// How many sessions an open-file limit leaves room for.
pub fn sessions_within(limit: u64, workers: usize) -> u64 {
    let overhead = DESCRIPTORS_BESIDES_WORKERS + DESCRIPTORS_PER_WORKER * workers as u64;
    limit.saturating_sub(overhead)
}

/// Raises RLIMIT_NOFILE: the soft limit to the hard one, and both to
/// `wanted` (capped at the kernel's `fs.nr_open`) when the hard limit is
/// lower and the process may raise it (root, `CAP_SYS_RESOURCE`). Returns
/// the limit now in force.
pub fn raise_open_file_limit(wanted: u64) -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wanted = wanted.min(kernel_maximum());
    if wanted > limit.rlim_max && set_limit(wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    if limit.rlim_cur < limit.rlim_max {
        set_limit(limit.rlim_max, limit.rlim_max)?;
    }
    Ok(limit.rlim_max)
}

fn set_limit(soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the valid rlimit it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `fs.nr_open`, the most descriptors a process may be allowed (the
/// kernel's default when it cannot be read).
fn kernel_maximum() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// The limit sstpd asks for: room for `max_sessions` plus its fixed
/// descriptors.
pub fn wanted_for(max_sessions: usize, workers: usize) -> u64 {
    max_sessions as u64 + DESCRIPTORS_BESIDES_WORKERS + DESCRIPTORS_PER_WORKER * workers as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_for_sessions_is_the_limit_minus_the_fixed_descriptors() {
        assert_eq!(sessions_within(1024, 2), 1024 - 64 - 16);
        assert_eq!(sessions_within(1_048_576, 64), 1_048_576 - 64 - 512);
        assert_eq!(sessions_within(10, 4), 0);
    }

    #[test]
    fn wanted_is_the_sessions_plus_the_fixed_descriptors() {
        assert_eq!(wanted_for(1000, 2), 1000 + 64 + 16);
        assert_eq!(sessions_within(wanted_for(1000, 2), 2), 1000);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        // Asks for no more than is allowed already: only the soft limit
        // moves, so the test process keeps the limits it was given.
        let now = raise_open_file_limit(0).expect("getrlimit/setrlimit");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(now, limit.rlim_cur);
    }
}
