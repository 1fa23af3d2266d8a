//! The `sstpd` binary: command line, logging, configuration, capability
//! check, then the server runtime.

use std::process::ExitCode;

use clap::Parser;
use sstpd::app::cli::{self, Cli, Command};
use sstpd::config::Config;
use sstpd::tls::ServerIdentity;

/// mimalloc, unless built with `--features system-allocator` (for heap
/// profilers such as heaptrack, which follow the C library's allocator).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything uses TLS (see `sstpd::sys::memory`).
    #[cfg(not(feature = "system-allocator"))]
    if !sstpd::sys::memory::crypto_allocations_to_mimalloc() {
        eprintln!("sstpd: aws-lc keeps the C library's allocator");
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => match cli::check_config(&file) {
            Ok(report) => {
                for line in &report.summary {
                    println!("{line}");
                }
                for warning in &report.warnings {
                    println!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sstpd: {}: {e}", file.display());
                ExitCode::FAILURE
            }
        },
        None => run(cli.config),
    }
}

fn run(config_path: Option<std::path::PathBuf>) -> ExitCode {
    let config = match &config_path {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("sstpd: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded_defaults(),
    };
    cli::init_tracing(&config.logging);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "sstpd starting");
    if let Err(e) = sstpd::sys::memory::disable_transparent_huge_pages() {
        tracing::warn!(
            "cannot turn transparent huge pages off (idle sessions cost more memory): {e}"
        );
    }

    if let Err(e) = sstpd::sys::caps::check(&config.server.listen) {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    let wanted = sstpd::sys::limits::wanted_for(config.server.max_sessions, config.worker_count());
    match sstpd::sys::limits::raise_open_file_limit(wanted) {
        Ok(limit) => {
            let room = sstpd::sys::limits::sessions_within(limit, config.worker_count());
            if room < config.server.max_sessions as u64 {
                tracing::warn!(
                    open_file_limit = limit,
                    max_sessions = config.server.max_sessions,
                    "the open-file limit leaves room for about {room} sessions only: raise it \
                     (LimitNOFILE= in the systemd unit, or run as root)"
                );
            }
        }
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }

    // Load (or generate) the certificate before the workers start, so that a
    // bad key fails fast and the banner can show the fingerprint.
    let identity = match ServerIdentity::load(&config) {
        Ok(identity) => identity,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if *identity.origin() == sstpd::tls::certs::IdentityOrigin::SelfSignedGenerated {
        tracing::info!(path = %identity.cert_path().display(), "generated a self-signed certificate");
    }
    for line in sstpd::app::startup_banner(&config, identity.cert_path(), &identity.leaf_sha256()) {
        tracing::info!("{line}");
    }

    match sstpd::app::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
