//! `sstpctl`: talks to a running sstpd over its control socket
//! (`[control] socket`, see docs/operations.md "Control CLI").
//!
//! Exit codes: 0 done, 1 the server answered with an error, 2 the server
//! could not be reached (the message names the socket and the likely
//! cause).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use humantime_serde::re::humantime;
use sstpd::app::control::protocol::{
    exchange, Answer, DrainReport, KillReport, KillSelector, ReloadReport, Request, SessionInfo,
    SessionList, Stats,
};
use sstpd::config::DEFAULT_CONTROL_SOCKET;

/// The environment variable that names the socket when `--socket` does not.
const SOCKET_ENV: &str = "SSTPCTL_SOCKET";
/// How long the server gets to answer (its own bounds are shorter).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Control a running sstpd.
#[derive(Debug, Parser)]
#[command(name = "sstpctl", version)]
struct Cli {
    /// The control socket [default: $SSTPCTL_SOCKET, else /run/sstpd/control.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the server's answer as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the sessions.
    Sessions,
    /// Show one session, by the ID `sessions` lists (its Acct-Session-Id).
    Session { id: String },
    /// End sessions (Call Disconnect; accounting Stop with Admin-Reset).
    /// Several criteria must all match.
    Kill {
        /// The session ID.
        #[arg(long)]
        id: Option<String>,
        /// Every session of this user.
        #[arg(long)]
        user: Option<String>,
        /// The session with this tunnel address (IPv4, or in its IPv6 /64).
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
    /// The counters and gauges (the table shows the non-zero counters).
    Stats,
    /// Re-read the configuration file, as SIGHUP does.
    Reload,
    /// Show the running configuration.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Take this node out of service gently, sessions spread over a period.
    ///
    /// Refuses new connections (and answers 503 on the metrics endpoint's
    /// /health, for the load balancer), disconnects the sessions one by
    /// one spread evenly over the period (Call Disconnect; accounting Stop
    /// with Admin-Reboot), then stays up until stopped or `drain --cancel`:
    /// `systemctl stop` then ends the process with no session left to cut.
    Drain {
        /// The period to spread the disconnects over, e.g. 90s or 5m
        /// [default: server.drain_period, 60s unless configured].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "cancel")]
        over: Option<Duration>,
        /// Stop draining: take new connections again (the sessions not
        /// yet disconnected stay).
        #[arg(long, visible_alias = "resume")]
        cancel: bool,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 90s, 5m, 1h)"))
}

#[derive(Debug, Subcommand)]
enum Show {
    /// The configuration as TOML, every secret redacted.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let request = match cli.command {
        Command::Sessions => Request::Sessions,
        Command::Session { id } => Request::Session { id },
        Command::Kill { id, user, address } => {
            let selector = KillSelector { id, user, address };
            if selector.is_empty() {
                eprintln!("sstpctl: kill needs --id, --user or --address");
                return ExitCode::from(2);
            }
            Request::Kill(selector)
        }
        Command::Stats => Request::Stats,
        Command::Reload => Request::Reload,
        Command::Show { what: Show::Config } => Request::ShowConfig,
        Command::Drain { cancel: true, .. } => Request::Resume,
        Command::Drain { over, .. } => Request::Drain {
            over_ms: over.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
    };
    let socket = cli
        .socket
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let answer = match exchange(&socket, &request, ANSWER_TIMEOUT) {
        Ok(answer) => answer,
        Err(message) => {
            eprintln!("sstpctl: {message}");
            return ExitCode::from(2);
        }
    };
    if let Answer::Error { message } = &answer {
        eprintln!("sstpctl: {message}");
        return ExitCode::from(1);
    }
    let shown = if cli.json {
        serde_json::to_string_pretty(&answer).map(|mut text| {
            text.push('\n');
            text
        })
    } else {
        Ok(render(&request, &answer))
    };
    match shown {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sstpctl: {e}");
            ExitCode::from(1)
        }
    }
}

/// The answer for people: `session ID` in detail, lists as tables.
fn render(request: &Request, answer: &Answer) -> String {
    match answer {
        Answer::Sessions(list) if matches!(request, Request::Session { .. }) => {
            let mut out: String = list.sessions.iter().map(session_details).collect();
            out.push_str(&unanswered(&list.unanswered_workers));
            out
        }
        Answer::Sessions(list) => sessions_table(list),
        Answer::Killed(report) => killed(report),
        Answer::Stats(stats) => stats_table(stats),
        Answer::Reloaded(report) => reloaded(report),
        Answer::Config { toml } => toml.clone(),
        Answer::Drain(report) => drained(report),
        Answer::Error { message } => format!("error: {message}\n"),
        _ => "(an answer this sstpctl does not know how to show; try --json)\n".into(),
    }
}

fn dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

fn uptime(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

fn address(s: &SessionInfo) -> String {
    match (&s.ipv4, &s.ipv6_prefix) {
        (Some(v4), Some(v6)) => format!("{v4},{v6}"),
        (v4, v6) => v4
            .map(|a| a.to_string())
            .or_else(|| v6.clone())
            .unwrap_or_else(|| "-".into()),
    }
}

fn sessions_table(list: &SessionList) -> String {
    let header = [
        "ID",
        "USER",
        "ADDRESS",
        "CLIENT",
        "WORKER",
        "UPTIME",
        "BYTES IN",
        "PKTS IN",
        "BYTES OUT",
        "PKTS OUT",
        "TLS",
        "CIPHER",
        "BINDING",
    ];
    let rows: Vec<Vec<String>> = list
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                dash(s.user.as_ref()),
                address(s),
                s.client.to_string(),
                s.worker.to_string(),
                if s.established {
                    uptime(s.uptime_secs)
                } else {
                    format!("{} (setup)", uptime(s.uptime_secs))
                },
                s.bytes_in.to_string(),
                s.packets_in.to_string(),
                s.bytes_out.to_string(),
                s.packets_out.to_string(),
                dash(s.tls_version.as_ref()),
                dash(s.tls_cipher.as_ref()),
                dash(s.crypto_binding.as_ref()),
            ]
        })
        .collect();
    let mut out = table(&header, &rows);
    out.push_str(&format!("{} session(s)\n", list.sessions.len()));
    if list.draining {
        out.push_str("draining: new connections are refused (sstpctl drain --cancel reopens)\n");
    }
    out.push_str(&unanswered(&list.unanswered_workers));
    out
}

fn session_details(s: &SessionInfo) -> String {
    let fields = [
        ("id", s.id.clone()),
        ("user", dash(s.user.as_ref())),
        ("ipv4", dash(s.ipv4)),
        ("ipv6 prefix", dash(s.ipv6_prefix.as_ref())),
        ("client", s.client.to_string()),
        ("worker", s.worker.to_string()),
        ("established", s.established.to_string()),
        ("started (unix)", s.started_unix.to_string()),
        ("uptime", uptime(s.uptime_secs)),
        ("bytes in", s.bytes_in.to_string()),
        ("packets in", s.packets_in.to_string()),
        ("bytes out", s.bytes_out.to_string()),
        ("packets out", s.packets_out.to_string()),
        ("tls version", dash(s.tls_version.as_ref())),
        ("tls cipher", dash(s.tls_cipher.as_ref())),
        ("kernel tls", s.ktls.to_string()),
        ("tls records", dash(s.tls_records.as_ref())),
        ("crypto binding", dash(s.crypto_binding.as_ref())),
    ];
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    fields
        .iter()
        .map(|(k, v)| format!("{k:width$}  {v}\n"))
        .collect()
}

fn unanswered(workers: &[usize]) -> String {
    if workers.is_empty() {
        return String::new();
    }
    format!("warning: worker(s) {workers:?} did not answer in time; their sessions are missing\n")
}

fn killed(report: &KillReport) -> String {
    let mut out = format!("killed {} session(s)\n", report.killed);
    for id in &report.ids {
        out.push_str(&format!("  {id}\n"));
    }
    out.push_str(&unanswered(&report.unanswered_workers));
    out
}

fn stats_table(stats: &Stats) -> String {
    let gauges: Vec<Vec<String>> = stats
        .gauges
        .iter()
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    let counters: Vec<Vec<String>> = stats
        .counters
        .iter()
        .filter(|(_, &v)| v != 0)
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    let mut out = table(&["GAUGE", "VALUE"], &gauges);
    out.push('\n');
    out.push_str(&table(&["COUNTER", "VALUE"], &counters));
    out
}

fn drained(report: &DrainReport) -> String {
    if !report.draining {
        return format!(
            "drain cancelled: taking new connections again; {} session(s) it had not disconnected stay\n",
            report.sessions
        );
    }
    let over = Duration::from_millis(report.over_ms);
    let interval = Duration::from_millis(report.interval_ms);
    let mut out = String::from("draining: new connections are refused, /health answers 503\n");
    if report.sessions == 0 {
        out.push_str("no sessions to disconnect\n");
    } else {
        out.push_str(&format!(
            "disconnecting {} session(s) over {}: one every {}, the first now\n",
            report.sessions,
            humantime::format_duration(over),
            humantime::format_duration(interval),
        ));
    }
    out.push_str(
        "the server stays up: stop it (systemctl stop sstpd) or `sstpctl drain --cancel`\n",
    );
    out
}

fn reloaded(report: &ReloadReport) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    format!(
        "reloaded\napplied:          {}\nrestart required: {}\n",
        list(&report.applied),
        list(&report.restart_required)
    )
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}
