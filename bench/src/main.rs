//! `sstp-bench`: benchmarks of sstpd with same-run references, and the
//! instruction-count regression gate.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use sstp_bench::compare::{self, Bands};
use sstp_bench::gate::{self, Baseline, GateEnvironment, PartCount, Runner};
use sstp_bench::reference::{self, tls, ReferencePlan};
use sstp_bench::results::Results;
use sstp_bench::workload::{Part, SetupPhase};
use sstp_bench::{report, scenario};
use sstp_loadgen::config::parse_duration;

const EXAMPLES: &str = "\
Examples:
  scripts/regression-gate
      Build in release mode and run the instruction-count gate (what CI runs).
  sstp-bench gate --part data
      Count one part only.
  sstp-bench gate --update-baseline
      Rewrite bench/gate-baseline.json with the counts measured now (commit it,
      saying why the counts moved). Refused when CI is set.
  sstp-bench reference --out refs.json
      Bare TLS on this machine: bulk stream, handshake rate, ping-pong latency.
  sstp-bench report refs.json --out report/
      report/report.md with SVG charts.
  sstp-bench compare old.json new.json
      Exit status 1 if a figure got worse beyond its noise band.
  sstp-bench demo
      Ten seconds: sstpd with its embedded defaults, sessions, echo, bulk.
  sstp-bench run all
      Every scenario (about 3 minutes), written to sstp-bench-results.json.
  sstp-bench run bulk --duration 10
      The four bulk scenarios, 10 s windows.
  sstp-bench run soak
      Not part of `run all`: 2,000 sessions with traffic and churn for 30 minutes,
      sampled every minute; SVGs in sstp-bench-soak/, flat at the end or not.
  sstp-bench run latency --target vpn.example.com:443 --user u --password p
      Another SSTP server (run `sstp-loadgen peer` on its side).

Exit status: 0 success, 1 regression (gate, compare) or failed measurement,
2 bad usage, 130 interrupted.";

#[derive(Debug, Parser)]
#[command(name = "sstp-bench", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Count the fixed workload's instructions under callgrind and compare
    /// them with bench/gate-baseline.json.
    Gate {
        /// Write the measured counts as the new baseline instead of
        /// comparing (a reviewed change; refused when CI is set).
        #[arg(long)]
        update_baseline: bool,
        /// The baseline file.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// Count only these parts (repeatable).
        #[arg(long = "part", value_name = "NAME")]
        parts: Vec<Part>,
        /// Where callgrind's output files go.
        #[arg(long, value_name = "DIR", default_value = "target/sstp-bench/gate")]
        out_dir: PathBuf,
        /// Also record the counts in a results file.
        #[arg(long, value_name = "FILE")]
        results: Option<PathBuf>,
        /// Also count the setup part phase by phase (HTTP, SSTP call, LCP,
        /// MS-CHAPv2, crypto binding, IPCP; one callgrind run each) and
        /// print the split. A report: no baseline, no verdict.
        #[arg(long)]
        phases: bool,
    },
    /// Split a profile of sstpd by what its samples were doing (TLS, the
    /// protocol's phases, the runtime, the kernel by system call).
    /// `scripts/setup-profile` records one during `run setup` and runs this.
    SplitProfile {
        /// `perf script` output of a `perf record --call-graph dwarf` of
        /// sstpd (`-`: standard input).
        #[arg(value_name = "FILE")]
        input: PathBuf,
        /// Count only samples of threads whose name starts so.
        #[arg(long, default_value = "sstpd")]
        comm: String,
        /// The server's CPU per session measured in the same run, in
        /// microseconds: adds each activity's share of it.
        #[arg(long, value_name = "US")]
        cpu_per_session_us: Option<f64>,
    },
    /// Measure the bare-TLS references on this machine.
    Reference {
        /// How long each reference runs.
        #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
        duration: f64,
        /// Which references (default: all).
        #[arg(long = "only", value_enum)]
        only: Vec<Which>,
        /// Cipher suite of the stream and ping-pong references.
        #[arg(long, default_value = "TLS13_AES_128_GCM_SHA256")]
        suite: String,
        /// Plaintext bytes per TLS record (stream).
        #[arg(long, default_value_t = 16384)]
        record_size: usize,
        /// Plaintext bytes per write (stream).
        #[arg(long, default_value_t = 65536)]
        write_size: usize,
        /// Concurrent clients (handshakes).
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Request/response exchanges of 100-byte messages after each
        /// handshake (`tls_handshake_exchanges`; 0: `tls_handshake`).
        #[arg(long, default_value_t = 0)]
        exchanges: usize,
        /// Message size (ping-pong).
        #[arg(long, default_value_t = 64)]
        message_size: usize,
        /// Pace the ping-pong: this many messages a second over
        /// `--connections`, sent whether or not the earlier ones are back,
        /// as the latency scenarios' paced points send their probes
        /// (`tls_ping_pong_paced_at_<rate>`).
        #[arg(long, value_name = "MESSAGES_PER_S")]
        rate: Option<f64>,
        /// Connections of the paced ping-pong.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Certificate key type.
        #[arg(long, value_enum, default_value_t = KeyArg::Ecdsa)]
        key: KeyArg,
        /// Write a results file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a Markdown report with SVG charts from a results file.
    Report {
        results: PathBuf,
        #[arg(long, value_name = "DIR", default_value = "sstp-bench-report")]
        out: PathBuf,
    },
    /// Compare two results files; exit 1 if something got worse beyond its
    /// noise band.
    Compare {
        old: PathBuf,
        new: PathBuf,
        /// Band for time-based figures and ratios, in percent.
        #[arg(long, default_value_t = 10.0)]
        band: f64,
        /// Band for p99 latencies (p99.9 is shown, not judged).
        #[arg(long, default_value_t = 20.0)]
        tail_band: f64,
        /// Band for memory (RSS).
        #[arg(long, default_value_t = 10.0)]
        memory_band: f64,
        /// Band for instruction counts.
        #[arg(long, default_value_t = 1.0)]
        instructions_band: f64,
    },
    /// Run scenarios: sstpd in a network namespace driven by sstp-loadgen,
    /// each figure beside a bare-TLS reference measured just before.
    Run(Box<RunArgs>),
    /// Several sstpd nodes behind HAProxy with a shared FreeRADIUS (SQLite
    /// accounting and address pool), each in a network namespace: setup
    /// rate one node vs all, spread, duplicate addresses, latency through
    /// HAProxy vs direct, failover (kill -9 and restart) and drain.
    Cluster(ClusterArgs),
    /// The ten-second tour: sstpd with its embedded defaults in a network
    /// namespace; sessions coming up, echo latency, bulk throughput, each
    /// beside bare TLS; everything removed afterwards.
    Demo {
        /// Also write the figures as a results file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// sstpd nodes behind HAProxy.
    #[arg(long, value_name = "N", default_value_t = 2)]
    nodes: usize,
    /// Sessions of each load run (and users in FreeRADIUS).
    #[arg(long, value_name = "N", default_value_t = 200)]
    sessions: u64,
    /// Setups in flight.
    #[arg(long, value_name = "N", default_value_t = 32)]
    concurrency: usize,
    /// How long the all-nodes run holds its sessions.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    hold: f64,
    /// sstpd workers per node.
    #[arg(long, value_name = "N", default_value_t = 1)]
    workers: usize,
    /// Skip the failover and drain phases.
    #[arg(long)]
    no_failover: bool,
    /// The drain phase's `sstpctl drain --over`.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    drain_over: f64,
    /// Where the results file goes.
    #[arg(long, value_name = "FILE", default_value = "sstp-bench-cluster.json")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// `all`, a group (bulk, tcp, pps, latency, latency_icmp, setup,
    /// setup_radius, idle, churn, storm, ipv6: each IPv6 scenario after its
    /// IPv4 twin) or one scenario (bulk_up_1, bulk_up_64, bulk_down_1,
    /// bulk_down_64, tcp_up_1, tcp_up_8, tcp_up_64, tcp_down_1, tcp_down_8,
    /// pps_up, pps_down, latency, latency_icmp, setup, setup_radius, idle,
    /// churn, storm, bulk_up_1_v6, pps_up_v6, latency_v6), or `soak` (the
    /// long leak hunt before a release: never part of `all`).
    scenario: String,
    /// Where the results file goes.
    #[arg(long, value_name = "FILE", default_value = "sstp-bench-results.json")]
    out: PathBuf,
    /// Traffic (or hold) window of each load run.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    duration: f64,
    /// How long each bare-TLS reference runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    reference_duration: f64,
    /// Sessions held by the idle scenario.
    #[arg(long, value_name = "N", default_value_t = 4000)]
    idle_sessions: u64,
    /// Sessions set up by the setup scenarios (setup_radius: also its
    /// users, one per session).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    setup_sessions: u64,
    /// Setups in flight (setup), connect loops (churn), and the
    /// tls_handshake reference's clients.
    #[arg(long, value_name = "N", default_value_t = 64)]
    concurrency: usize,
    /// The local sstpd's `tun.offload` ("off" or "auto"; default: sstpd's
    /// own default).
    #[arg(long, value_name = "MODE", value_parser = ["off", "auto"])]
    tun_offload: Option<String>,
    /// The local sstpd's `tls.ktls`: `off` keeps every record in rustls,
    /// `require` in the kernel (the references always use rustls).
    #[arg(long, value_enum, default_value_t = KtlsArg::Auto)]
    ktls: KtlsArg,
    /// Downstream bulk scenarios: the peer's rate follows what arrives
    /// (`sstp-loadgen bulk --follow`: a few percent lost) instead of
    /// streaming as fast as it can (most of it dropped at the server).
    #[arg(long)]
    follow: bool,
    /// The latency scenarios also measure at this fixed rate (round trips
    /// a second, all sessions together), beside 10% and 50% of the
    /// maximum: a point that stays put when a build moves the maximum.
    #[arg(long, value_name = "RATE")]
    latency_rate: Option<f64>,
    /// sstpd workers, pinned to cores 0.. (default: half the cores).
    #[arg(long, value_name = "N")]
    server_workers: Option<usize>,
    /// sstp-loadgen workers, pinned to the cores after sstpd's (default:
    /// the other half).
    #[arg(long, value_name = "N")]
    loadgen_workers: Option<usize>,

    /// How long the soak runs (e.g. 30m, 5m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration, help_heading = "Soak (run soak)")]
    soak_duration: Duration,
    /// Time between the soak's samples.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, help_heading = "Soak (run soak)")]
    soak_interval: Duration,
    /// Sessions at once: held (idle and bulk), echo and churn loops.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2000,
        help_heading = "Soak (run soak)"
    )]
    soak_sessions: u64,
    /// Sessions of each interval's echo run (its round-trip percentiles).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Soak (run soak)"
    )]
    soak_echo_sessions: u64,
    /// Echo requests per second per echo session.
    #[arg(
        long,
        value_name = "PPS",
        default_value_t = 2.0,
        help_heading = "Soak (run soak)"
    )]
    soak_echo_pps: f64,
    /// Sessions held with bulk traffic both ways through the peer.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        help_heading = "Soak (run soak)"
    )]
    soak_bulk_sessions: u64,
    /// Packets per second per bulk session, each way (1,400-byte packets).
    #[arg(
        long,
        value_name = "PPS",
        default_value_t = 100.0,
        help_heading = "Soak (run soak)"
    )]
    soak_bulk_pps: f64,
    /// Concurrent connect-hold-disconnect loops (the churn rate: about
    /// loops / hold sessions set up per second).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        help_heading = "Soak (run soak)"
    )]
    soak_churn_loops: u64,
    /// How long each churn session is held.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Soak (run soak)")]
    soak_churn_hold: Duration,
    /// Where the soak's SVG charts go.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "sstp-bench-soak",
        help_heading = "Soak (run soak)"
    )]
    soak_report: PathBuf,

    /// Measure another SSTP server there instead of a local sstpd (no
    /// server CPU or memory figures then). Needs --user and --password;
    /// the traffic scenarios need `sstp-loadgen peer` on the server side.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Another server")]
    target: Option<String>,
    #[arg(long, requires = "target", help_heading = "Another server")]
    user: Option<String>,
    #[arg(long, requires = "target", help_heading = "Another server")]
    password: Option<String>,
    /// Verify the target's certificate against these CA certificates
    /// (default: accept any).
    #[arg(
        long,
        value_name = "FILE",
        requires = "target",
        help_heading = "Another server"
    )]
    ca: Option<PathBuf>,
    /// TLS server name and HTTP Host for the target.
    #[arg(
        long,
        value_name = "NAME",
        requires = "target",
        help_heading = "Another server"
    )]
    sni: Option<String>,
    /// Where the target's tunnel traffic reaches `sstp-loadgen peer`
    /// (default: the tunnel gateway, port 9000).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        requires = "target",
        help_heading = "Another server"
    )]
    peer: Option<std::net::SocketAddrV4>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Stream,
    Handshake,
    PingPong,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KtlsArg {
    Auto,
    Off,
    Require,
}

impl From<KtlsArg> for sstpd::config::KtlsMode {
    fn from(arg: KtlsArg) -> Self {
        match arg {
            KtlsArg::Auto => sstpd::config::KtlsMode::Auto,
            KtlsArg::Off => sstpd::config::KtlsMode::Off,
            KtlsArg::Require => sstpd::config::KtlsMode::Require,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KeyArg {
    Ecdsa,
    Rsa,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Gate {
            update_baseline,
            baseline,
            parts,
            out_dir,
            results,
            phases,
        } => run_gate(
            update_baseline,
            baseline.unwrap_or_else(gate::default_baseline_path),
            parts,
            out_dir,
            results,
            phases,
        ),
        Command::SplitProfile {
            input,
            comm,
            cpu_per_session_us,
        } => run_split_profile(&input, &comm, cpu_per_session_us),
        Command::Reference {
            duration,
            only,
            suite,
            record_size,
            write_size,
            clients,
            exchanges,
            message_size,
            rate,
            connections,
            key,
            out,
        } => {
            if !(duration > 0.0 && duration <= 600.0) {
                eprintln!("sstp-bench: --duration must be in (0, 600] seconds");
                return ExitCode::from(2);
            }
            let duration = Duration::from_secs_f64(duration);
            let cert = tls::CertSource::Generate(match key {
                KeyArg::Ecdsa => sstpd::tls::SelfSignedKey::EcdsaP256,
                KeyArg::Rsa => sstpd::tls::SelfSignedKey::Rsa2048,
            });
            let all = only.is_empty();
            let plan = ReferencePlan {
                stream: (all || only.contains(&Which::Stream)).then(|| tls::StreamParams {
                    suite: suite.clone(),
                    record_size,
                    write_size,
                    duration,
                    cert: cert.clone(),
                    ..Default::default()
                }),
                handshakes: (all || only.contains(&Which::Handshake)).then(|| {
                    tls::HandshakeParams {
                        clients,
                        exchanges,
                        duration,
                        cert: cert.clone(),
                        ..Default::default()
                    }
                }),
                ping_pong: (rate.is_none() && (all || only.contains(&Which::PingPong))).then(
                    || tls::PingPongParams {
                        suite: suite.clone(),
                        message_size,
                        duration,
                        cert: cert.clone(),
                        ..Default::default()
                    },
                ),
                paced_ping_pong: rate.filter(|_| all || only.contains(&Which::PingPong)).map(
                    |rate| tls::PacedPingPongParams {
                        suite: suite.clone(),
                        message_size,
                        connections,
                        rate,
                        duration,
                        cert: cert.clone(),
                        ..Default::default()
                    },
                ),
            };
            run_reference(&plan, out)
        }
        Command::Report { results, out } => match Results::load(&results) {
            Ok(r) => match report::write(&r, &out) {
                Ok(written) => {
                    println!("wrote {}", written.markdown.display());
                    for chart in written.charts {
                        println!("wrote {}", chart.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sstp-bench: report: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("sstp-bench: {}: {e}", results.display());
                ExitCode::from(2)
            }
        },
        Command::Compare {
            old,
            new,
            band,
            tail_band,
            memory_band,
            instructions_band,
        } => {
            let bands = Bands {
                time: band,
                tail: tail_band,
                memory: memory_band,
                instructions: instructions_band,
            };
            run_compare(&old, &new, &bands)
        }
        Command::Run(args) => run_scenarios(&args),
        Command::Demo { out } => run_demo(out.as_deref()),
        Command::Cluster(args) => run_cluster(&args),
    }
}

fn run_gate(
    update: bool,
    baseline_path: PathBuf,
    parts: Vec<Part>,
    out_dir: PathBuf,
    results: Option<PathBuf>,
    phases: bool,
) -> ExitCode {
    if update && std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        eprintln!(
            "sstp-bench: refusing --update-baseline with CI set: the baseline is raised by a \
             reviewed commit, never by CI"
        );
        return ExitCode::from(2);
    }
    let out_dir = std::path::absolute(&out_dir).unwrap_or(out_dir);
    let runner = match Runner::beside_current_exe(out_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sstp-bench: gate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let parts = if parts.is_empty() {
        Part::ALL.to_vec()
    } else {
        parts
    };
    let env = GateEnvironment::current();
    println!(
        "counting {} parts under callgrind ({}, {}{})",
        parts.len(),
        env.valgrind,
        env.rustc,
        if runner.no_aslr { ", no ASLR" } else { "" }
    );
    let mut measured = BTreeMap::new();
    for part in &parts {
        print!("  {:<10} ", part.as_str());
        let _ = std::io::stdout().flush();
        let start = Instant::now();
        match runner.run_part(*part) {
            Ok(count) => {
                println!(
                    "{:>15} Ir  ({:.1}s)",
                    gate::thousands(count.instructions),
                    start.elapsed().as_secs_f64()
                );
                measured.insert(part.as_str().to_owned(), count);
            }
            Err(e) => {
                println!("failed");
                eprintln!("sstp-bench: gate: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if phases && count_setup_phases(&runner, &measured).is_err() {
        return ExitCode::FAILURE;
    }
    if let Some(path) = results {
        let mut r = Results::new_run();
        r.gate = measured
            .iter()
            .map(|(part, c)| sstp_bench::results::GateCount {
                part: part.clone(),
                instructions: c.instructions,
                units: c.units,
                unit: c.unit.clone(),
            })
            .collect();
        if let Err(e) = r.save(&path) {
            eprintln!("sstp-bench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if update {
        return update_baseline(&baseline_path, env, measured);
    }
    let baseline = match Baseline::load(&baseline_path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "sstp-bench: gate: {e}\n(create it with `sstp-bench gate --update-baseline` \
                 and commit it)"
            );
            return ExitCode::FAILURE;
        }
    };
    // Judge only the parts that were asked for.
    let selected: BTreeMap<String, PartCount> = baseline
        .parts
        .iter()
        .filter(|(name, _)| parts.iter().any(|p| p.as_str() == name.as_str()))
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    let rows = gate::compare(&selected, &measured, baseline.tolerance_percent);
    println!();
    print!("{}", gate::render_table(&rows, baseline.tolerance_percent));
    for difference in env.differences(&baseline.environment) {
        println!(
            "note: measured with a different {difference}; counts may move for reasons \
             other than the code"
        );
    }
    if rows.iter().any(|r| r.verdict == gate::Verdict::Improved) {
        println!(
            "note: fewer instructions than the baseline: lock the gain in with \
             `sstp-bench gate --update-baseline` in the commit that made it"
        );
    }
    if rows.iter().any(|r| r.verdict == gate::Verdict::New) {
        println!("note: parts not in the baseline: add them with --update-baseline");
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.verdict.fails())
        .map(|r| r.part.as_str())
        .collect();
    if failed.is_empty() {
        println!(
            "gate passed: {} parts within ±{}%",
            rows.len(),
            baseline.tolerance_percent
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "gate FAILED: {} (profile with callgrind_annotate {}/callgrind.<part>.out; if the \
             cost is intended, raise the baseline with --update-baseline in a reviewed commit)",
            failed.join(", "),
            runner.out_dir.display()
        );
        ExitCode::FAILURE
    }
}

fn run_split_profile(
    input: &std::path::Path,
    comm: &str,
    cpu_per_session_us: Option<f64>,
) -> ExitCode {
    let text = if input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(input)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sstp-bench: {}: {e}", input.display());
            return ExitCode::FAILURE;
        }
    };
    let split = sstp_bench::profile::split_perf_script(&text, comm);
    if split.total() == 0 {
        eprintln!(
            "sstp-bench: no sample of a thread named {comm}* in {}",
            input.display()
        );
        return ExitCode::FAILURE;
    }
    print!("{}", split.render(cpu_per_session_us));
    ExitCode::SUCCESS
}

/// Counts the setup part phase by phase and prints the split (see
/// `sstp_bench::workload::SetupPhase`).
fn count_setup_phases(runner: &Runner, measured: &BTreeMap<String, PartCount>) -> Result<(), ()> {
    println!("\ncounting the setup part's phases (one callgrind run each)");
    let mut counts = Vec::new();
    for phase in SetupPhase::ALL {
        let start = Instant::now();
        match runner.run_setup_phase(phase) {
            Ok(n) => {
                println!(
                    "  {:<12} {:>15} Ir  ({:.1}s)",
                    phase.as_str(),
                    gate::thousands(n),
                    start.elapsed().as_secs_f64()
                );
                counts.push((phase, n));
            }
            Err(e) => {
                println!("  {:<12} failed", phase.as_str());
                eprintln!("sstp-bench: gate: {e}");
                return Err(());
            }
        }
    }
    let part = measured.get(Part::Setup.as_str()).map(|c| c.instructions);
    println!("\nsetup by phase (both ends of each session):");
    print!("{}", gate::render_phases(&counts, part));
    Ok(())
}

fn update_baseline(
    path: &std::path::Path,
    env: GateEnvironment,
    measured: BTreeMap<String, PartCount>,
) -> ExitCode {
    // A baseline that exists must parse: its tolerance and the parts not
    // measured this time are kept.
    let previous = if path.exists() {
        match Baseline::load(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!(
                    "sstp-bench: {e}
(fix or remove the file, then update again)"
                );
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let (baseline, changes) = gate::updated_baseline(previous.as_ref(), env, &measured);
    if let Err(e) = std::fs::write(path, baseline.to_json()) {
        eprintln!("sstp-bench: {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("BASELINE UPDATED: {}", path.display());
    if changes.is_empty() {
        println!("  (no count changed)");
    } else {
        for change in changes {
            println!("  {change}");
        }
    }
    println!("Commit it in its own reviewed change, saying why the counts moved.");
    ExitCode::SUCCESS
}

fn run_reference(plan: &ReferencePlan, out: Option<PathBuf>) -> ExitCode {
    println!("measuring bare-TLS references (sstpd's TLS stack: rustls/aws-lc-rs over tokio-uring, loopback)");
    let mut results = Results::new_run();
    match reference::measure(plan) {
        Ok(references) => {
            for r in &references {
                let params: Vec<String> =
                    r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("\n{} ({})", r.name, params.join(", "));
                for f in &r.figures {
                    let value = if f.unit == "B" || f.unit == "count" {
                        gate::thousands(f.value as u64)
                    } else {
                        format!("{:.3}", f.value)
                    };
                    println!("  {:<22} {:>14} {}", f.metric, value, f.unit);
                }
            }
            results.references = references;
        }
        Err(e) => {
            eprintln!("sstp-bench: reference: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = out {
        if let Err(e) = results.save(&path) {
            eprintln!("sstp-bench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("\nwrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn run_compare(old: &std::path::Path, new: &std::path::Path, bands: &Bands) -> ExitCode {
    let load = |path: &std::path::Path| {
        Results::load(path).map_err(|e| eprintln!("sstp-bench: {}: {e}", path.display()))
    };
    let (Ok(old_results), Ok(new_results)) = (load(old), load(new)) else {
        return ExitCode::from(2);
    };
    for difference in compare::machine_differences(&old_results, &new_results) {
        println!("note: different machine: {difference}");
    }
    let rows = compare::compare(&old_results, &new_results, bands);
    print!("{}", compare::render(&rows));
    if compare::regressed(&rows) {
        let worse = rows
            .iter()
            .filter(|r| r.change == compare::Change::Worse)
            .count();
        println!("{worse} figure(s) got worse beyond their noise band");
        ExitCode::FAILURE
    } else {
        println!("no regression beyond the noise bands");
        ExitCode::SUCCESS
    }
}

/// Exit status of an interrupted run (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Prepares a run or the demo: SIGINT/SIGTERM set a flag instead of
/// killing us (so every guard gets to remove what it made), and namespaces
/// left by crashed runs are removed. (sstpd and sstp-loadgen raise their
/// own open-file limits.)
fn prepare() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, interrupt.clone()) {
            eprintln!("sstp-bench: cannot handle signal {signal}: {e}");
        }
    }
    for name in sstpd::testing::netns::NetNs::sweep_stale(scenario::process::NAMESPACE_PREFIX) {
        println!("removed namespace {name}, left by an earlier run that did not finish");
    }
    interrupt
}

/// Whether we run as root, which a local sstpd needs (network
/// namespaces, its TUN device); says so when not.
fn is_root(command: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!(
        "sstp-bench: {command} needs root: it creates a network namespace and sstpd creates a \
         TUN device in it (run it as root, e.g. `sudo -E cargo run --release -p sstp-bench -- \
         {command}`; `run --target` needs no root)"
    );
    false
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    if value > 0.0 && value <= 3600.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("--{name} must be in (0, 3600] seconds"))
    }
}

/// The options of `run`, or a usage error.
fn bench_options(
    args: &RunArgs,
    binaries: scenario::Binaries,
) -> Result<scenario::BenchOptions, String> {
    let mut options = scenario::BenchOptions::new(binaries);
    options.duration = seconds("duration", args.duration)?;
    options.reference_duration = seconds("reference-duration", args.reference_duration)?;
    if args.concurrency == 0 || args.idle_sessions == 0 || args.setup_sessions == 0 {
        return Err("--concurrency and the session counts must be at least 1".into());
    }
    if args.idle_sessions.max(args.setup_sessions) > scenario::catalog::MAX_LOCAL_SESSIONS {
        return Err(format!(
            "at most {} sessions (the largest pool sstp-bench gives sstpd)",
            scenario::catalog::MAX_LOCAL_SESSIONS
        ));
    }
    options.soak = scenario::soak::SoakOptions {
        duration: args.soak_duration,
        interval: args.soak_interval,
        sessions: args.soak_sessions,
        echo_sessions: args.soak_echo_sessions,
        echo_pps: args.soak_echo_pps,
        bulk_sessions: args.soak_bulk_sessions,
        bulk_pps: args.soak_bulk_pps,
        churn_loops: args.soak_churn_loops,
        churn_hold: args.soak_churn_hold,
        report_dir: args.soak_report.clone(),
    };
    options.soak.check()?;
    options.idle_sessions = args.idle_sessions;
    options.setup_sessions = args.setup_sessions;
    options.concurrency = args.concurrency;
    options.tun_offload = args.tun_offload.clone();
    options.ktls = args.ktls.into();
    options.follow = args.follow;
    if let Some(rate) = args.latency_rate {
        if !(rate.is_finite() && rate >= 1.0) {
            return Err(format!(
                "--latency-rate {rate}: a rate of at least 1 round trip a second"
            ));
        }
        options.latency_rate = Some(rate);
    }
    if let Some(n) = args.server_workers {
        options.topology.server_workers = n.max(1);
    }
    if let Some(n) = args.loadgen_workers {
        options.topology.loadgen_workers = n.max(1);
    }
    if let Some(target) = &args.target {
        let (Some(user), Some(password)) = (&args.user, &args.password) else {
            return Err("--target needs --user and --password".into());
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(target.as_str())
            .map_err(|e| format!("--target {target}: {e}"))?
            .next()
            .ok_or_else(|| format!("--target {target}: no address"))?;
        let host = target
            .rsplit_once(':')
            .map_or(target.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let sni = args.sni.clone().or_else(|| {
            host.parse::<std::net::IpAddr>()
                .is_err()
                .then(|| host.to_owned())
        });
        options.remote = Some(scenario::loadgen::Connection {
            target: addr,
            user: user.clone(),
            password: password.clone(),
            ca: args.ca.clone(),
            sni,
            peer: args.peer,
        });
    }
    Ok(options)
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

fn run_scenarios(args: &RunArgs) -> ExitCode {
    let specs = match scenario::select(&args.scenario) {
        Ok(specs) => specs,
        Err(e) => {
            eprintln!("sstp-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // Check the arguments before building anything.
    let placeholder = scenario::Binaries {
        sstpd: PathBuf::new(),
        loadgen: PathBuf::new(),
    };
    if let Err(e) = bench_options(args, placeholder) {
        eprintln!("sstp-bench: {e}");
        return ExitCode::from(2);
    }
    if args.target.is_none() && !is_root("run") {
        return ExitCode::FAILURE;
    }
    let interrupt = prepare();
    let binaries = match scenario::ensure_built(&interrupt) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sstp-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = bench_options(args, binaries).expect("checked above");
    let mut run = scenario::ScenarioRun::new(&args.out);
    let machine = &run.results.machine;
    let t = &options.topology;
    println!(
        "sstp-bench run {}: {} scenario(s); {} ({} cores, load average {}: shared with other work, \
         so absolute figures move between runs and the ratios much less)",
        args.scenario,
        specs.len(),
        machine.cpu_model,
        machine.logical_cores,
        load_average().unwrap_or_else(|| "?".into()),
    );
    let notes = &mut run.results.notes;
    match &options.remote {
        None => {
            let loadgen_cores = t
                .placement()
                .cpus
                .map(|c| format!("core(s) {c:?}"))
                .unwrap_or_else(|| "any core".into());
            let line = format!(
                "sstpd {} worker(s) on core(s) 0..{}, sstp-loadgen {} worker(s) on {loadgen_cores}, \
                 its peer unpinned; all in one network namespace, over loopback like the references{}",
                t.server_workers,
                t.server_workers - 1,
                t.loadgen_workers,
                if specs.iter().any(|s| matches!(s.kind, scenario::Kind::Tcp { .. })) {
                    " (tcp_*: sstp-loadgen tun and the iperf3 clients in a second namespace, \
                     over a veth pair)"
                } else {
                    ""
                },
            );
            println!("{line}");
            notes.push(line);
        }
        Some(c) => {
            let line = format!(
                "--target {}: not our server, so no server CPU or memory figures; the \
                 references are bare TLS on this machine (loopback), and ratios compare the \
                 target with them",
                c.target
            );
            println!("{line}");
            notes.push(line);
        }
    }
    if options.binaries.debug_build() {
        let line =
            "measured debug builds of sstpd or sstp-loadgen: the figures say little".to_string();
        println!("note: {line}");
        notes.push(line);
    }
    if options.remote.is_none() && options.binaries.sstpd_has_test_hooks() {
        let line = "sstpd carries sstpd::testing's fault hooks (built in one cargo run with \
                    sstp-bench): not the binary that ships; build it on its own with \
                    `cargo build --release -p sstpd -p sstp-loadgen`"
            .to_string();
        println!("note: {line}");
        notes.push(line);
    }
    let mut failed = false;
    let mut interrupted = false;
    for spec in specs {
        if interrupt.load(Ordering::Acquire) {
            interrupted = true;
            break;
        }
        println!(
            "\n{}: {}",
            spec.name,
            spec.load
                .replace("{concurrency}", &options.concurrency.to_string())
        );
        let mut print = |line: &str| println!("{line}");
        match scenario::catalog::run(&spec, &options, &interrupt, &mut print) {
            Ok(outcome) => {
                run.add_references(outcome.references);
                for result in outcome.results {
                    run.add_scenario(result);
                }
                if !outcome.series.is_empty() {
                    let dir = &options.soak.report_dir;
                    match report::write_series(&outcome.series, dir) {
                        Ok(charts) => {
                            for chart in charts {
                                println!("wrote {}", chart.display());
                            }
                        }
                        Err(e) => {
                            eprintln!(
                                "sstp-bench: {}: charts in {}: {e}",
                                spec.name,
                                dir.display()
                            );
                            failed = true;
                        }
                    }
                    run.results.series.extend(outcome.series);
                }
            }
            Err(scenario::ScenarioError::Interrupted) => {
                interrupted = true;
                break;
            }
            Err(e) => {
                eprintln!("sstp-bench: {}: {e}", spec.name);
                failed = true;
            }
        }
    }
    if interrupted {
        run.results.notes.push("interrupted: a partial run".into());
        println!("\ninterrupted: sstpd, the load generator and the namespace were removed");
    }
    if !run.results.scenarios.is_empty() {
        match run.save() {
            Ok(path) => println!("\nwrote {}", path.display()),
            Err(e) => {
                eprintln!("sstp-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if failed || run.results.scenarios.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The binaries to measure (built if needed), or the exit status saying
/// why not.
fn built(interrupt: &AtomicBool) -> Result<scenario::Binaries, ExitCode> {
    match scenario::ensure_built(interrupt) {
        Ok(b) => Ok(b),
        Err(scenario::ScenarioError::Interrupted) => Err(ExitCode::from(EXIT_INTERRUPTED)),
        Err(e) => {
            eprintln!("sstp-bench: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn run_cluster(args: &ClusterArgs) -> ExitCode {
    use scenario::cluster::topology::{
        MAX_NODES as max_nodes, MAX_SESSIONS as MAX_CLUSTER_SESSIONS,
    };
    if args.nodes == 0 || args.nodes > max_nodes {
        eprintln!("sstp-bench: --nodes must be 1 to {max_nodes}");
        return ExitCode::from(2);
    }
    if args.sessions == 0
        || args.sessions > MAX_CLUSTER_SESSIONS
        || args.concurrency == 0
        || args.workers == 0
    {
        eprintln!(
            "sstp-bench: --sessions must be 1 to {MAX_CLUSTER_SESSIONS}, --concurrency and --workers at least 1"
        );
        return ExitCode::from(2);
    }
    let hold = match seconds("hold", args.hold) {
        Ok(hold) => hold,
        Err(e) => {
            eprintln!("sstp-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if !is_root("cluster") {
        return ExitCode::FAILURE;
    }
    let interrupt = prepare();
    let binaries = match built(&interrupt) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let mut options = scenario::cluster::ClusterOptions::new(binaries);
    options.nodes = args.nodes;
    options.sessions = args.sessions;
    options.concurrency = args.concurrency;
    options.hold = hold;
    options.workers = args.workers;
    options.failover = !args.no_failover;
    options.drain_over = match seconds("drain-over", args.drain_over) {
        Ok(over) => over,
        Err(e) => {
            eprintln!("sstp-bench: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "sstp-bench cluster: {} sstpd node(s) behind HAProxy, FreeRADIUS with a shared SQLite \
         pool, sstp-loadgen; each in a network namespace (load average {})",
        args.nodes,
        load_average().unwrap_or_else(|| "?".into())
    );
    let mut print = |line: &str| println!("{line}");
    match scenario::cluster::run(&options, &interrupt, &mut print) {
        Ok(report) => {
            if options.binaries.debug_build() {
                println!("note: debug builds of sstpd or sstp-loadgen: the rates say little");
            }
            println!(
                "\n{}\nEverything is gone again: processes {}, namespaces {}.",
                scenario::cluster::table(&report.results).trim_end(),
                report
                    .pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                report.namespaces.join(" ")
            );
            if let Err(e) = report.results.save(&args.out) {
                eprintln!("sstp-bench: {}: {e}", args.out.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(scenario::ScenarioError::Interrupted) => {
            println!("interrupted: every process and namespace of the cluster was removed");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("sstp-bench: cluster: {e}");
            eprintln!("(every process and namespace of the cluster was removed)");
            ExitCode::FAILURE
        }
    }
}

fn run_demo(out: Option<&std::path::Path>) -> ExitCode {
    if !is_root("demo") {
        return ExitCode::FAILURE;
    }
    let interrupt = prepare();
    println!("sstp-bench demo: sstpd and sstp-loadgen in a network namespace, about 10 seconds");
    let binaries = match built(&interrupt) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let mut print = |line: &str| println!("{line}");
    match scenario::demo::run(&binaries, &interrupt, &mut print) {
        Ok(report) => {
            let machine = &report.results.machine;
            println!(
                "\n{}\n{} ({} cores, load average {}): the machine is shared, so absolute \
                 figures vary between runs; the ratios much less.\n\
                 Everything is gone again: sstpd, the peer, namespace {}, the temporary files.\n\
                 Next: `sstp-bench run all` measures every scenario (docs/benchmarking.md).",
                report.table.trim_end(),
                machine.cpu_model,
                machine.logical_cores,
                load_average().unwrap_or_else(|| "?".into()),
                report.namespace
            );
            if let Some(path) = out {
                if let Err(e) = report.results.save(path) {
                    eprintln!("sstp-bench: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(scenario::ScenarioError::Interrupted) => {
            println!(
                "interrupted: sstpd, the peer, the namespace and the temporary files were removed"
            );
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("sstp-bench: demo: {e}");
            eprintln!("(everything the demo started or created was removed)");
            ExitCode::FAILURE
        }
    }
}
