//! `setup_radius`: the session setup rate when every session is
//! authenticated (MS-CHAPv2) and accounted through a real FreeRADIUS 3.2,
//! beside the setup rate of the same load against local users measured
//! in the same run (issue 13's target: at least 0.8 of it with 64
//! sessions in flight).
//!
//! Two fresh servers, one after the other, with the same users in the
//! load generator's naming (session i logs in as `bench<i>` with
//! `bench-pw-<i>`: `--user bench%d --password bench-pw-%d`, one user per
//! session) and the same load as `setup` (`--setup-sessions` sessions,
//! `--concurrency` in flight, held half a second, closed), MS-CHAPv2 only:
//!
//! 1. the reference `setup_local_users`: sstpd with the users in
//!    `[[users.local]]`;
//! 2. `setup_radius`: FreeRADIUS (`sstpd::testing::freeradius`, not `-X`
//!    but its thread pool and info log) started first in sstpd's
//!    namespace with the users in its `files` module, then sstpd with
//!    `users.backends = ["radius"]`, its authentication and accounting
//!    servers 127.0.0.1:1812 and :1813 there, Message-Authenticator
//!    required on Access replies (the default; FreeRADIUS signs them).
//!
//! FreeRADIUS is a process of its own, sampled like sstpd, so its CPU is a
//! share of its own (`radius_cores`, and per 1,000 sessions) and the
//! verdict can name it as the limit. After the load the detail file is
//! read: each session set up has its Start record and each one closed its
//! Stop; the counts are figures.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sstpd::testing::freeradius::{FreeRadiusConfig, RadiusUser, DEFAULT_SECRET};

use super::catalog::{
    base_params, cpu_context, fig, load_checked, per_second, pool_for, server_usage, setup_spec,
    BenchOptions, Outcome,
};
use super::process::SstpdOptions;
use super::testbed::{LoadOutcome, Testbed};
use super::ScenarioError;
use crate::results::{Better, Figure, Params, ReferenceResult, ScenarioResult};
use crate::units::significant;

/// The load generator's user name pattern (`%d`: the session index).
pub const USER_PATTERN: &str = "bench%d";
/// The password pattern.
pub const PASSWORD_PATTERN: &str = "bench-pw-%d";
/// The reference the scenario's figures stand beside.
pub const LOCAL_REFERENCE: &str = "setup_local_users";
/// The ratio issue 13 asks for (RADIUS over local users).
pub const TARGET_RATIO: f64 = 0.8;
/// How long the accounting records may take to reach the detail file
/// after the load generator has closed its sessions.
const RECORDS_TIMEOUT: Duration = Duration::from_secs(10);

/// The users of a run: session i's name and password, as the load
/// generator expands [`USER_PATTERN`] and [`PASSWORD_PATTERN`].
pub fn users(sessions: u64) -> Vec<(String, String)> {
    (0..sessions)
        .map(|i| {
            let n = i.to_string();
            (
                USER_PATTERN.replace("%d", &n),
                PASSWORD_PATTERN.replace("%d", &n),
            )
        })
        .collect()
}

/// sstpd's configuration for both servers: MS-CHAPv2 only (the method
/// whose keys RADIUS must carry back), and with `radius`, every user
/// through FreeRADIUS on the namespace's loopback, accounting included.
pub fn sstpd_toml(radius: bool) -> String {
    let mut toml = String::from("[ppp]\nauth = [\"mschapv2\"]\n");
    if radius {
        toml.push_str(&format!(
            "\n[users]\nbackends = [\"radius\"]\n\n\
             [radius]\nnas_identifier = \"sstp-bench\"\n\n\
             [[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"{DEFAULT_SECRET}\"\n\n\
             [[radius.acct_server]]\naddress = \"127.0.0.1:1813\"\nsecret = \"{DEFAULT_SECRET}\"\n"
        ));
    }
    toml
}

/// FreeRADIUS with `users`, for load: its thread pool, not `-X`.
pub fn freeradius_config(users: &[(String, String)]) -> FreeRadiusConfig {
    FreeRadiusConfig {
        users: users
            .iter()
            .map(|(name, password)| RadiusUser::new(name, password))
            .collect(),
        debug: false,
        ..FreeRadiusConfig::default()
    }
}

/// The sstpd both runs start (`users`: its local users, none with RADIUS).
fn server_options(
    options: &BenchOptions,
    users: Vec<(String, String)>,
    radius: bool,
) -> SstpdOptions {
    let mut server = SstpdOptions::new(options.binaries.sstpd.clone());
    server.workers = options.topology.server_workers;
    let (pool, clients) = pool_for(options.setup_sessions);
    server.ipv4_pool = pool.into();
    server.max_sessions = clients.max(10_000);
    server.users = users;
    server.extra_toml = sstpd_toml(radius);
    server
}

/// Both runs' figures: the rate, the server's CPU per 1,000 sessions and
/// the setup latency.
struct SetupFigures {
    rate: Figure,
    cpu_per_1000: Option<Figure>,
    latency: [Figure; 2],
}

fn setup_figures(outcome: &LoadOutcome) -> (SetupFigures, Option<crate::results::ServerUsage>) {
    let r = &outcome.report;
    let established = r.sessions.established;
    let usage = server_usage(outcome, outcome.ramp(), 0, established);
    let figures = SetupFigures {
        rate: fig(
            "setup_rate",
            "sessions/s",
            per_second(established, r.timing.ramp_s),
            Better::Higher,
        ),
        cpu_per_1000: usage
            .as_ref()
            .and_then(|u| u.cpu_s_per_1000_sessions)
            .map(|v| {
                fig(
                    "server_cpu_per_1000_sessions",
                    "s/1000 sessions",
                    v,
                    Better::Lower,
                )
            }),
        latency: [
            fig(
                "setup_latency_p50",
                "us",
                r.setup.total.p50_us as f64,
                Better::Lower,
            ),
            fig(
                "setup_latency_p99",
                "us",
                r.setup.total.p99_us as f64,
                Better::Lower,
            ),
        ],
    };
    (figures, usage)
}

/// Session setup through FreeRADIUS beside local users; see the module
/// documentation. Against `--target` there is no server of ours to give
/// FreeRADIUS to: skipped with a line saying so.
pub fn setup_radius(
    options: &BenchOptions,
    interrupt: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, ScenarioError> {
    if options.remote.is_some() {
        print("  skipped: needs a local sstpd to point at FreeRADIUS (not with --target)");
        return Ok(Outcome::default());
    }
    let users = users(options.setup_sessions);
    let spec = setup_spec(options);

    print(&format!(
        "  reference {LOCAL_REFERENCE}: the same load, {} users in sstpd's configuration ...",
        users.len()
    ));
    let mut bed = Testbed::local(
        &options.binaries,
        &server_options(options, users.clone(), false),
        options.topology.clone(),
    )?;
    use_user_patterns(&mut bed);
    let measured = load_checked(&mut bed, &spec, interrupt);
    bed.stop()?;
    let (outcome, _) = measured?;
    let reference = local_reference(&outcome, options);
    print(&format!(
        "    {} sessions/s",
        significant(reference.figure("setup_rate").map_or(0.0, |f| f.value))
    ));

    print(&format!(
        "  FreeRADIUS with the {} users in sstpd's namespace, sstpd authenticating and \
         accounting through it ...",
        users.len()
    ));
    let mut bed = Testbed::local_with_radius(
        &options.binaries,
        &server_options(options, Vec::new(), true),
        &freeradius_config(&users),
        options.topology.clone(),
    )?;
    use_user_patterns(&mut bed);
    let measured = load_checked(&mut bed, &spec, interrupt).map(|(outcome, figures)| {
        let records = accounting_records(&bed, outcome.report.sessions.established);
        (outcome, figures, records)
    });
    bed.stop()?;
    let (outcome, failed, (starts, stops)) = measured?;

    let (setup, usage) = setup_figures(&outcome);
    let r = &outcome.report;
    let ramp = outcome.ramp();
    let mut figures = vec![setup.rate.beside(&reference, "setup_rate")];
    figures.extend(
        setup
            .cpu_per_1000
            .map(|f| f.beside(&reference, "server_cpu_per_1000_sessions")),
    );
    if let Some(radius) = outcome.shares(ramp).radius {
        if r.sessions.established > 0 {
            figures.push(fig(
                "radius_cpu_per_1000_sessions",
                "s/1000 sessions",
                radius.seconds() * 1000.0 / r.sessions.established as f64,
                Better::Lower,
            ));
        }
    }
    for latency in setup.latency {
        let metric = latency.metric.clone();
        figures.push(latency.beside(&reference, &metric));
    }
    figures.push(fig(
        "acct_start_records",
        "count",
        starts as f64,
        Better::Neither,
    ));
    figures.push(fig(
        "acct_stop_records",
        "count",
        stops as f64,
        Better::Neither,
    ));
    figures.extend(failed);
    let mut params = base_params(r, &options.topology, outcome.local);
    params.extend(common_params(&outcome, options));
    params.insert(
        "users_backend".into(),
        "radius: FreeRADIUS 3.2 in sstpd's namespace (thread pool, unpinned)".into(),
    );
    params.insert(
        "accounting".into(),
        "Start and Stop to the same FreeRADIUS (127.0.0.1:1813, its detail file)".into(),
    );
    params.insert("reference".into(), LOCAL_REFERENCE.into());
    params.insert("target_ratio".into(), format!("{TARGET_RATIO}"));
    cpu_context(&outcome, ramp, &options.topology, &mut figures, &mut params);
    let result = ScenarioResult {
        name: "setup_radius".into(),
        params,
        figures,
        server: usage,
        latency: None,
    };
    Ok(Outcome::single(result, vec![reference], print))
}

/// The load generator logs in as user i in session i.
fn use_user_patterns(bed: &mut Testbed) {
    bed.connection.user = USER_PATTERN.into();
    bed.connection.password = PASSWORD_PATTERN.into();
}

/// What both runs share in their parameters.
fn common_params(outcome: &LoadOutcome, options: &BenchOptions) -> Params {
    let r = &outcome.report;
    let mut p = Params::new();
    p.insert("users".into(), options.setup_sessions.to_string());
    p.insert("auth".into(), "mschapv2".into());
    p.insert(
        "setup_concurrency".into(),
        r.config.setup_concurrency.to_string(),
    );
    p.insert("ramp_s".into(), format!("{:.2}", r.timing.ramp_s));
    p
}

/// The local-users run as the reference `setup_radius` stands beside.
fn local_reference(outcome: &LoadOutcome, options: &BenchOptions) -> ReferenceResult {
    let (setup, _) = setup_figures(outcome);
    let mut figures = vec![setup.rate];
    figures.extend(setup.cpu_per_1000);
    figures.extend(setup.latency);
    let mut params = base_params(&outcome.report, &options.topology, outcome.local);
    params.extend(common_params(outcome, options));
    params.insert("users_backend".into(), "local ([[users.local]])".into());
    cpu_context(
        outcome,
        outcome.ramp(),
        &options.topology,
        &mut figures,
        &mut params,
    );
    ReferenceResult {
        name: LOCAL_REFERENCE.into(),
        params,
        figures,
        latency: None,
    }
}

/// Start and Stop records in FreeRADIUS's detail file, once there are
/// `sessions` of each or after [`RECORDS_TIMEOUT`]: what arrived.
fn accounting_records(bed: &Testbed, sessions: u64) -> (u64, u64) {
    let Some(radius) = bed.radius() else {
        return (0, 0);
    };
    let count = |records: &[sstpd::testing::freeradius::AccountingRecord], kind: &str| {
        records
            .iter()
            .filter(|r| r.status_type() == Some(kind))
            .count() as u64
    };
    let records = match radius.wait_for_records(
        |r| count(r, "Start") >= sessions && count(r, "Stop") >= sessions,
        RECORDS_TIMEOUT,
    ) {
        Ok(records) => records,
        Err(sstpd::testing::freeradius::FreeRadiusError::RecordsTimeout { records }) => records,
        Err(_) => radius.detail_records(),
    };
    (count(&records, "Start"), count(&records, "Stop"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_follow_the_load_generators_naming() {
        let users = users(3);
        assert_eq!(
            users,
            [
                ("bench0".to_string(), "bench-pw-0".to_string()),
                ("bench1".into(), "bench-pw-1".into()),
                ("bench2".into(), "bench-pw-2".into()),
            ]
        );
        // The load generator expands the patterns the same way.
        let credentials = sstp_loadgen::config::Credentials::Pattern {
            user: USER_PATTERN.into(),
            password: PASSWORD_PATTERN.into(),
        };
        assert_eq!(
            credentials.for_session(2),
            ("bench2".to_string(), b"bench-pw-2".to_vec())
        );
        let radius = freeradius_config(&users);
        assert_eq!(radius.users[1], RadiusUser::new("bench1", "bench-pw-1"));
        assert!(!radius.debug, "load needs the thread pool, not -X");
    }

    #[test]
    fn sstpd_accepts_both_configurations() {
        let dir = tempfile::tempdir().unwrap();
        let binaries = super::super::Binaries {
            sstpd: "/bin/sstpd".into(),
            loadgen: "/bin/sstp-loadgen".into(),
        };
        let mut options = BenchOptions::new(binaries);
        options.setup_sessions = 5;
        for radius in [false, true] {
            let users = if radius { Vec::new() } else { users(5) };
            let server = server_options(&options, users, radius);
            let path = dir.path().join("sstpd.toml");
            std::fs::write(&path, server.config_toml(dir.path())).unwrap();
            let config = sstpd::config::Config::load(&path)
                .unwrap_or_else(|e| panic!("radius {radius}: {e}"));
            assert_eq!(
                config.ppp.auth,
                [sstpd::proto::auth::AuthProtocol::MsChapV2]
            );
            assert_eq!(config.uses_radius(), radius);
            assert_eq!(config.uses_local_users(), !radius);
            assert_eq!(config.uses_radius_accounting(), radius);
            assert_eq!(config.users.local.len(), if radius { 0 } else { 5 });
            if radius {
                assert_eq!(
                    config.radius.auth_server[0].address,
                    "127.0.0.1:1812".parse().unwrap()
                );
                assert_eq!(
                    config.radius.acct_server[0].address,
                    "127.0.0.1:1813".parse().unwrap()
                );
            }
        }
    }
}
