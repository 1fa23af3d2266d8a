//! `sstp-bench demo`, `sstp-bench run` and `run --target` end to end: the
//! real sstp-bench, sstpd and sstp-loadgen binaries, in network namespaces
//! of their own.
//! Needs root (namespaces, TUN), and FreeRADIUS for `setup_radius`. The
//! figures of debug builds mean little, so these tests check what a run
//! must do whatever the machine's speed: every session comes up, every figure that has a reference carries its
//! ratio, the results file is readable, and nothing is left behind.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sstp_bench::results::{Figure, Results, ScenarioResult};

mod common;
use common::sibling_binary;

/// Runs sstp-bench with the sibling sstpd and sstp-loadgen; returns its
/// output and its pid (which names its namespaces).
fn sstp_bench(args: &[&str]) -> (Output, u32) {
    sstp_bench_with(Command::new(env!("CARGO_BIN_EXE_sstp-bench")), args)
}

/// [`sstp_bench`] through `command` (e.g. `ip netns exec NS sstp-bench`).
fn sstp_bench_with(mut command: Command, args: &[&str]) -> (Output, u32) {
    let child = command
        .args(args)
        .env("SSTPD_BIN", sibling_binary("sstpd"))
        .env("SSTP_LOADGEN_BIN", sibling_binary("sstp-loadgen"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sstp-bench");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for sstp-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sstp-bench {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (output, pid)
}

/// The namespaces sstp-bench with this pid created and left
/// (`sstp-bench-PID-N`, as `sstpd::testing::netns::NetNs` names them).
fn namespaces_left_by(pid: u32) -> Vec<String> {
    let prefix = format!("sstp-bench-{pid}-");
    let listing = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_demo_sets_up_sessions_echoes_moves_bulk_and_leaves_nothing() {
    let (output, pid) = sstp_bench(&["demo"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Every step reported, with nothing lost on the way.
    assert!(stdout.contains("200 up in"), "{stdout}");
    assert!(stdout.contains(", 0 failed"), "{stdout}");
    assert!(stdout.contains(", 0 lost"), "{stdout}");
    // The table: each figure beside its same-run reference and a ratio.
    for row in [
        "sessions set up (200)",
        "echo round trip p50",
        "echo round trip p99",
        "bulk upstream (4 sessions)",
        "sstpd CPU per GB",
        "sstpd memory, 200 sessions up",
    ] {
        assert!(stdout.contains(row), "no {row:?} row in:\n{stdout}");
    }
    let bulk = stdout
        .lines()
        .find(|l| l.starts_with("bulk upstream"))
        .expect("bulk row");
    assert!(
        bulk.contains("Gbit/s") && bulk.contains("(stream)"),
        "{bulk}"
    );
    // Cleaned up: the namespace it used is gone.
    assert!(
        stdout.contains(&format!("namespace sstp-bench-{pid}-")),
        "{stdout}"
    );
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
    assert!(stdout.contains("Everything is gone again"), "{stdout}");
}

/// `sstp-bench run ARGS --out FILE`: its stdout, the results file read
/// back, and its pid.
fn run_to_results(args: &[&str]) -> (String, Results, u32) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let results_path = dir.path().join("results.json");
    let mut all = vec!["run"];
    all.extend(args);
    all.extend(["--out", results_path.to_str().expect("utf-8 path")]);
    let (output, pid) = sstp_bench(&all);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let results = Results::load(&results_path).expect("results file readable");
    (stdout, results, pid)
}

fn scenario<'a>(results: &'a Results, name: &str) -> &'a ScenarioResult {
    results
        .scenarios
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} scenario in {results:?}"))
}

fn figure<'a>(scenario: &'a ScenarioResult, metric: &str) -> &'a Figure {
    scenario
        .figures
        .iter()
        .find(|f| f.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} figure in {scenario:?}"))
}

/// A positive figure beside a positive reference named `reference`, with
/// the ratio of the two.
fn assert_beside(figure: &Figure, reference: &str) {
    assert!(figure.value > 0.0, "{figure:?}");
    let r = figure
        .reference
        .as_ref()
        .unwrap_or_else(|| panic!("{figure:?} has no reference"));
    assert_eq!(r.name, reference);
    assert!(r.value > 0.0, "{r:?}");
    assert!((r.ratio - figure.value / r.value).abs() < 1e-9, "{r:?}");
}

#[test]
fn a_setup_run_writes_figures_with_same_run_references_and_ratios() {
    // Enough sessions for sstpd's CPU over the ramp to span several of
    // /proc's 10 ms ticks: with 24, a release build's ramp read 0 ticks
    // in two of six runs.
    let (stdout, results, pid) = run_to_results(&[
        "setup",
        "--setup-sessions",
        "200",
        "--concurrency",
        "4",
        "--duration",
        "1",
        "--reference-duration",
        "0.3",
    ]);
    assert!(stdout.contains("4 in flight"), "{stdout}");
    let setup = scenario(&results, "setup");
    assert_eq!(figure(setup, "failed_sessions").value, 0.0);
    assert_beside(figure(setup, "setup_rate"), "tls_handshake");
    // Server cost from /proc: CPU per 1,000 sessions set up.
    assert_eq!(
        setup.server.as_ref().expect("server cost").sessions_set_up,
        200
    );
    let per_1000 = figure(setup, "server_cpu_per_1000_sessions");
    assert!(per_1000.value > 0.0, "{per_1000:?}");
    // The references it was measured against are in the same file.
    let names: Vec<&str> = results.references.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["tls_handshake", "tls_handshake_exchanges"]);
    // Beside the reference with a session setup's exchanges too: six, with
    // the bench's sstpd handing out two DNS servers.
    assert_beside(
        figure(setup, "setup_rate_shaped"),
        "tls_handshake_exchanges",
    );
    assert_beside(
        figure(setup, "server_cpu_per_1000_sessions_shaped"),
        "tls_handshake_exchanges",
    );
    assert_eq!(results.references[1].params["exchanges"], "6");
    assert!(stdout.contains("then 6 exchanges"), "{stdout}");
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
}

#[test]
fn a_storm_run_drops_every_session_and_sets_them_all_up_again() {
    let (stdout, results, pid) = run_to_results(&[
        "storm",
        "--idle-sessions",
        "40",
        "--concurrency",
        "8",
        "--reference-duration",
        "0.3",
    ]);
    assert!(stdout.contains("the load generator killed"), "{stdout}");
    let storm = scenario(&results, "storm");
    assert_eq!(figure(storm, "sessions_dropped").value, 40.0);
    assert_eq!(figure(storm, "reconnected").value, 40.0);
    assert_eq!(figure(storm, "failed_sessions").value, 0.0);
    assert!(figure(storm, "recovery_s").value > 0.0);
    assert_beside(figure(storm, "reconnect_rate"), "tls_handshake");
    // Both generations' sessions were gone before the figures were taken
    // (the scenario waits for the server's sessions_active to reach 0).
    assert!(figure(storm, "server_rss_after").value > 0.0);
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
}

#[test]
fn a_tcp_run_puts_iperf3_through_a_tunnel_beside_the_stream_reference() {
    let (stdout, results, pid) =
        run_to_results(&["tcp_up_1", "--duration", "1", "--reference-duration", "0.3"]);
    assert!(stdout.contains("iperf3 1 stream(s)"), "{stdout}");
    let tcp = scenario(&results, "tcp_up_1");
    assert_eq!(figure(tcp, "failed_sessions").value, 0.0);
    // iperf3's received throughput, beside the bulk upstream reference.
    assert_beside(figure(tcp, "throughput"), "tls_stream_16384");
    assert_eq!(tcp.params["iperf3_clients"], "1");
    assert_eq!(tcp.params["direction"], "up");
    assert!(tcp.params.contains_key("limited_by"), "{:?}", tcp.params);
    let usage = tcp.server.as_ref().expect("server cost");
    assert!(usage.bytes > 0, "{usage:?}");
    assert!(
        results
            .references
            .iter()
            .any(|r| r.name == "tls_stream_16384"),
        "{:?}",
        results.references
    );
    // Both namespaces (sstpd's and the tunnel clients') are gone.
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
}

#[test]
fn a_setup_radius_run_authenticates_and_accounts_every_session_through_freeradius() {
    let (stdout, results, pid) = run_to_results(&[
        "setup_radius",
        "--setup-sessions",
        "16",
        "--concurrency",
        "4",
    ]);
    assert!(stdout.contains("reference setup_local_users"), "{stdout}");
    assert!(stdout.contains("FreeRADIUS with the 16 users"), "{stdout}");
    let radius = scenario(&results, "setup_radius");
    assert_eq!(figure(radius, "failed_sessions").value, 0.0);
    // Every session was accounted: a Start and a Stop in FreeRADIUS's
    // detail file each.
    assert_eq!(figure(radius, "acct_start_records").value, 16.0);
    assert_eq!(figure(radius, "acct_stop_records").value, 16.0);
    assert_eq!(
        radius.server.as_ref().expect("server cost").sessions_set_up,
        16
    );
    // Beside the local-users run of the same invocation.
    assert_beside(figure(radius, "setup_rate"), "setup_local_users");
    let local = results
        .reference("setup_local_users")
        .expect("the local-users run is in the file");
    assert_eq!(local.params.get("users").map(String::as_str), Some("16"));
    // FreeRADIUS's CPU is a share of its own (16 sessions may cost less
    // than a clock tick: present, not necessarily positive).
    assert!(figure(radius, "radius_cores").value >= 0.0);
    assert!(figure(radius, "radius_cpu_per_1000_sessions").value >= 0.0);
    for (key, value) in [("auth", "mschapv2"), ("users", "16")] {
        assert_eq!(
            radius.params.get(key).map(String::as_str),
            Some(value),
            "{:?}",
            radius.params
        );
    }
    assert!(radius.params.contains_key("accounting"));
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
}

#[test]
fn a_target_run_measures_another_server_through_its_peer() {
    // "Another" server: sstpd on its embedded defaults, started by hand in
    // a namespace with `sstp-loadgen peer` beside it, as an operator would
    // set up a server under test. sstp-bench runs in the same namespace
    // and knows it only by address and credentials.
    let state = tempfile::tempdir().expect("temporary directory");
    let ns = sstpd::testing::netns::NetNs::new("sstp-bench-target").expect("namespace");
    ns.spawn_tracked(
        ns.command(sibling_binary("sstpd"))
            .env("SSTPD_DEMO_PASSWORD", "target-pw")
            .env("STATE_DIRECTORY", state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("start sstpd");
    ns.spawn_tracked(
        ns.command(sibling_binary("sstp-loadgen"))
            .args(["peer", "--bind", "0.0.0.0:9000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("start the peer");
    let listening = ns.run(|| {
        (0..200).any(|_| {
            let up = std::net::TcpStream::connect("127.0.0.1:4443").is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(25));
            }
            up
        })
    });
    assert!(listening, "sstpd did not listen on 127.0.0.1:4443");

    let dir = tempfile::tempdir().expect("temporary directory");
    let results_path = dir.path().join("results.json");
    let mut command = ns.command(env!("CARGO_BIN_EXE_sstp-bench"));
    command.env("SSTPD_BIN", sibling_binary("sstpd"));
    command.env("SSTP_LOADGEN_BIN", sibling_binary("sstp-loadgen"));
    let (output, _) = sstp_bench_with(
        command,
        &[
            "run",
            "latency",
            "--target",
            "127.0.0.1:4443",
            "--user",
            "demo",
            "--password",
            "target-pw",
            "--duration",
            "0.5",
            "--reference-duration",
            "0.3",
            "--latency-rate",
            "300",
            "--out",
            results_path.to_str().expect("utf-8 path"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("--target 127.0.0.1:4443"), "{stdout}");
    ns.kill_tracked();

    let results = Results::load(&results_path).expect("results file readable");
    let names: Vec<&str> = results.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "latency_max",
            "latency_10pct",
            "latency_50pct",
            "latency_at_300"
        ]
    );
    for scenario in &results.scenarios {
        // Not our server: no CPU or memory of it is claimed.
        assert!(scenario.server.is_none(), "{scenario:?}");
        assert_eq!(
            scenario.params.get("target").map(String::as_str),
            Some("127.0.0.1:4443")
        );
    }
    let paced = &results.scenarios[1];
    let p50 = paced
        .figures
        .iter()
        .find(|f| f.metric == "latency_p50")
        .unwrap_or_else(|| panic!("no latency_p50 in {paced:?}"));
    assert!(p50.value > 0.0, "{p50:?}");
    let reference = p50.reference.as_ref().expect("p50 has a reference");
    assert_eq!(reference.name, "tls_ping_pong");
    // Replies came back through the target's tunnels at the paced rate.
    let rate = paced
        .figures
        .iter()
        .find(|f| f.metric == "round_trip_rate")
        .expect("round_trip_rate");
    assert!(rate.value > 0.0, "{rate:?}");
    // `--latency-rate`: the same figures at a rate that does not follow
    // the maximum.
    let fixed = &results.scenarios[3];
    assert_eq!(
        fixed.params.get("fixed_rate").map(String::as_str),
        Some("300")
    );
    assert!(!fixed.params.contains_key("rate_of_max"), "{fixed:?}");
    for metric in ["latency_p50", "round_trip_rate"] {
        let figure = fixed
            .figures
            .iter()
            .find(|f| f.metric == metric)
            .unwrap_or_else(|| panic!("no {metric} in {fixed:?}"));
        assert!(figure.value > 0.0, "{figure:?}");
    }
}

#[test]
fn the_reference_command_paces_the_ping_pong_at_a_rate() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("references.json");
    let (output, _) = sstp_bench(&[
        "reference",
        "--only",
        "ping-pong",
        "--rate",
        "2000",
        "--connections",
        "2",
        "--duration",
        "0.4",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results = Results::load(&out).expect("results file readable");
    let names: Vec<&str> = results.references.iter().map(|r| r.name.as_str()).collect();
    // Paced instead of the closed loop, not beside it.
    assert_eq!(names, ["tls_ping_pong_paced_at_2000"], "{stdout}");
    let paced = &results.references[0];
    assert_eq!(paced.params["connections"], "2");
    assert!(paced.figure("latency_p50").expect("a p50").value > 0.0);
}

#[test]
fn latency_icmp_times_echo_requests_the_kernel_answers_beside_the_ping_pong() {
    let (stdout, results, pid) = run_to_results(&[
        "latency_icmp",
        "--duration",
        "0.5",
        "--reference-duration",
        "0.3",
    ]);
    let names: Vec<&str> = results.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "latency_icmp_max",
            "latency_icmp_10pct",
            "latency_icmp_50pct"
        ],
        "{stdout}"
    );
    // ICMP echo requests, not the peer's UDP: the load generator ran in
    // echo mode.
    let max = scenario(&results, "latency_icmp_max");
    assert_eq!(max.params.get("mode").map(String::as_str), Some("echo"));
    assert!(figure(max, "round_trip_rate").value > 0.0);
    let paced = scenario(&results, "latency_icmp_10pct");
    assert_beside(figure(paced, "latency_p50"), "tls_ping_pong");
    // And beside bare TLS paced at the point's own rate, measured for it.
    for metric in ["latency_p50_paced", "latency_p99_paced"] {
        assert_beside(figure(paced, metric), "tls_ping_pong_paced_10pct");
    }
    let reference = results
        .references
        .iter()
        .find(|r| r.name == "tls_ping_pong_paced_10pct")
        .unwrap_or_else(|| panic!("no paced reference in {stdout}"));
    let rate: f64 = reference.params["rate"].parse().expect("a rate");
    let max = figure(max, "round_trip_rate").value;
    assert!((rate - max * 0.1).abs() <= 1.0, "{rate} against {max}");
    assert_eq!(figure(paced, "loss").value, 0.0, "{paced:?}");
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
}

#[test]
fn a_short_soak_samples_the_server_every_interval_and_draws_its_charts() {
    let charts = tempfile::tempdir().expect("temporary directory");
    let (stdout, results, pid) = run_to_results(&[
        "soak",
        "--soak-duration",
        "6s",
        "--soak-interval",
        "2s",
        "--soak-sessions",
        "40",
        "--soak-echo-sessions",
        "4",
        "--soak-echo-pps",
        "5",
        "--soak-bulk-sessions",
        "2",
        "--soak-bulk-pps",
        "20",
        "--soak-churn-loops",
        "2",
        "--soak-churn-hold",
        "200ms",
        "--concurrency",
        "8",
        "--soak-report",
        charts.path().to_str().expect("utf-8 path"),
    ]);
    // 40 sessions: 4 echo, 2 churn loops, 34 held (2 of them with bulk).
    const HELD: f64 = 34.0;
    assert!(stdout.contains("34 held; 3 interval(s) of 2 s"), "{stdout}");
    assert!(stdout.contains("flat at the end"), "{stdout}");
    let soak = scenario(&results, "soak");
    assert_eq!(figure(soak, "sessions_held").value, HELD);
    assert_eq!(figure(soak, "failed_sessions").value, 0.0, "{stdout}");
    assert_eq!(figure(soak, "pool_in_use_end").value, HELD);
    assert_eq!(
        figure(soak, "pool_in_use_after").value,
        0.0,
        "every address back once every session ended"
    );
    assert!(soak.params.contains_key("verdict"), "{:?}", soak.params);
    // One point per interval, each with real values.
    let line = |name: &str| -> Vec<f64> {
        let series = results
            .series
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} series in {:?}", results.series));
        assert_eq!(series.scenario, "soak");
        series.points.iter().map(|p| p.value).collect()
    };
    for name in [
        "sstpd RSS",
        "sstpd open fds",
        "churn sessions set up",
        "setup p50",
        "setup p99",
        "echo p50",
        "echo p99",
    ] {
        let values = line(name);
        assert_eq!(values.len(), 3, "{name}: {values:?}");
        assert!(values.iter().all(|&v| v > 0.0), "{name}: {values:?}");
    }
    // Sampled with exactly the held sessions up: sessions and pool agree.
    assert_eq!(line("sessions active"), [HELD; 3]);
    assert_eq!(line("pool addresses in use"), [HELD; 3]);
    let times: Vec<f64> = results.series[0].points.iter().map(|p| p.t_s).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0] + 1.9), "{times:?}");
    for chart in [
        "soak-rss",
        "soak-fds",
        "soak-pool",
        "soak-churn",
        "soak-setup",
        "soak-echo",
        "soak-cpu",
    ] {
        let path = charts.path().join(format!("{chart}.svg"));
        let svg =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(svg.contains("<polyline"), "{chart}: no line drawn");
    }
    assert_eq!(namespaces_left_by(pid), Vec::<String>::new());
}
