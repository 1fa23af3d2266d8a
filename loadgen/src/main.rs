//! `sstp-loadgen`: see `sstp-loadgen --help` and docs/loadgen.md.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use clap::Parser;
use sstp_loadgen::cli::{Cli, Command, Outputs};
use sstp_loadgen::output::{HdrLog, ProgressLine};
use sstp_loadgen::peer::Peer;
use sstp_loadgen::{Engine, Report};

/// As in sstpd: thousands of sessions set up and torn down on several
/// threads allocate a lot (TLS, PPP state); mimalloc keeps that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Too many failures, or no session at all.
const EXIT_FAILED: u8 = 1;
/// Bad arguments (clap also exits with 2).
const EXIT_USAGE: u8 = 2;
/// The run could not be carried out.
const EXIT_ERROR: u8 = 3;

fn main() -> ExitCode {
    // Before anything uses TLS, as in sstpd (see `sstpd::sys::memory`).
    if !sstpd::sys::memory::crypto_allocations_to_mimalloc() {
        eprintln!("sstp-loadgen: aws-lc keeps the C library's allocator");
    }
    let cli = Cli::parse();
    // Thousands of mostly idle sessions: 4 KiB pages, as in sstpd (see
    // `sstpd::sys::memory`).
    if let Err(e) = sstpd::sys::memory::disable_transparent_huge_pages() {
        eprintln!("sstp-loadgen: cannot turn transparent huge pages off: {e}");
    }
    // Every session is a socket: as many descriptors as the kernel allows
    // this process (fs.nr_open as root, else the hard limit).
    if let Err(e) = sstpd::sys::limits::raise_open_file_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open-file limit: {e}");
    }
    if let Command::Peer(args) = &cli.command {
        return run_peer(&args.config());
    }
    let (config, outputs) = match cli.command.load_config() {
        Some(Ok(c)) => c,
        Some(Err(message)) => {
            eprintln!("sstp-loadgen: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
        None => return ExitCode::from(EXIT_USAGE),
    };
    let engine = match Engine::new(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sstp-loadgen: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let abort = engine.abort_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // On SIGINT/SIGTERM the run ends early and still reports.
        let _ = signal_hook::flag::register(signal, abort.clone());
    }
    match run(engine, &outputs) {
        Ok(report) if report.failed() => ExitCode::from(EXIT_FAILED),
        Ok(_) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sstp-loadgen: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(engine: Engine, outputs: &Outputs) -> Result<Report, String> {
    let progress = outputs.progress.then(ProgressLine::stderr);
    let hdr_log = match &outputs.hdr_log {
        Some(path) => Some(
            HdrLog::create(path, SystemTime::now())
                .map_err(|e| format!("--hdr-log {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let mut observer = (progress, hdr_log);
    let report = engine.run(&mut observer).map_err(|e| e.to_string())?;
    let (_, hdr_log) = observer;
    if let Some(log) = hdr_log {
        log.finish().map_err(|e| format!("--hdr-log: {e}"))?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    let to_stdout = outputs.json.as_deref() == Some(std::path::Path::new("-"));
    if to_stdout {
        eprint!("{}", report.table());
        println!("{json}");
    } else {
        print!("{}", report.table());
        if let Some(path) = &outputs.json {
            std::fs::write(path, json + "\n")
                .map_err(|e| format!("--json {}: {e}", path.display()))?;
        }
    }
    let _ = std::io::stdout().flush();
    Ok(report)
}

fn run_peer(config: &sstp_loadgen::peer::PeerConfig) -> ExitCode {
    let peer = match Peer::start(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sstp-loadgen peer: cannot listen on {}: {e}", config.bind);
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let stop: Arc<AtomicBool> = peer.stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    eprintln!(
        "sstp-loadgen peer listening on {} (udp, {} threads, {}); Ctrl-C stops",
        peer.local_addr(),
        config.threads.max(1),
        match peer.max_segments() {
            1 => "one datagram per call".to_string(),
            n => format!("UDP_GRO reads, UDP_SEGMENT sends of up to {n} datagrams"),
        }
    );
    peer.wait();
    let t = peer.stop();
    eprintln!(
        "peer: received {} datagrams ({} bytes), sent {} ({} bytes), {} streams ({} rate changes), {} stats answered, {} invalid, {} send errors; {} reads and {} sends of several datagrams",
        t.rx_packets, t.rx_bytes, t.tx_packets, t.tx_bytes, t.streams_started, t.streams_changed, t.stats_answered, t.invalid, t.send_errors,
        t.rx_super_packets, t.tx_super_packets
    );
    ExitCode::SUCCESS
}
