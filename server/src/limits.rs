//! The open-file limit: every session is a socket, so the soft limit
//! (1,024 in a login shell) would cap sstpd far below
//! `server.max_sessions`. At startup sstpd raises the soft limit to the
//! hard one and says when even that is too low.

/// Descriptors that are not sessions: listeners, TUN queues, eventfds,
/// io_uring rings, log and state files, per worker and in total.
pub const DESCRIPTORS_PER_WORKER: u64 = 8;
pub const DESCRIPTORS_BESIDES_WORKERS: u64 = 64;

/// How many sessions an open-file limit leaves room for.
pub fn sessions_within(limit: u64, workers: usize) -> u64 {
    let overhead = DESCRIPTORS_BESIDES_WORKERS + DESCRIPTORS_PER_WORKER * workers as u64;
    limit.saturating_sub(overhead)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now
/// in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the valid rlimit it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok(raised.rlim_cur);
    }
    Ok(limit.rlim_cur)
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
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let now = raise_open_file_limit().expect("getrlimit/setrlimit");
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
