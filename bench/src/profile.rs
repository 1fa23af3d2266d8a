//! Where sstpd's CPU goes during session setup, from a profile:
//! `sstp-bench split-profile` reads `perf script` output of sstpd (recorded
//! with call graphs, as `scripts/setup-profile` does during
//! `sstp-bench run setup`) and splits its samples by what they were doing.
//!
//! The gate's `--phases` ([`crate::workload::SetupPhase`]) splits the
//! protocol core's instructions by phase on a synthetic CPU; this is the
//! other half: the real server on this machine's CPU, with the TLS
//! handshake, the runtime and the kernel that the gate leaves out. A
//! sample goes to the innermost frame that names a part of sstpd (so the
//! hashing under the crypto binding is the binding's, the allocation under
//! rustls is TLS's). The kernel's work is split by the system call it
//! serves: io_uring runs the sockets' sends and receives inside
//! `io_uring_enter`, where no phase of the session is on the stack, so a
//! send is a send whichever message it carries (on loopback it includes
//! delivering the segment to the peer's socket).
//!
//! Our own parser: `perf script`'s text is the one stable output of perf,
//! and the split is a few substring rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a sample was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Activity {
    /// The TLS handshake: rustls' server state machine, its key exchange
    /// and signature, taking the keys over.
    TlsHandshake,
    /// Sealing and opening records after the handshake.
    TlsRecords,
    /// The HTTP request and response.
    Http,
    /// SSTP framing and control messages, besides the binding.
    Sstp,
    /// The crypto binding's keys and MACs.
    Binding,
    /// PPP's automata: LCP, IPCP, IPv6CP.
    Ppp,
    /// MS-CHAPv2 (or another method) and the AAA chain.
    Auth,
    /// Address pools and the session's routes.
    Routes,
    /// The rest of the protocol core (the session that ties them).
    Session,
    /// The runtime: tasks, timers, buffers, the ring, the allocator when no
    /// part of sstpd above names the caller.
    Runtime,
    /// Kernel: accepting connections.
    KernelAccept,
    /// Kernel: opening connections (a client's `socket` and `connect`).
    KernelConnect,
    /// Kernel: TCP sends (on loopback with the delivery to the peer).
    KernelSend,
    /// Kernel: TCP receives.
    KernelReceive,
    /// Kernel: closing sockets.
    KernelClose,
    /// Kernel: waiting and being woken (epoll, the ring, the scheduler).
    KernelWait,
    /// Kernel: io_uring's own work besides the socket calls it runs
    /// (submitting the other operations, arming polls, posting
    /// completions from task work).
    KernelRing,
    /// Kernel: page faults (memory touched for the first time).
    KernelPageFault,
    /// Kernel: anything else.
    KernelOther,
    /// Nothing recognizable on the stack.
    Other,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::TlsHandshake => "tls handshake",
            Activity::TlsRecords => "tls records",
            Activity::Http => "http",
            Activity::Sstp => "sstp",
            Activity::Binding => "crypto binding",
            Activity::Ppp => "ppp (lcp, ipcp)",
            Activity::Auth => "auth",
            Activity::Routes => "routes, addresses",
            Activity::Session => "session core",
            Activity::Runtime => "runtime",
            Activity::KernelAccept => "kernel: accept",
            Activity::KernelConnect => "kernel: socket, connect",
            Activity::KernelSend => "kernel: send",
            Activity::KernelReceive => "kernel: receive",
            Activity::KernelClose => "kernel: close",
            Activity::KernelWait => "kernel: wait, wake",
            Activity::KernelRing => "kernel: io_uring",
            Activity::KernelPageFault => "kernel: page faults",
            Activity::KernelOther => "kernel: other",
            Activity::Other => "other",
        }
    }
}

/// Innermost-first rules for the user-space frames: the first frame that
/// contains one of these names the activity.
const USER_RULES: &[(&str, Activity)] = &[
    ("sstpd::proto::sstp::http", Activity::Http),
    ("Machine::handle_http", Activity::Http),
    ("sstpd::proto::sstp::binding", Activity::Binding),
    ("sstpd::proto::auth", Activity::Auth),
    ("sstpd::aaa::", Activity::Auth),
    ("sstpd::routing::", Activity::Routes),
    ("sstpd::proto::ppp", Activity::Ppp),
    ("sstpd::proto::sstp", Activity::Sstp),
    ("sstpd::proto::", Activity::Session),
    ("TlsConn::handshake", Activity::TlsHandshake),
    ("take_over", Activity::TlsHandshake),
    ("sstpd::net::established", Activity::TlsRecords),
    ("sstpd::net::tls_records", Activity::TlsRecords),
    ("rustls::", Activity::TlsRecords),
];

/// Frames that mark the TLS handshake anywhere on the stack, either role
/// (a load generator's profile splits the same way): a sample under them
/// that the rules call records is the handshake's.
const HANDSHAKE_MARKS: &[&str] = &[
    "rustls::server::hs",
    "rustls::server::tls13",
    "rustls::client::hs",
    "rustls::client::tls13",
    "TlsConn::handshake",
];

/// Kernel rules, by a frame anywhere in the kernel part of the stack, in
/// this order.
const KERNEL_RULES: &[(&str, Activity)] = &[
    ("exc_page_fault", Activity::KernelPageFault),
    ("do_accept", Activity::KernelAccept),
    ("io_accept", Activity::KernelAccept),
    ("__sys_connect", Activity::KernelConnect),
    ("io_connect", Activity::KernelConnect),
    ("__sys_socket", Activity::KernelConnect),
    ("tcp_sendmsg", Activity::KernelSend),
    ("sock_write_iter", Activity::KernelSend),
    ("tcp_recvmsg", Activity::KernelReceive),
    ("sock_read_iter", Activity::KernelReceive),
    ("tcp_close", Activity::KernelClose),
    ("__fput", Activity::KernelClose),
    ("epoll_wait", Activity::KernelWait),
    ("io_cqring_wait", Activity::KernelWait),
    ("schedule", Activity::KernelWait),
    ("io_submit_sqes", Activity::KernelRing),
    ("task_work_run", Activity::KernelRing),
    ("arch_do_signal_or_restart", Activity::KernelRing),
];

/// The activity of one sample, from its frames innermost first (the
/// symbol part of each `perf script` frame line).
pub fn classify(frames: &[&str]) -> Activity {
    let in_kernel = frames
        .iter()
        .take_while(|f| f.contains("[kernel.kallsyms]"))
        .count();
    let kernel = &frames[..in_kernel];
    if !kernel.is_empty() {
        return KERNEL_RULES
            .iter()
            .find(|(mark, _)| kernel.iter().any(|f| f.contains(mark)))
            .map_or(Activity::KernelOther, |(_, activity)| *activity);
    }
    let user = frames.iter().find_map(|f| {
        USER_RULES
            .iter()
            .find(|(mark, _)| f.contains(mark))
            .map(|(_, activity)| *activity)
    });
    match user {
        Some(Activity::TlsRecords)
            if frames
                .iter()
                .any(|f| HANDSHAKE_MARKS.iter().any(|m| f.contains(m))) =>
        {
            Activity::TlsHandshake
        }
        Some(activity) => activity,
        None if frames
            .iter()
            .any(|f| f.contains("sstpd::") || f.contains("tokio") || f.contains("mi_")) =>
        {
            Activity::Runtime
        }
        None => Activity::Other,
    }
}

/// Samples per activity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub samples: BTreeMap<Activity, u64>,
}

impl Split {
    pub fn total(&self) -> u64 {
        self.samples.values().sum()
    }

    /// The share of `activity` in all samples, 0 to 1.
    pub fn share(&self, activity: Activity) -> f64 {
        let n = self.samples.get(&activity).copied().unwrap_or(0);
        n as f64 / self.total().max(1) as f64
    }

    /// The table: each activity's share, biggest first, and with
    /// `cpu_per_session_us` (the server's CPU per session, measured in the
    /// same run) its microseconds per session.
    pub fn render(&self, cpu_per_session_us: Option<f64>) -> String {
        let mut rows: Vec<(Activity, u64)> = self.samples.iter().map(|(a, n)| (*a, *n)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut header = vec!["activity".to_string(), "samples".into(), "share".into()];
        if cpu_per_session_us.is_some() {
            header.push("µs per session".into());
        }
        let mut lines = vec![header];
        for (activity, n) in rows {
            let share = self.share(activity);
            let mut line = vec![
                activity.as_str().to_string(),
                n.to_string(),
                format!("{:.1}%", 100.0 * share),
            ];
            if let Some(us) = cpu_per_session_us {
                line.push(format!("{:.1}", share * us));
            }
            lines.push(line);
        }
        let mut out = crate::table::render(&lines, |i| i >= 1);
        let _ = writeln!(out, "{} samples", self.total());
        out
    }
}

/// Splits `perf script` output: samples are separated by blank lines, each
/// a header line then one frame per line (`addr symbol+off (dso)`).
/// Samples of other commands than `comm_prefix` (a thread name prefix,
/// such as `sstpd`) are left out.
pub fn split_perf_script(text: &str, comm_prefix: &str) -> Split {
    let mut split = Split::default();
    let mut frames: Vec<&str> = Vec::new();
    let mut keep = false;
    let mut flush = |frames: &mut Vec<&str>, keep: bool| {
        if keep && !frames.is_empty() {
            *split.samples.entry(classify(frames)).or_default() += 1;
        }
        frames.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut frames, keep);
            keep = false;
        } else if !line.starts_with([' ', '\t']) {
            flush(&mut frames, keep);
            keep = line.starts_with(comm_prefix);
        } else if let Some((_, symbol)) = line.trim().split_once(' ') {
            frames.push(symbol);
        }
    }
    flush(&mut frames, keep);
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four samples as `perf script` prints them (shortened), one of
    /// another process.
    const SCRIPT: &str = "\
sstpd-worker-0 25987 64421.466895:     250000 cpu-clock:ppp: 
\t          9a4848 ecp_nistz256_ord_sqr_montx+0x248 (/work/main/target/release/sstpd)
\t          3f0b32 <rustls::crypto::aws_lc_rs::sign::EcdsaSigner as rustls::crypto::signer::Signer>::sign+0x52 (/x/sstpd)
\t          43c880 rustls::server::tls13::client_hello::emit_certificate_verify_tls13+0x1e0 (/x/sstpd)
\t          736e02 sstpd::net::tls_records::open_records+0x82 (/x/sstpd)

sstpd-worker-0 25987 64421.467000:     250000 cpu-clock:ppp: 
\t          11aa sha2::sha256::compress256+0x10 (/x/sstpd)
\t          11bb sstpd::proto::sstp::binding::hmac+0x20 (/x/sstpd)
\t          11cc sstpd::proto::sstp::connection::Machine::on_control+0x30 (/x/sstpd)
\t          11dd sstpd::proto::session::Session::handle_input+0x40 (/x/sstpd)

sstpd-worker-0 25987 64421.467100:     250000 cpu-clock:ppp: 
\tffffffff81aa tcp_write_xmit+0x1 ([kernel.kallsyms])
\tffffffff81bb tcp_sendmsg+0x2 ([kernel.kallsyms])
\tffffffff81cc io_write+0x3 ([kernel.kallsyms])
\t          22aa io_uring::submit::Submitter::enter+0x4 (/x/sstpd)
\t          22bb tokio_uring::runtime::driver::handle::Handle::flush+0x5 (/x/sstpd)

sstp-loadgen 26000 64421.467200:     250000 cpu-clock:ppp: 
\t          33aa sstpd::proto::auth::mschapv2::des_encrypt+0x1 (/x/sstp-loadgen)
";

    #[test]
    fn samples_go_to_the_innermost_part_that_names_them() {
        let split = split_perf_script(SCRIPT, "sstpd");
        assert_eq!(split.total(), 3, "{split:?}");
        assert_eq!(split.samples[&Activity::TlsHandshake], 1);
        assert_eq!(split.samples[&Activity::Binding], 1);
        assert_eq!(split.samples[&Activity::KernelSend], 1);
        assert!(
            !split.samples.contains_key(&Activity::Auth),
            "another process's sample"
        );
        let table = split.render(Some(300.0));
        assert!(
            table.contains("crypto binding") && table.contains("100.0"),
            "{table}"
        );
        assert!(table.ends_with("3 samples\n"), "{table}");
    }

    #[test]
    fn rules_pick_the_innermost_frame_and_kernel_work_by_its_system_call() {
        assert_eq!(
            classify(&[
                "mi_malloc",
                "sstpd::proto::auth::mppe::keys",
                "sstpd::proto::session::x"
            ]),
            Activity::Auth
        );
        assert_eq!(
            classify(&[
                "memcpy",
                "sstpd::net::established::RecordSealer::seal",
                "sstpd::worker::x"
            ]),
            Activity::TlsRecords
        );
        assert_eq!(
            classify(&[
                "rustls::x",
                "sstpd::net::uring_tls::TlsConn::handshake::{{closure}}"
            ]),
            Activity::TlsHandshake
        );
        assert_eq!(
            classify(&["rustls::x", "rustls::client::tls13::ExpectFinished::handle"]),
            Activity::TlsHandshake
        );
        assert_eq!(
            classify(&[
                "tokio::runtime::task::state::State::load",
                "sstpd::worker::session::x"
            ]),
            Activity::Runtime
        );
        assert_eq!(
            classify(&[
                "clear_page_erms ([kernel.kallsyms])",
                "exc_page_fault ([kernel.kallsyms])",
                "mi_x"
            ]),
            Activity::KernelPageFault
        );
        assert_eq!(
            classify(&["x ([kernel.kallsyms])", "do_epoll_wait ([kernel.kallsyms])"]),
            Activity::KernelWait
        );
        assert_eq!(
            classify(&[
                "io_poll_add ([kernel.kallsyms])",
                "io_submit_sqes ([kernel.kallsyms])"
            ]),
            Activity::KernelRing
        );
        assert_eq!(
            classify(&[
                "tcp_connect ([kernel.kallsyms])",
                "__sys_connect ([kernel.kallsyms])"
            ]),
            Activity::KernelConnect
        );
        assert_eq!(classify(&["x ([kernel.kallsyms])"]), Activity::KernelOther);
        assert_eq!(classify(&["[unknown]"]), Activity::Other);
    }
}
