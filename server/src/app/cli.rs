//! The command line: `sstpd [--config FILE]` runs the server,
//! `sstpd check-config FILE` validates a configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::aaa::local::{LocalUsers, UsersError};
use crate::config::{Config, ConfigError, LogFormat, LoggingSection};
use crate::tls::{self, ServerIdentity, TlsError};

const EXAMPLES: &str = "\
Examples:
  sstpd
      Try it out: listen on 127.0.0.1:4443 with a generated self-signed
      certificate, pool 10.99.0.0/24 on TUN sstp0, and one user `demo`
      (password from SSTPD_DEMO_PASSWORD, or generated and printed).
  sstpd --config /etc/sstpd/sstpd.toml
      Run with a configuration file (see docs/configuration.md).
  sstpd check-config /etc/sstpd/sstpd.toml
      Validate a configuration and its chap-secrets file; exit status 0 if
      it is usable, 1 with an error naming the key if not.

Environment:
  SSTPD_LOG, RUST_LOG   log filter overriding logging.level (e.g. sstpd=debug)
  SSTPD_DEMO_PASSWORD   password of the `demo` user of the embedded defaults
  SSLKEYLOGFILE         write TLS secrets there (for Wireshark; never in production)

sstpd needs CAP_NET_ADMIN (TUN device) and, for ports below 1024,
CAP_NET_BIND_SERVICE: run it as root, or grant them with
`setcap cap_net_admin,cap_net_bind_service+ep`, or with systemd's
AmbientCapabilities= (examples/sstpd.service).";

/// What `sstpd --version` says. A build with the `testing` feature (cargo
/// turns it on for sstpd's binary too when it builds sstp-bench in the same
/// run) carries `sstpd::testing`'s fault hooks and says so, for sstp-bench
/// to warn that it is not the binary that ships.
pub const VERSION: &str = if cfg!(feature = "testing") {
    concat!(env!("CARGO_PKG_VERSION"), " (with test hooks)")
} else {
    env!("CARGO_PKG_VERSION")
};

/// The words `--version` adds in a build with test hooks.
pub const TEST_HOOKS_MARK: &str = "(with test hooks)";

/// SSTP VPN server.
#[derive(Debug, Parser)]
#[command(name = "sstpd", version = VERSION, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// Configuration file (TOML). Without one, sstpd runs with its embedded
    /// defaults (a local demo setup).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate a configuration file (and the chap-secrets and
    /// certificate files it names), print a summary, and exit 0 if it is
    /// usable or 1 with an error naming the key if not.
    CheckConfig {
        /// The configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Why a configuration did not pass `check-config`.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    Config(ConfigError),
    Users(UsersError),
    Tls(TlsError),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Config(e) => e.fmt(f),
            CheckError::Users(e) => e.fmt(f),
            CheckError::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CheckError {}

/// What `check-config` found: summary lines and warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub summary: Vec<String>,
    pub warnings: Vec<String>,
}

/// `sstpd check-config FILE`: everything short of binding sockets. TLS files
/// that do not exist yet (certificates issued after the configuration was
/// written) are a warning, not an error; files that exist must be valid.
pub fn check_config(path: &Path) -> Result<CheckReport, CheckError> {
    let config = Config::load(path).map_err(CheckError::Config)?;
    let mut report = CheckReport::default();
    let (_, users) = LocalUsers::load(&config.users).map_err(CheckError::Users)?;

    let listen: Vec<String> = config
        .server
        .listeners()
        .iter()
        .map(|l| match l.proxy_protocol.is_on() {
            true => format!("{} (PROXY {})", l.address, l.proxy_protocol.as_str()),
            false => l.address.to_string(),
        })
        .collect();
    report
        .summary
        .push(format!("configuration OK: {}", path.display()));
    report
        .summary
        .push(format!("listen: {}", listen.join(", ")));
    report.summary.push(format!(
        "workers: {}{}",
        match config.server.workers {
            0 => "one per core".to_owned(),
            n => n.to_string(),
        },
        if config.server.pin_workers {
            ", pinned"
        } else {
            ""
        }
    ));

    let suites =
        tls::cipher_suites(config.tls.cipher_suites.as_deref()).map_err(CheckError::Tls)?;
    let versions = if config.tls.max_version == crate::config::TlsVersion::Tls13 {
        format!("{}+", config.tls.min_version.as_str())
    } else {
        format!(
            "{} to {}",
            config.tls.min_version.as_str(),
            config.tls.max_version.as_str()
        )
    };
    let tls_line = format!(
        "tls: TLS {versions}, {} cipher suites, kTLS {}, session tickets {}",
        suites.len(),
        config.tls.ktls.as_str(),
        if config.tls.session_tickets {
            "on"
        } else {
            "off"
        }
    );
    report.summary.push(tls_line);
    match (&config.tls.certificate, &config.tls.private_key) {
        (Some(cert), Some(key)) if cert.exists() && key.exists() => {
            if let Some(mode) = tls::certs::loose_key_permissions(key) {
                report
                    .warnings
                    .push(tls::certs::loose_key_warning(key, mode));
            }
            let identity =
                ServerIdentity::from_pem_files(cert, key, tls::certs::IdentityOrigin::Files)
                    .map_err(CheckError::Tls)?;
            tls::build_server_config(
                &config.tls,
                &identity,
                suites,
                tls::ServerTlsOptions {
                    secret_extraction: false,
                },
            )
            .map_err(CheckError::Tls)?;
            report.summary.push(format!(
                "certificate: {} ({} key, SHA-256 {})",
                cert.display(),
                identity.key_kind().as_str(),
                identity.fingerprint()
            ));
        }
        (Some(cert), Some(key)) => {
            for (name, p) in [("tls.certificate", cert), ("tls.private_key", key)] {
                if !p.exists() {
                    report
                        .warnings
                        .push(format!("{name}: {} does not exist (yet)", p.display()));
                }
            }
        }
        _ if !config.tls.self_signed => return Err(CheckError::Tls(TlsError::NoCertificate)),
        _ => {
            report.summary.push(format!(
                "certificate: self-signed (tls.self_signed), generated into {} on first start",
                config
                    .state_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|e| e.to_string())
            ));
            report.warnings.push(
                "tls.self_signed: clients cannot verify a self-signed certificate; use a \
                 certificate they trust in production"
                    .into(),
            );
        }
    }

    let hashes: Vec<&str> = config
        .sstp
        .crypto_binding
        .iter()
        .map(|h| h.as_str())
        .collect();
    report.summary.push(format!(
        "sstp: hello every {}, crypto binding {}",
        humantime_serde::re::humantime::format_duration(config.sstp.hello_interval),
        hashes.join(", ")
    ));
    let auth: Vec<&str> = config.ppp.auth.iter().map(|a| a.as_str()).collect();
    report.summary.push(format!(
        "ppp: auth {}, mru {}",
        auth.join(", "),
        config.ppp.mru
    ));
    report.warnings.extend(weak_auth_warnings(&config));
    let s = &config.server;
    report.summary.push(format!(
        "admission: {} connections, {} not yet authenticated ({} per source), {} to authenticate",
        s.max_sessions,
        s.max_preauth_sessions,
        s.max_preauth_per_source,
        humantime_serde::re::humantime::format_duration(s.preauth_timeout)
    ));
    let t = &config.auth_throttle;
    report.summary.push(if t.enabled {
        format!(
            "auth_throttle: {} failures per source or {} per user within {} lock out for {}",
            t.max_failures_per_source,
            t.max_failures_per_user,
            humantime_serde::re::humantime::format_duration(t.window),
            humantime_serde::re::humantime::format_duration(t.lockout)
        )
    } else {
        "auth_throttle: off".to_owned()
    });
    if !t.enabled {
        report
            .warnings
            .push("auth_throttle.enabled = false: password guessing is not slowed down".into());
    }
    let pool = &config.ipv4.pool;
    let clients = pool.len() - u64::from(pool.contains(config.ipv4.gateway));
    report.summary.push(format!(
        "ipv4: pool {pool} ({clients} client addresses), gateway {}, client-to-client {}",
        config.ipv4.gateway,
        config.ipv4.client_to_client.as_str()
    ));
    report.summary.push(if config.ipv6.enabled {
        format!(
            "ipv6: a /64 per session from {}, gateway {}",
            config.ipv6.prefix,
            config.ipv6.gateway()
        )
    } else {
        "ipv6: off".to_owned()
    });
    report.summary.push(format!(
        "tun: {} mtu {}{}",
        config.tun.name,
        config.tun.mtu,
        if config.tun.multi_queue {
            ", multi-queue"
        } else {
            ""
        }
    ));
    report.summary.push(format!(
        "users: {}{}{}",
        users.users,
        if users.any_client {
            " plus a '*' catch-all"
        } else {
            ""
        },
        if config.uses_radius() {
            let backends: Vec<&str> = config.users.backends.iter().map(|b| b.as_str()).collect();
            format!(" (backends: {})", backends.join(", "))
        } else {
            String::new()
        }
    ));
    if config.uses_radius() || config.uses_radius_accounting() {
        let list = |servers: &[crate::config::RadiusServer]| {
            let addrs: Vec<String> = servers.iter().map(|s| s.address.to_string()).collect();
            if addrs.is_empty() {
                "none".to_owned()
            } else {
                addrs.join(", ")
            }
        };
        let r = &config.radius;
        report.summary.push(format!(
            "radius: authentication {}, accounting {}, nas_identifier {:?}",
            list(&r.auth_server),
            list(&r.acct_server),
            r.nas_identifier
        ));
        if !r.require_message_authenticator {
            report.warnings.push(
                "radius.require_message_authenticator = false: forged Access-Accepts \
                 (BlastRADIUS, CVE-2024-3596) are not detected"
                    .into(),
            );
        }
    }
    if users.any_client {
        report.warnings.push(
            "users.chap_secrets: a line with client '*' accepts any user name with its secret"
                .into(),
        );
    }
    if users.loose_permissions {
        report.warnings.push(
            "users.chap_secrets: the file is accessible to group or others (chmod 600)".into(),
        );
    }
    if users.shadowed_lines > 0 {
        report.warnings.push(format!(
            "users.chap_secrets: {} line(s) ignored because an earlier or more specific line names the same user",
            users.shadowed_lines
        ));
    }
    Ok(report)
}

/// Warnings about the authentication methods `[ppp]` enables: PAP and
/// CHAP-MD5 yield no keys, so the SSTP crypto binding falls back to an
/// all-zero key ([MS-SSTP] 3.2.5.2) that a relaying man in the middle can
/// compute as well as the client; PAP also sends the password itself.
pub fn weak_auth_warnings(config: &Config) -> Vec<String> {
    use crate::proto::auth::AuthProtocol;
    let mut warnings = Vec::new();
    for method in &config.ppp.auth {
        let why = match method {
            AuthProtocol::Pap => "sends the password in the clear inside TLS and",
            AuthProtocol::ChapMd5 => "",
            _ => continue,
        };
        warnings.push(format!(
            "ppp.auth: {method} {why}{}binds the SSTP crypto binding with an all-zero key, so a \
             relaying man in the middle can complete it; use [\"mschapv2\"] alone unless \
             clients need {method}",
            if why.is_empty() { "" } else { " " }
        ));
    }
    warnings
}

/// The tracing filter directive: `SSTPD_LOG`, else `RUST_LOG`, else the
/// configured level.
pub fn log_filter(
    logging: &LoggingSection,
    sstpd_log: Option<String>,
    rust_log: Option<String>,
) -> String {
    sstpd_log
        .filter(|s| !s.trim().is_empty())
        .or(rust_log.filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| logging.level.as_str().to_owned())
}

/// Installs the global tracing subscriber (text or JSON lines on stderr).
pub fn init_tracing(logging: &LoggingSection) {
    let directive = log_filter(
        logging,
        std::env::var("SSTPD_LOG").ok(),
        std::env::var("RUST_LOG").ok(),
    );
    let filter = tracing_subscriber::EnvFilter::try_new(&directive).unwrap_or_else(|e| {
        eprintln!("sstpd: ignoring invalid log filter {directive:?}: {e}");
        tracing_subscriber::EnvFilter::new(logging.level.as_str())
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match logging.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("sstpd: logging already initialised: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
    }

    #[test]
    fn check_config_names_the_radius_servers_and_warns_without_message_authenticator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sstpd.toml");
        std::fs::write(
            &path,
            "[tls]\nself_signed = true\n[users]\nbackends = [\"radius\"]\n\
             [radius]\nrequire_message_authenticator = false\n\
             [[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"s\"\n\
             [[radius.acct_server]]\naddress = \"127.0.0.1:1813\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let report = check_config(&path).unwrap();
        assert!(report
            .summary
            .iter()
            .any(|l| l == "users: 0 (backends: radius)"));
        assert!(
            report.summary.iter().any(|l| l
                == "radius: authentication 127.0.0.1:1812, accounting 127.0.0.1:1813, \
                    nas_identifier \"sstpd\""),
            "{:?}",
            report.summary
        );
        assert!(report.warnings.iter().any(|w| w.contains("BlastRADIUS")));
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_run_and_check_config() {
        let cli = Cli::try_parse_from(["sstpd"]).unwrap();
        assert_eq!(cli.config, None);
        assert!(cli.command.is_none());

        let cli = Cli::try_parse_from(["sstpd", "--config", "/etc/sstpd/sstpd.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/etc/sstpd/sstpd.toml")));
        let cli = Cli::try_parse_from(["sstpd", "-c", "x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));

        let cli = Cli::try_parse_from(["sstpd", "check-config", "a.toml"]).unwrap();
        match cli.command {
            Some(Command::CheckConfig { file }) => assert_eq!(file, PathBuf::from("a.toml")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["sstpd", "check-config"]).is_err());
        assert!(Cli::try_parse_from(["sstpd", "--bogus"]).is_err());
    }

    #[test]
    fn help_shows_examples_and_version_is_set() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("sstpd check-config /etc/sstpd/sstpd.toml"));
        assert!(help.contains("SSTPD_DEMO_PASSWORD"));
        let version = Cli::command().get_version().unwrap().to_string();
        assert!(version.starts_with(env!("CARGO_PKG_VERSION")), "{version}");
        assert_eq!(
            version.contains(TEST_HOOKS_MARK),
            cfg!(feature = "testing"),
            "{version}"
        );
        let err = Cli::try_parse_from(["sstpd", "--version"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn check_config_accepts_the_example() {
        let report = check_config(&examples_dir().join("sstpd.toml")).unwrap();
        assert!(report.summary[0].starts_with("configuration OK"));
        assert!(report
            .summary
            .iter()
            .any(|l| l == "listen: 0.0.0.0:443, [::]:443"));
        assert!(report.summary.iter().any(|l| l.starts_with("users: 3")));
        // The example names certificate files that only exist on a server.
        assert!(report
            .warnings
            .iter()
            .any(|w| w.starts_with("tls.certificate: ") && w.ends_with("does not exist (yet)")));
    }

    #[test]
    fn check_config_reports_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            "[ipv4]\npool = \"10.99.0.0/33\"\n[[users.local]]\nname = \"a\"\npassword = \"b\"\n",
        )
        .unwrap();
        let err = check_config(&path).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ipv4.pool: 10.99.0.0/33 is not a valid prefix"),
            "{err}"
        );

        std::fs::write(&path, "[users]\nchap_secrets = \"secrets\"\n").unwrap();
        std::fs::write(dir.path().join("secrets"), "alice * ok\nbob *\n").unwrap();
        let err = check_config(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("secrets: line 2: missing the secret column"),
            "{err}"
        );
    }

    #[test]
    fn check_config_loads_existing_tls_files() {
        let dir = tempfile::tempdir().unwrap();
        let generated =
            tls::certs::generate_self_signed(tls::SelfSignedKey::Rsa2048, &["vpn.example.com"])
                .unwrap();
        std::fs::write(dir.path().join("cert.pem"), &generated.cert_pem).unwrap();
        let key_path = dir.path().join("key.pem");
        std::fs::write(&key_path, &generated.key_pem).unwrap();
        set_mode(&key_path, 0o600);
        let path = dir.path().join("sstpd.toml");
        std::fs::write(
            &path,
            "[tls]\ncertificate = \"cert.pem\"\nprivate_key = \"key.pem\"\n\
             [[users.local]]\nname = \"a\"\npassword = \"b\"\n",
        )
        .unwrap();
        let report = check_config(&path).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert!(report
            .summary
            .iter()
            .any(|l| l.contains("(RSA key, SHA-256 ")));

        // A key others may read is a warning (startup logs it too).
        set_mode(&key_path, 0o640);
        let report = check_config(&path).unwrap();
        assert_eq!(
            report.warnings,
            vec![format!(
                "tls.private_key: {} is accessible to group or others (mode 0640): chmod 600",
                key_path.display()
            )]
        );

        std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
        let err = check_config(&path).unwrap_err();
        assert!(err.to_string().starts_with("tls.private_key: "), "{err}");
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn check_config_refuses_no_certificate_unless_self_signed_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sstpd.toml");
        let users = "[[users.local]]\nname = \"a\"\npassword = \"b\"\n";
        std::fs::write(&path, users).unwrap();
        let err = check_config(&path).unwrap_err();
        assert!(
            err.to_string().starts_with("tls.certificate: not set"),
            "{err}"
        );
        assert!(err.to_string().contains("tls.self_signed = true"), "{err}");

        std::fs::write(&path, format!("[tls]\nself_signed = true\n{users}")).unwrap();
        let report = check_config(&path).unwrap();
        assert!(report
            .summary
            .iter()
            .any(|l| l.starts_with("certificate: self-signed (tls.self_signed)")));
        assert!(report
            .warnings
            .iter()
            .any(|w| w.starts_with("tls.self_signed: clients cannot verify")));
    }

    #[test]
    fn check_config_warns_about_pap_and_chap_md5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sstpd.toml");
        let base = "[tls]\nself_signed = true\n[[users.local]]\nname = \"a\"\npassword = \"b\"\n";
        std::fs::write(&path, base).unwrap();
        let report = check_config(&path).unwrap();
        assert!(
            report.warnings.iter().all(|w| !w.starts_with("ppp.auth")),
            "{:?}",
            report.warnings
        );
        assert!(report
            .summary
            .iter()
            .any(|l| l == "ppp: auth mschapv2, mru 1400"));

        std::fs::write(
            &path,
            format!("[ppp]\nauth = [\"mschapv2\", \"chap-md5\", \"pap\"]\n{base}"),
        )
        .unwrap();
        let report = check_config(&path).unwrap();
        let auth: Vec<_> = report
            .warnings
            .iter()
            .filter(|w| w.starts_with("ppp.auth"))
            .collect();
        assert_eq!(auth.len(), 2, "{auth:?}");
        assert!(
            auth[0].starts_with(
                "ppp.auth: chap-md5 binds the SSTP crypto binding with an all-zero key"
            ),
            "{}",
            auth[0]
        );
        assert!(
            auth[1]
                .starts_with("ppp.auth: pap sends the password in the clear inside TLS and binds"),
            "{}",
            auth[1]
        );
    }

    #[test]
    fn log_filter_precedence() {
        let logging = LoggingSection::default();
        assert_eq!(log_filter(&logging, None, None), "info");
        assert_eq!(log_filter(&logging, None, Some("debug".into())), "debug");
        assert_eq!(
            log_filter(&logging, Some("sstpd=trace".into()), Some("debug".into())),
            "sstpd=trace"
        );
        assert_eq!(log_filter(&logging, Some(" ".into()), None), "info");
    }
}
