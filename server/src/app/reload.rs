//! Reloading the configuration of a running server (SIGHUP,
//! `sstpctl reload`) without dropping its sessions.
//!
//! [`Reloader::reload`] re-reads the file the server was started from and
//! applies what can change live; what cannot (listen addresses, worker
//! count, pools in use, ...) is reported in the [`ReloadReport`], never
//! silently ignored. A file that does not load, or that names users,
//! certificates or RADIUS servers that do not, changes nothing: the error
//! says why and the old configuration stays in force.
//!
//! # How
//!
//! 1. The new file is compared with the configuration in force key by key
//!    ([`merge`]): each key of the schema is either *live* (taken from the
//!    new file) or *restart-only* (kept as the server started, and named
//!    in [`ReloadReport::restart_required`] when the file changed it). The
//!    merged configuration is validated as a whole.
//! 2. Everything that can fail is built before anything changes: the TLS
//!    server configuration (certificate chain, key, and that they match),
//!    then the user table (swapped in by the user store only when it
//!    loads).
//! 3. Then, none of which can fail: the new snapshot
//!    ([`crate::worker::Live`]: configuration, rustls configuration,
//!    certificate hashes for the crypto binding, protocol settings) is
//!    stored for new connections; admission caps, the password-guessing
//!    throttle and the RADIUS client take their new settings; the workers
//!    close the sessions of users no longer in the store.
//!
//! Live sessions keep what they started with: their TLS connection, their
//! certificate hashes, their timers. Lowering `server.max_sessions` below
//! the sessions open closes none of them; new connections are refused
//! until enough have ended.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::worker::{self, Live, Shared};

/// Why a reload failed (everything stays as it was).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration file no longer loads, or the new values do not
    /// fit the ones that need a restart.
    Config(crate::config::ConfigError),
    /// The users it names do not.
    Users(crate::aaa::local::UsersError),
    /// The certificate or key does not load, or they do not match, or
    /// `[tls]` cannot build a server configuration.
    Tls(crate::tls::TlsError),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Config(e) => e.fmt(f),
            ReloadError::Users(e) => write!(f, "users: {e}"),
            ReloadError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ReloadError {}

/// What a successful reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// The parts applied to the running server: `"users"` (always
    /// re-read), `"certificate"` when new connections get another
    /// certificate, and the dotted name of each live key that changed
    /// (for example `"server.max_sessions"`).
    pub applied: Vec<String>,
    /// Keys whose new values take effect only at the next restart (for
    /// example `"server.listen"`); the running server keeps the old ones.
    pub restart_required: Vec<String>,
    /// SHA-256 of the certificate new connections get, in hex.
    pub certificate_sha256: String,
}

/// Applies a new configuration to a running server; shared by
/// [`ServerHandle::reload`](super::ServerHandle::reload), the signal loop
/// and the control socket.
pub(crate) struct Reloader {
    shared: Arc<Shared>,
    /// One reload at a time (SIGHUP and the control socket may race).
    running: Mutex<()>,
}

impl Reloader {
    pub(crate) fn new(shared: Arc<Shared>) -> Reloader {
        Reloader {
            shared,
            running: Mutex::new(()),
        }
    }

    /// Re-reads the configuration and applies it (see the module doc).
    pub(crate) fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.reload_locked();
        if let Err(e) = &result {
            tracing::error!(error = %e, "reload failed; the old configuration stays");
        }
        result
    }

    fn reload_locked(&self) -> Result<ReloadReport, ReloadError> {
        let current = self.shared.live.load_full();
        let crate::config::ConfigSource::File(path) = &current.config.source else {
            // Built in code or from the embedded defaults: only the user
            // store (a chap-secrets file) can have changed.
            let summary = self.shared.users.reload().map_err(ReloadError::Users)?;
            tracing::info!(?summary, "users reloaded");
            self.after_users_reloaded();
            return Ok(ReloadReport {
                applied: vec!["users".into()],
                certificate_sha256: hex::encode(current.cert.sha256),
                ..ReloadReport::default()
            });
        };
        let new = Config::load(path).map_err(ReloadError::Config)?;
        // `merged.config` keeps the running configuration's `source`.
        let merged = merge(&current.config, &new, self.shared.radius.is_some());
        let config = merged.config;
        config.validate().map_err(ReloadError::Config)?;

        let (tls, identity) =
            crate::tls::reload_server_tls(&config, &self.shared.ktls).map_err(ReloadError::Tls)?;
        let cert = crate::proto::sstp::CertHashes::of_der(identity.leaf().as_ref());
        if let Some(key) = &config.tls.private_key {
            if let Some(mode) = crate::tls::certs::loose_key_permissions(key) {
                tracing::warn!("{}", crate::tls::certs::loose_key_warning(key, mode));
            }
        }
        // The last step that can fail; the store swaps only on success.
        let summary = self
            .shared
            .users
            .reload_from(&config.users)
            .map_err(ReloadError::Users)?;
        tracing::info!(?summary, "users reloaded");

        let config = Arc::new(config);
        let mut report = ReloadReport {
            applied: vec!["users".into()],
            restart_required: merged
                .restart_required
                .iter()
                .map(|k| k.to_string())
                .collect(),
            certificate_sha256: hex::encode(cert.sha256),
        };
        if cert != current.cert {
            report.applied.push("certificate".into());
            tracing::info!(
                sha256 = %identity.fingerprint(),
                "new connections get the new certificate"
            );
        }
        report
            .applied
            .extend(merged.applied.iter().map(|k| k.to_string()));
        self.shared.live.store(Arc::new(Live {
            session_config: super::start::session_config(&config),
            tls,
            cert,
            config: config.clone(),
        }));
        self.shared.admission.set_limits(&config.server);
        self.shared.throttle.reconfigure(&config.auth_throttle);
        if let Some(radius) = &self.shared.radius {
            if merged.radius_changed {
                radius.reconfigure(&config.radius);
            }
        }
        self.after_users_reloaded();
        for key in &report.restart_required {
            tracing::warn!(key = %key, "changed in the configuration file: takes effect at restart");
        }
        tracing::info!(applied = ?report.applied, "configuration reloaded");
        Ok(report)
    }

    fn after_users_reloaded(&self) {
        for mailbox in &self.shared.mailboxes {
            worker::send_control(mailbox, worker::WorkerMsg::UsersReloaded);
        }
    }
}

/// The configuration a reload puts in force, and what it changed.
#[derive(Debug)]
pub(crate) struct Merged {
    /// The new file's live keys over the running configuration's
    /// restart-only ones.
    pub config: Config,
    /// Live keys whose value changed.
    pub applied: Vec<&'static str>,
    /// Keys the file changed that need a restart.
    pub restart_required: Vec<&'static str>,
    /// A key the RADIUS client uses changed.
    pub radius_changed: bool,
}

/// For each field of a section: a live one changed is taken from `new`
/// and listed in `applied`; a restart-only one changed is listed in
/// `restart`. The destructuring makes a field added to the schema a
/// compile error here until it is classified.
macro_rules! classify {
    ($merged:ident, $new:ident, $section:ident: $ty:ident,
     live: [$($live:ident),* $(,)?], restart: [$($restart:ident),* $(,)?]) => {{
        let $ty { $($live: _,)* $($restart: _,)* } = &$new.$section;
        $(
            if $merged.config.$section.$live != $new.$section.$live {
                $merged.config.$section.$live = $new.$section.$live.clone();
                $merged
                    .applied
                    .push(concat!(stringify!($section), ".", stringify!($live)));
            }
        )*
        $(
            if $merged.config.$section.$restart != $new.$section.$restart {
                $merged
                    .restart_required
                    .push(concat!(stringify!($section), ".", stringify!($restart)));
            }
        )*
    }};
}

/// Compares `new` with the configuration in force key by key (see the
/// module doc). `radius_runs`: the RADIUS thread was started (without it,
/// RADIUS servers can only come with a restart).
pub(crate) fn merge(current: &Config, new: &Config, radius_runs: bool) -> Merged {
    use crate::config::*;
    let mut merged = Merged {
        config: current.clone(),
        applied: Vec::new(),
        restart_required: Vec::new(),
        radius_changed: false,
    };
    classify!(merged, new, server: ServerSection,
        live: [max_sessions, max_preauth_sessions, max_preauth_per_source, preauth_timeout,
            drain_period],
        restart: [listen, listener, workers, pin_workers, state_dir, shutdown_timeout]);
    classify!(merged, new, tls: TlsSection,
        live: [certificate, private_key, self_signed, min_version, max_version, cipher_suites,
            handshake_timeout, session_tickets],
        restart: [ktls, take_over_records]);
    classify!(merged, new, sstp: SstpSection,
        live: [hello_interval, negotiation_timeout, abort_timeout, abort_ack_timeout,
            disconnect_timeout, disconnect_ack_timeout, crypto_binding],
        restart: []);
    classify!(merged, new, ppp: PppSection,
        live: [auth, mru, lcp_restart_interval, lcp_max_configure, lcp_max_failure,
            lcp_max_terminate, lcp_echo_interval, lcp_echo_failures, auth_timeout,
            auth_max_attempts],
        restart: []);
    // The pools and the gateway are in use (leases, the TUN address);
    // client_to_client is read per packet.
    classify!(merged, new, ipv4: Ipv4Section,
        live: [dns, nbns],
        restart: [pool, gateway, client_to_client, pools]);
    classify!(merged, new, ipv6: Ipv6Section,
        live: [dns],
        restart: [enabled, prefix, gateway]);
    classify!(merged, new, tun: TunSection,
        live: [],
        restart: [name, mtu, multi_queue, offload, drop_filter, steering]);
    classify!(merged, new, users: UsersSection,
        live: [chap_secrets, server_name, local],
        restart: [backends]);
    classify!(merged, new, auth_throttle: AuthThrottleSection,
        live: [enabled, window, max_failures_per_source, max_failures_per_user, lockout,
            max_entries],
        restart: []);
    let before = merged.applied.len();
    if radius_runs && current.radius.acct_server.is_empty() == new.radius.acct_server.is_empty() {
        classify!(merged, new, radius: RadiusSection,
            live: [auth_server, acct_server, auth_timeout, acct_timeout, retries, dead_time,
                require_message_authenticator, require_message_authenticator_accounting,
                acct_interim_interval, acct_max_in_flight],
            restart: [nas_identifier, nas_ip_address, called_station_id, max_pending,
                acct_spool_max, eap_pass_through, dae]);
    } else {
        // No RADIUS thread to reconfigure, or accounting would start or
        // stop (Accounting-On/Off, the spool): a restart.
        classify!(merged, new, radius: RadiusSection,
            live: [acct_interim_interval],
            restart: [auth_server, acct_server, auth_timeout, acct_timeout, retries,
                dead_time, require_message_authenticator,
                require_message_authenticator_accounting, nas_identifier, nas_ip_address,
                called_station_id, max_pending, acct_max_in_flight, acct_spool_max,
                eap_pass_through, dae]);
    }
    merged.radius_changed = merged.applied[before..]
        .iter()
        .any(|key| *key != "radius.acct_interim_interval");
    // The log format and level are set up once, before the server.
    classify!(merged, new, logging: LoggingSection,
        live: [],
        restart: [level, format]);
    classify!(merged, new, metrics: MetricsSection,
        live: [],
        restart: [listen]);
    // The control socket is bound once, at start.
    classify!(merged, new, control: ControlSection,
        live: [],
        restart: [socket]);
    let Config {
        server: _,
        tls: _,
        sstp: _,
        ppp: _,
        ipv4: _,
        ipv6: _,
        tun: _,
        users: _,
        auth_throttle: _,
        radius: _,
        logging: _,
        metrics: _,
        control: _,
        source: _,
    } = new;
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn live_keys_are_taken_and_restart_only_keys_kept_and_named() {
        let current = Config::default();
        let mut new = current.clone();
        new.server.max_sessions = 7;
        new.server.listen = vec!["127.0.0.1:9443".parse().unwrap()];
        new.server.workers = 3;
        new.sstp.hello_interval = Duration::from_secs(11);
        new.ipv4.pool = "10.1.0.2-10.1.0.9".parse().unwrap();
        new.tun.name = "other0".into();
        new.metrics.listen = Some("127.0.0.1:9100".parse().unwrap());
        new.auth_throttle.lockout = Duration::from_secs(5);
        let merged = merge(&current, &new, false);
        assert_eq!(
            merged.applied,
            [
                "server.max_sessions",
                "sstp.hello_interval",
                "auth_throttle.lockout"
            ]
        );
        assert_eq!(
            merged.restart_required,
            [
                "server.listen",
                "server.workers",
                "ipv4.pool",
                "tun.name",
                "metrics.listen"
            ]
        );
        assert_eq!(merged.config.server.max_sessions, 7);
        assert_eq!(merged.config.sstp.hello_interval, Duration::from_secs(11));
        assert_eq!(merged.config.server.listen, current.server.listen);
        assert_eq!(merged.config.server.workers, current.server.workers);
        assert_eq!(merged.config.ipv4.pool, current.ipv4.pool);
        assert_eq!(merged.config.tun.name, current.tun.name);
        assert!(!merged.radius_changed);
        // Nothing changed: nothing reported.
        let same = merge(&current, &current.clone(), true);
        assert!(same.applied.is_empty() && same.restart_required.is_empty());
    }

    #[test]
    fn radius_servers_are_live_only_while_the_thread_runs() {
        use crate::config::{RadiusServer, Secret};
        let server = |port: u16, secret: &str| RadiusServer {
            address: ([127, 0, 0, 1], port).into(),
            secret: Secret(secret.into()),
        };
        let mut current = Config::default();
        current.radius.auth_server = vec![server(1812, "one")];
        let mut new = current.clone();
        new.radius.auth_server = vec![server(1912, "two")];
        new.radius.nas_identifier = "elsewhere".into();

        let live = merge(&current, &new, true);
        assert_eq!(live.applied, ["radius.auth_server"]);
        assert_eq!(live.restart_required, ["radius.nas_identifier"]);
        assert!(live.radius_changed);
        assert_eq!(live.config.radius.auth_server, new.radius.auth_server);

        let without_thread = merge(&current, &new, false);
        assert!(without_thread.applied.is_empty());
        assert_eq!(
            without_thread.restart_required,
            ["radius.auth_server", "radius.nas_identifier"]
        );
        assert!(!without_thread.radius_changed);

        // Accounting appearing needs Accounting-On and the spool.
        let mut with_acct = current.clone();
        with_acct.radius.acct_server = vec![server(1813, "one")];
        let starts_accounting = merge(&current, &with_acct, true);
        assert_eq!(starts_accounting.restart_required, ["radius.acct_server"]);
    }
}
