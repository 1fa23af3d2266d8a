use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;

use super::error::line_column;
use super::*;
use crate::proto::auth::AuthProtocol;

pub(super) const USER: &str = "\n[[users.local]]\nname = \"t\"\npassword = \"p\"\n";

/// Parses `text` plus one inline user and validates it.
fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(&format!("{text}{USER}"))
}

fn err(text: &str) -> String {
    load(text)
        .expect_err("configuration must be rejected")
        .to_string()
}

fn assert_err(text: &str, expected: &str) {
    let got = err(text);
    assert!(
        got.starts_with(expected),
        "for {text:?}\n got: {got}\nwant: {expected}"
    );
}

#[test]
fn empty_file_with_a_user_gives_the_documented_defaults() {
    let config = load("").unwrap();
    let s = &config.server;
    assert_eq!(
        s.listen,
        vec!["127.0.0.1:4443".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!((s.workers, s.pin_workers), (0, true));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(s.drain_period, Duration::from_secs(60));
    assert_eq!(s.max_sessions, 10_000);
    assert_eq!(
        (s.max_preauth_sessions, s.max_preauth_per_source),
        (1024, 32)
    );
    assert_eq!(s.preauth_timeout, Duration::from_secs(30));
    let t = &config.tls;
    assert_eq!((t.certificate.clone(), t.private_key.clone()), (None, None));
    assert!(
        !t.self_signed,
        "a file must ask for a self-signed certificate"
    );
    assert_eq!(t.min_version, TlsVersion::Tls12);
    assert_eq!(t.max_version, TlsVersion::Tls13);
    assert_eq!(t.cipher_suites, None);
    assert_eq!(t.handshake_timeout, Duration::from_secs(10));
    assert_eq!((t.ktls, t.session_tickets), (KtlsMode::Auto, false));
    let sstp = &config.sstp;
    assert_eq!(
        [
            sstp.hello_interval,
            sstp.negotiation_timeout,
            sstp.abort_timeout,
            sstp.abort_ack_timeout,
            sstp.disconnect_timeout,
            sstp.disconnect_ack_timeout
        ],
        [60, 60, 3, 1, 5, 1].map(Duration::from_secs)
    );
    assert_eq!(
        sstp.crypto_binding,
        vec![CryptoBindingHash::Sha256, CryptoBindingHash::Sha1]
    );
    let p = &config.ppp;
    // PAP and CHAP-MD5 bind with an all-zero key: not offered by default.
    assert_eq!(p.auth, vec![AuthProtocol::MsChapV2]);
    assert_eq!(p.mru, 1400);
    assert_eq!(
        (p.lcp_max_configure, p.lcp_max_failure, p.lcp_max_terminate),
        (10, 5, 2)
    );
    assert_eq!(p.lcp_restart_interval, Duration::from_secs(3));
    assert_eq!(p.lcp_echo_interval, Duration::ZERO);
    assert_eq!(
        (p.auth_timeout, p.auth_max_attempts),
        (Duration::from_secs(30), 3)
    );
    assert_eq!(config.ipv4.pool.to_string(), "10.99.0.0/24");
    assert_eq!(config.ipv4.pool.first(), Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(config.ipv4.pool.last(), Ipv4Addr::new(10, 99, 0, 254));
    assert_eq!(config.ipv4.gateway, Ipv4Addr::new(10, 99, 0, 1));
    assert!(config.ipv4.dns.is_empty() && config.ipv4.nbns.is_empty());
    assert_eq!(config.ipv4.client_to_client, ClientToClient::Deny);
    let a = &config.auth_throttle;
    assert!(a.enabled);
    assert_eq!(
        (a.window, a.lockout),
        (Duration::from_secs(900), Duration::from_secs(900))
    );
    assert_eq!(
        (a.max_failures_per_source, a.max_failures_per_user),
        (20, 10)
    );
    assert_eq!(a.max_entries, 16_384);
    assert!(!config.ipv6.enabled);
    assert_eq!(config.ipv6.prefix.to_string(), "fd99::/48");
    assert_eq!(
        config.ipv6.gateway(),
        "fd99::1".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        (
            config.tun.name.as_str(),
            config.tun.mtu,
            config.tun.multi_queue
        ),
        ("sstp0", 1400, true)
    );
    assert_eq!(config.users.server_name, "sstpd");
    assert_eq!(config.logging.level, LogLevel::Info);
    assert_eq!(config.logging.format, LogFormat::Text);
    // The parsed defaults equal the in-code defaults (plus the user).
    let mut expected = Config::default();
    expected.users.local = config.users.local.clone();
    assert_eq!(config, expected);
}

#[test]
fn every_key_parses() {
    let config = Config::from_toml_str(
        r#"
            [server]
            listen = ["0.0.0.0:443", "[::]:8443"]
            workers = 4
            pin_workers = false
            state_dir = "/srv/sstpd"
            shutdown_timeout = "1m 30s"
            drain_period = "10m"
            max_sessions = 5
            max_preauth_sessions = 4
            max_preauth_per_source = 2
            preauth_timeout = "45s"
            [tls]
            certificate = "c.pem"
            private_key = "k.pem"
            min_version = "1.3"
            max_version = "1.3"
            cipher_suites = ["TLS13_CHACHA20_POLY1305_SHA256", "tls13_aes_128_gcm_sha256"]
            handshake_timeout = "2500ms"
            ktls = "off"
            session_tickets = true
            [sstp]
            hello_interval = "30s"
            negotiation_timeout = "20s"
            abort_timeout = "2s"
            abort_ack_timeout = "500ms"
            disconnect_timeout = "4s"
            disconnect_ack_timeout = "750ms"
            crypto_binding = ["sha1"]
            [ppp]
            auth = ["pap", "MSCHAPv2"]
            mru = 1280
            lcp_restart_interval = "1s"
            lcp_max_configure = 7
            lcp_max_failure = 4
            lcp_max_terminate = 3
            lcp_echo_interval = "20s"
            lcp_echo_failures = 5
            auth_timeout = "15s"
            auth_max_attempts = 1
            [ipv4]
            pool = "192.168.50.10 - 192.168.50.20"
            gateway = "192.168.50.1"
            dns = ["192.168.50.1", "1.1.1.1"]
            nbns = ["192.168.50.2"]
            client_to_client = "allow"
            [ipv6]
            enabled = true
            prefix = "2001:db8:1::/56"
            gateway = "2001:db8:1::fe"
            dns = ["2001:db8::53"]
            [tun]
            name = "vpn-sstp"
            mtu = 1300
            multi_queue = false
            [users]
            chap_secrets = "/etc/ppp/chap-secrets"
            server_name = "edge1"
            [[users.local]]
            name = "alice"
            password = "apple pie"
            ip = "192.168.50.99"
            [auth_throttle]
            enabled = false
            window = "5m"
            max_failures_per_source = 50
            max_failures_per_user = 5
            lockout = "1h"
            max_entries = 100
            [logging]
            level = "debug"
            format = "json"
            "#,
    )
    .unwrap();
    assert_eq!(config.server.listen.len(), 2);
    assert_eq!(config.server.workers, 4);
    assert_eq!(config.worker_count(), 4);
    assert!(!config.server.pin_workers);
    assert_eq!(config.state_dir().unwrap(), PathBuf::from("/srv/sstpd"));
    assert_eq!(config.server.shutdown_timeout, Duration::from_secs(90));
    assert_eq!(config.server.drain_period, Duration::from_secs(600));
    assert_eq!(
        (
            config.server.max_preauth_sessions,
            config.server.max_preauth_per_source,
            config.server.preauth_timeout
        ),
        (4, 2, Duration::from_secs(45))
    );
    assert_eq!(config.ipv4.client_to_client, ClientToClient::Allow);
    let a = &config.auth_throttle;
    assert!(!a.enabled);
    assert_eq!(
        (a.window, a.lockout),
        (Duration::from_secs(300), Duration::from_secs(3600))
    );
    assert_eq!(
        (
            a.max_failures_per_source,
            a.max_failures_per_user,
            a.max_entries
        ),
        (50, 5, 100)
    );
    assert_eq!(config.tls.min_version, TlsVersion::Tls13);
    assert_eq!(config.tls.max_version, TlsVersion::Tls13);
    assert_eq!(config.tls.handshake_timeout, Duration::from_millis(2500));
    assert_eq!(config.tls.ktls, KtlsMode::Off);
    assert_eq!(config.sstp.abort_ack_timeout, Duration::from_millis(500));
    assert_eq!(config.sstp.crypto_binding, vec![CryptoBindingHash::Sha1]);
    assert_eq!(
        config.ppp.auth,
        vec![AuthProtocol::Pap, AuthProtocol::MsChapV2]
    );
    assert_eq!(config.ppp.lcp_echo_interval, Duration::from_secs(20));
    let auth = config.ppp.auth_config();
    assert_eq!(auth.restart_interval, Duration::from_secs(1));
    assert_eq!((auth.max_transmissions, auth.max_attempts), (7, 1));
    assert_eq!(auth.phase_timeout, Duration::from_secs(15));
    assert_eq!(config.ipv4.pool.len(), 11);
    assert!(config.ipv4.pool.contains(Ipv4Addr::new(192, 168, 50, 15)));
    assert!(!config.ipv4.pool.contains(Ipv4Addr::new(192, 168, 50, 21)));
    assert_eq!(config.ipv6.prefix.len, 56);
    assert_eq!(
        config.ipv6.gateway(),
        "2001:db8:1::fe".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(config.tun.name, "vpn-sstp");
    assert_eq!(
        config.users.local[0].ip,
        Some(Ipv4Addr::new(192, 168, 50, 99))
    );
    assert_eq!(config.users.local[0].password, Secret("apple pie".into()));
    assert_eq!(format!("{:?}", config.users.local[0].password), "***");
    assert_eq!(config.logging.format, LogFormat::Json);
}

#[test]
fn parse_errors_name_the_key_and_position() {
    assert_eq!(
        err("[ipv4]\npool = \"10.99.0.0/33\""),
        "ipv4.pool: 10.99.0.0/33 is not a valid prefix (line 2, column 8)"
    );
    assert_err(
        "[server]\nlisten = \"0.0.0.0:443\"",
        "server.listen: invalid type",
    );
    assert_err(
        "[server]\nlisten = [\"nonsense\"]",
        "server.listen[0]: invalid socket address",
    );
    assert_err(
        "[server]\nlistn = []",
        "server.listn: unknown field `listn`, expected one of `listen`",
    );
    assert_err("[serverx]\n", "serverx: unknown field `serverx`");
    assert_err("[server]\nworkers = -1", "server.workers: invalid value");
    assert_err(
        "[server]\nshutdown_timeout = \"5 parsecs\"",
        "server.shutdown_timeout: ",
    );
    assert_err(
        "[tls]\nmin_version = \"1.1\"",
        "tls.min_version: unknown variant `1.1`",
    );
    assert_err(
        "[tls]\nktls = \"maybe\"",
        "tls.ktls: unknown variant `maybe`",
    );
    assert_err(
        "[sstp]\ncrypto_binding = [\"md5\"]",
        "sstp.crypto_binding[0]: unknown variant `md5`",
    );
    assert_err(
        "[ppp]\nauth = [\"eap\"]",
        "ppp.auth: unknown method \"eap\"",
    );
    assert_err("[ppp]\nmru = 70000", "ppp.mru: invalid value");
    assert_err(
        "[ipv4]\npool = \"10.99.0.5/24\"",
        "ipv4.pool: 10.99.0.5/24 has host bits set (did you mean 10.99.0.0/24?)",
    );
    assert_err(
        "[ipv4]\npool = \"10.99.0.9-10.99.0.1\"",
        "ipv4.pool: 10.99.0.9-10.99.0.1 ends before it starts",
    );
    assert_err(
        "[ipv4]\npool = \"10.99.0.9-x\"",
        "ipv4.pool: 10.99.0.9-x is not a range",
    );
    assert_err(
        "[ipv4]\npool = \"lots\"",
        "ipv4.pool: \"lots\" is neither a prefix",
    );
    assert_err(
        "[ipv4]\ngateway = \"10.99.0\"",
        "ipv4.gateway: invalid IPv4 address",
    );
    assert_err(
        "[ipv6]\nprefix = \"fd99::1/48\"",
        "ipv6.prefix: fd99::1/48 has host bits set",
    );
    assert_err(
        "[ipv6]\nprefix = \"fd99::/129\"",
        "ipv6.prefix: fd99::/129 is not a valid IPv6 prefix",
    );
    assert_err(
        "[logging]\nlevel = \"loud\"",
        "logging.level: unknown variant `loud`",
    );
    assert_err(
        "[logging]\nformat = \"xml\"",
        "logging.format: unknown variant `xml`",
    );
    assert_err(
        "[[users.local]]\nname = \"x\"\n",
        "users.local[0]: missing field `password`",
    );
    assert_err(
        "[[users.local]]\nname = \"x\"\npassword = \"y\"\nrole = \"admin\"\n",
        "users.local[0].role: unknown field `role`",
    );
    assert_err("not toml at all", "");
    let e = Config::parse("[ipv4]\npool = \"10.99.0.0/33\"").unwrap_err();
    assert_eq!(e.key(), Some("ipv4.pool"));
    assert_eq!(e.as_str(), "parse");
}

#[test]
fn every_validation_error_names_its_key() {
    let cases: &[(&str, &str)] = &[
            ("[server]\nlisten = []", "server.listen: at least one address is required"),
            ("[server]\nlisten = [\"0.0.0.0:443\", \"0.0.0.0:443\"]", "server.listen[1]: 0.0.0.0:443 is listed twice"),
            ("[server]\nworkers = 5000", "server.workers: 5000 is more than 1024"),
            ("[server]\nshutdown_timeout = \"6m\"", "server.shutdown_timeout: must be at most 5m"),
            ("[server]\ndrain_period = \"25h\"", "server.drain_period: must be at most 24h"),
            ("[server]\nmax_sessions = 0", "server.max_sessions: must be at least 1"),
            ("[server]\nmax_preauth_sessions = 0", "server.max_preauth_sessions: must be at least 1"),
            ("[server]\nmax_preauth_per_source = 0", "server.max_preauth_per_source: must be at least 1"),
            ("[server]\npreauth_timeout = \"0s\"", "server.preauth_timeout: 0s is outside 1ms..=10m"),
            ("[server]\npreauth_timeout = \"11m\"", "server.preauth_timeout: 11m is outside 1ms..=10m"),
            ("[tls]\nself_signed = true\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"", "tls.self_signed: cannot be combined with tls.certificate"),
            ("[auth_throttle]\nwindow = \"0s\"", "auth_throttle.window: 0s is outside"),
            ("[auth_throttle]\nlockout = \"2days\"", "auth_throttle.lockout: 2days is outside 1ms..=1day"),
            ("[auth_throttle]\nmax_failures_per_source = 0", "auth_throttle.max_failures_per_source: 0 is outside 1..=100000"),
            ("[auth_throttle]\nmax_failures_per_user = 0", "auth_throttle.max_failures_per_user: 0 is outside 1..=100000"),
            ("[auth_throttle]\nmax_entries = 0", "auth_throttle.max_entries: 0 is outside 1..=1048576"),
            ("[ipv4]\nclient_to_client = \"maybe\"", "ipv4.client_to_client: unknown variant `maybe`"),
            ("[tls]\ncertificate = \"c.pem\"", "tls.private_key: required when tls.certificate is set"),
            ("[tls]\nprivate_key = \"k.pem\"", "tls.certificate: required when tls.private_key is set"),
            ("[tls]\ncipher_suites = []", "tls.cipher_suites: must not be empty"),
            ("[tls]\ncipher_suites = [\"TLS_RSA_WITH_RC4_128_MD5\"]", "tls.cipher_suites[0]: unknown cipher suite \"TLS_RSA_WITH_RC4_128_MD5\""),
            ("[tls]\ncipher_suites = [\"TLS13_AES_128_GCM_SHA256\", \"tls13_aes_128_gcm_sha256\"]", "tls.cipher_suites[1]: tls13_aes_128_gcm_sha256 is listed twice"),
            ("[tls]\nmin_version = \"1.3\"\ncipher_suites = [\"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"]", "tls.cipher_suites: no TLS 1.3 suite listed"),
            ("[tls]\nmin_version = \"1.3\"\nmax_version = \"1.2\"", "tls.max_version: \"1.2\" is below tls.min_version \"1.3\""),
            ("[tls]\nmax_version = \"1.2\"\ncipher_suites = [\"TLS13_AES_128_GCM_SHA256\"]", "tls.cipher_suites: no suite listed for TLS 1.2 to 1.2"),
            ("[tls]\nhandshake_timeout = \"0s\"", "tls.handshake_timeout: must be between 1ms and 5m"),
            ("[tls]\nhandshake_timeout = \"10m\"", "tls.handshake_timeout: must be between 1ms and 5m"),
            ("[tls]\nsession_tickets = true", "tls.session_tickets: needs tls.ktls = \"off\" (it is \"auto\")"),
            ("[tls]\nsession_tickets = true\nktls = \"require\"", "tls.session_tickets: needs tls.ktls = \"off\" (it is \"require\")"),
            ("[sstp]\nhello_interval = \"0s\"", "sstp.hello_interval: 0s is outside 1ms..=1h"),
            ("[sstp]\nnegotiation_timeout = \"2h\"", "sstp.negotiation_timeout: 2h is outside 1ms..=1h"),
            ("[sstp]\nabort_timeout = \"0s\"", "sstp.abort_timeout: "),
            ("[sstp]\nabort_ack_timeout = \"0s\"", "sstp.abort_ack_timeout: "),
            ("[sstp]\ndisconnect_timeout = \"0s\"", "sstp.disconnect_timeout: "),
            ("[sstp]\ndisconnect_ack_timeout = \"0s\"", "sstp.disconnect_ack_timeout: "),
            ("[sstp]\ncrypto_binding = []", "sstp.crypto_binding: list at least one"),
            ("[sstp]\ncrypto_binding = [\"sha1\", \"sha1\"]", "sstp.crypto_binding[1]: sha1 is listed twice"),
            ("[ppp]\nauth = []", "ppp.auth: list at least one"),
            ("[ppp]\nauth = [\"pap\", \"chap-md5\", \"pap\"]", "ppp.auth[2]: pap is listed twice"),
            ("[ppp]\nmru = 500", "ppp.mru: 500 is below 576"),
            ("[ppp]\nmru = 1200\n[ipv6]\nenabled = true", "ppp.mru: 1200 is below 1280, the IPv6 minimum"),
            ("[ppp]\nlcp_restart_interval = \"0s\"", "ppp.lcp_restart_interval: "),
            ("[ppp]\nlcp_max_configure = 0", "ppp.lcp_max_configure: 0 is outside 1..=255"),
            ("[ppp]\nlcp_max_failure = 256", "ppp.lcp_max_failure: 256 is outside 1..=255"),
            ("[ppp]\nlcp_max_terminate = 0", "ppp.lcp_max_terminate: "),
            ("[ppp]\nlcp_echo_failures = 0", "ppp.lcp_echo_failures: "),
            ("[ppp]\nauth_max_attempts = 0", "ppp.auth_max_attempts: "),
            ("[ppp]\nlcp_echo_interval = \"2h\"", "ppp.lcp_echo_interval: must be at most 1h"),
            ("[ppp]\nauth_timeout = \"0s\"", "ppp.auth_timeout: "),
            ("[ipv4]\npool = \"10.0.0.0/7\"", "ipv4.pool: 10.0.0.0/7 has 33554430 addresses; the limit is 16777216"),
            ("[ipv4]\npool = \"127.0.0.0/24\"", "ipv4.pool: 127.0.0.0/24 contains 127.0.0.1, which cannot be a client address"),
            ("[ipv4]\npool = \"239.0.0.0/24\"", "ipv4.pool: 239.0.0.0/24 contains 239.0.0.1"),
            ("[ipv4]\ngateway = \"0.0.0.0\"", "ipv4.gateway: 0.0.0.0 is not a unicast address"),
            ("[ipv4]\npool = \"10.99.0.1/32\"", "ipv4.pool: 10.99.0.1/32 holds only the gateway 10.99.0.1"),
            ("[ipv4]\ndns = [\"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\"]", "ipv4.dns: 3 servers listed; IPCP carries at most 2"),
            ("[ipv4]\ndns = [\"224.0.0.1\"]", "ipv4.dns: 224.0.0.1 is not a unicast address"),
            ("[ipv4]\nnbns = [\"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\"]", "ipv4.nbns: 3 servers listed"),
            ("[ipv4]\nnbns = [\"0.0.0.0\"]", "ipv4.nbns: 0.0.0.0 is not a unicast address"),
            ("[ipv6]\nprefix = \"fd99::/80\"", "ipv6.prefix: fd99::/80 is longer than /64"),
            ("[ipv6]\nprefix = \"ff00::/8\"", "ipv6.prefix: ff00::/8 is not a unicast prefix"),
            ("[ipv6]\ngateway = \"ff02::1\"", "ipv6.gateway: ff02::1 is not a unicast address"),
            ("[ipv6]\ndns = [\"::1\", \"::2\", \"::3\"]", "ipv6.dns: 3 servers listed"),
            ("[ipv6]\ndns = [\"::\"]", "ipv6.dns: :: is not a unicast address"),
            ("[tun]\nname = \"\"", "tun.name: \"\" is not a valid interface name"),
            ("[tun]\nname = \"a-very-long-name-indeed\"", "tun.name: "),
            ("[tun]\nname = \"a/b\"", "tun.name: "),
            ("[tun]\nname = \"sstp 0\"", "tun.name: "),
            ("[tun]\nname = \"..\"", "tun.name: "),
            ("[tun]\nmtu = 500", "tun.mtu: 500 is below 576"),
            ("[tun]\nmtu = 1279\n[ipv6]\nenabled = true\n[ppp]\nmru = 1400", "tun.mtu: 1279 is below 1280, the IPv6 minimum"),
            ("[users]\nserver_name = \"\"", "users.server_name: must be a non-empty name without spaces"),
        ];
    for (text, expected) in cases {
        assert_err(text, expected);
    }
}

#[test]
fn user_validation_errors() {
    let check = |users: &str, expected: &str| {
        let got = Config::from_toml_str(users).unwrap_err().to_string();
        assert!(got.starts_with(expected), "got {got}, want {expected}");
    };
    check(
        "",
        "users: no users: set users.chap_secrets or add [[users.local]] entries",
    );
    check(
        "[[users.local]]\nname = \"\"\npassword = \"p\"",
        "users.local[0].name: must be 1 to 255 bytes",
    );
    check(
        "[[users.local]]\nname = \"*\"\npassword = \"p\"",
        "users.local[0].name: \"*\" is not a user name",
    );
    check(
            "[[users.local]]\nname = \"a\"\npassword = \"p\"\n[[users.local]]\nname = \"a\"\npassword = \"q\"",
            "users.local[1].name: \"a\" is defined twice",
        );
    check(
        "[[users.local]]\nname = \"a\"\npassword = \"\"",
        "users.local[0].password: must be 1 to 255 bytes",
    );
    check(
        &format!(
            "[[users.local]]\nname = \"a\"\npassword = \"{}\"",
            "x".repeat(256)
        ),
        "users.local[0].password: must be 1 to 255 bytes",
    );
    check(
        "[[users.local]]\nname = \"a\"\npassword = \"p\"\nip = \"127.0.0.2\"",
        "users.local[0].ip: 127.0.0.2 cannot be a client address",
    );
    check(
        "[[users.local]]\nname = \"a\"\npassword = \"p\"\nip = \"10.99.0.1\"",
        "users.local[0].ip: 10.99.0.1 cannot be a client address",
    );
    // A chap-secrets file alone is enough.
    Config::from_toml_str("[users]\nchap_secrets = \"/etc/ppp/chap-secrets\"").unwrap();
}

#[test]
fn pool_forms() {
    let r: Ipv4Range = "10.0.0.0/24".parse().unwrap();
    assert_eq!(
        (r.first(), r.last(), r.len()),
        (
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 254),
            254
        )
    );
    let r: Ipv4Range = "10.0.0.8/30".parse().unwrap();
    assert_eq!(
        (r.first(), r.last()),
        (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 10))
    );
    let r: Ipv4Range = "10.0.0.8/31".parse().unwrap();
    assert_eq!(
        (r.first(), r.last()),
        (Ipv4Addr::new(10, 0, 0, 8), Ipv4Addr::new(10, 0, 0, 9))
    );
    let r: Ipv4Range = "10.0.0.8/32".parse().unwrap();
    assert_eq!(
        (r.first(), r.last(), r.len()),
        (Ipv4Addr::new(10, 0, 0, 8), Ipv4Addr::new(10, 0, 0, 8), 1)
    );
    let r: Ipv4Range = "10.0.0.5-10.0.0.5".parse().unwrap();
    assert_eq!(r.len(), 1);
    let r = Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)).unwrap();
    assert_eq!(
        (r.len(), r.to_string()),
        (3, "10.0.0.1-10.0.0.3".to_owned())
    );
    assert_eq!(
        Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 1)),
        None
    );
    let r: Ipv4Range = "0.0.0.0/0".parse().unwrap();
    assert_eq!(r.len(), (1u64 << 32) - 2);
    assert!("10.0.0.0/".parse::<Ipv4Range>().is_err());
    assert!("10.0.0/8".parse::<Ipv4Range>().is_err());
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sstpd.toml");
    std::fs::write(
            &path,
            "[server]\nstate_dir = \"state\"\n[tls]\ncertificate = \"c.pem\"\nprivate_key = \"/abs/k.pem\"\n\
             [users]\nchap_secrets = \"secrets\"\n",
        )
        .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.server.state_dir, Some(dir.path().join("state")));
    assert_eq!(config.tls.certificate, Some(dir.path().join("c.pem")));
    assert_eq!(config.tls.private_key, Some(PathBuf::from("/abs/k.pem")));
    assert_eq!(config.users.chap_secrets, Some(dir.path().join("secrets")));
    assert_eq!(config.source, ConfigSource::File(path));

    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert_eq!(missing.as_str(), "read");
    assert!(missing.to_string().starts_with("cannot read "));
}

#[test]
fn embedded_defaults() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let config = Config::embedded_defaults_with(None, &mut rng);
    config.validate().unwrap();
    assert_eq!(
        config.server.listen,
        vec!["127.0.0.1:4443".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(config.ipv4.pool.to_string(), "10.99.0.0/24");
    assert_eq!(config.ipv4.gateway, Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(config.tun.name, "sstp0");
    assert_eq!(config.tls.certificate, None);
    // The demo serves its generated certificate, on loopback only, where
    // every client shares one source address.
    assert!(config.tls.self_signed);
    assert_eq!(
        config.server.max_preauth_per_source,
        config.server.max_preauth_sessions
    );
    assert_eq!(config.users.local.len(), 1);
    let demo = &config.users.local[0];
    assert_eq!(demo.name, "demo");
    assert_eq!(demo.password.0.len(), DEMO_PASSWORD_LEN);
    assert!(demo.password.0.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        config.source,
        ConfigSource::Embedded {
            demo_password_generated: true
        }
    );
    // Different randomness, different password.
    let other = Config::embedded_defaults_with(None, &mut rand::rngs::StdRng::seed_from_u64(8));
    assert_ne!(other.users.local[0].password, demo.password);

    let from_env = Config::embedded_defaults_with(Some("hunter2".into()), &mut rng);
    assert_eq!(from_env.users.local[0].password.0, "hunter2");
    assert_eq!(
        from_env.source,
        ConfigSource::Embedded {
            demo_password_generated: false
        }
    );
}

#[test]
fn systemd_state_directory_comes_first_when_absolute() {
    assert_eq!(
        systemd_state_directory(Some("/var/lib/sstpd".into())),
        Some(PathBuf::from("/var/lib/sstpd"))
    );
    assert_eq!(
        systemd_state_directory(Some("/var/lib/a:/var/lib/b".into())),
        Some(PathBuf::from("/var/lib/a"))
    );
    assert_eq!(systemd_state_directory(Some("relative".into())), None);
    assert_eq!(systemd_state_directory(Some("".into())), None);
    assert_eq!(systemd_state_directory(None), None);
}

#[test]
fn state_dir_defaults() {
    assert_eq!(
        default_state_dir(true, Some("/x".into()), Some("/home/u".into())),
        Some(PathBuf::from("/var/lib/sstpd"))
    );
    assert_eq!(
        default_state_dir(false, Some("/home/u/.state".into()), Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.state/sstpd"))
    );
    // A relative XDG_STATE_HOME is invalid per the XDG spec.
    assert_eq!(
        default_state_dir(false, Some("rel".into()), Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.local/state/sstpd"))
    );
    assert_eq!(
        default_state_dir(false, None, Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.local/state/sstpd"))
    );
    assert_eq!(default_state_dir(false, None, None), None);
}

#[test]
fn example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sstpd.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.server.listen.len(), 2);
    assert_eq!(config.server.listen[0].port(), 443);
    assert!(config.ipv6.enabled);
    assert_eq!(config.ipv4.pool.len(), 4094);
    assert_eq!(
        config.users.chap_secrets,
        Some(path.parent().unwrap().join("chap-secrets"))
    );
    assert_eq!(
        config.metrics.listen,
        Some("127.0.0.1:9464".parse::<SocketAddr>().unwrap())
    );
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,80}") {
        let _ = text.parse::<Ipv4Range>();
        let _ = text.parse::<Ipv6Prefix>();
        let _ = Config::parse(&text);
        let _ = Config::parse(&format!("[ipv4]\npool = {text:?}\n[tls]\ncipher_suites = [{text:?}]"))
            .map(|c| c.validate());
    }

    #[test]
    fn prefixes_round_trip(addr: u32, len in 0u32..=32) {
        let network = Ipv4Addr::from(addr & u32::MAX.checked_shl(32 - len).unwrap_or(0));
        let range: Ipv4Range = format!("{network}/{len}").parse().unwrap();
        proptest::prop_assert!(range.first() <= range.last());
        proptest::prop_assert_eq!(range.len() + u64::from(len <= 30) * 2, 1u64 << (32 - len));
    }
}

#[test]
fn line_column_positions() {
    assert_eq!(line_column("abc", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("ab", 99), (1, 3));
}

#[test]
fn radius_section_defaults_and_a_full_example() {
    let config = load("").unwrap();
    let r = &config.radius;
    assert_eq!(config.users.backends, [UserBackend::Local]);
    assert!(r.auth_server.is_empty() && r.acct_server.is_empty());
    assert_eq!(
        (r.auth_timeout, r.acct_timeout, r.retries, r.dead_time),
        (
            Duration::from_secs(3),
            Duration::from_secs(5),
            2,
            Duration::from_secs(30)
        )
    );
    assert!(r.require_message_authenticator);
    assert_eq!(r.nas_identifier, "sstpd");
    assert_eq!(r.acct_interim_interval, Duration::ZERO);
    assert_eq!(r.max_pending, 4096);
    assert_eq!(r.acct_max_in_flight, 128);

    let config = Config::from_toml_str(
        "[users]\nbackends = [\"radius\"]\n\
         [radius]\nnas_identifier = \"vpn1\"\nnas_ip_address = \"192.0.2.1\"\n\
         called_station_id = \"vpn.example.com\"\nretries = 1\nacct_interim_interval = \"5m\"\n\
         [[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"testing123\"\n\
         [[radius.auth_server]]\naddress = \"127.0.0.2:1812\"\nsecret = \"other\"\n\
         [[radius.acct_server]]\naddress = \"127.0.0.1:1813\"\nsecret = \"testing123\"\n\
         [[ipv4.pools]]\nname = \"gold\"\nrange = \"10.98.0.0/24\"\n",
    )
    .expect("no local users needed with backends = [\"radius\"]");
    assert!(config.uses_radius() && !config.uses_local_users());
    let r = &config.radius;
    assert_eq!(r.auth_server.len(), 2);
    assert_eq!(r.auth_server[1].secret.0, "other");
    assert!(
        !format!("{r:?}").contains("testing123"),
        "secrets stay out of logs"
    );
    assert_eq!(r.nas_ip_address, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(config.ipv4.pools[0].name, "gold");
}

#[test]
fn radius_errors_name_the_key() {
    let server = "[[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"s\"\n";
    assert_err(
        "[users]\nbackends = [\"radius\"]\n",
        "radius.auth_server: users.backends names \"radius\"",
    );
    assert_err(
        "[users]\nbackends = [\"radius\", \"local\"]\n",
        "users.backends: must be",
    );
    assert_err("[users]\nbackends = []\n", "users.backends: must name");
    assert_err(
        "[[radius.auth_server]]\naddress = \"127.0.0.1:1812\"\nsecret = \"\"\n",
        "radius.auth_server[0].secret: must be 1 to 128 bytes",
    );
    assert_err(
        &format!("{server}{server}"),
        "radius.auth_server[1].address: 127.0.0.1:1812 is listed twice",
    );
    assert_err(
        "[[radius.acct_server]]\naddress = \"0.0.0.0:1813\"\nsecret = \"s\"\n",
        "radius.acct_server[0].address",
    );
    assert_err("[radius]\nretries = 11\n", "radius.retries");
    assert_err("[radius]\nauth_timeout = \"0s\"\n", "radius.auth_timeout");
    assert_err(
        "[radius]\nacct_interim_interval = \"10ms\"\n",
        "radius.acct_interim_interval: must be 0 (off) or at least 1s",
    );
    assert_err("[radius]\nnas_identifier = \"\"\n", "radius.nas_identifier");
    assert_err("[radius]\nmax_pending = 0\n", "radius.max_pending");
    assert_err(
        "[radius]\nacct_max_in_flight = 0\n",
        "radius.acct_max_in_flight",
    );
    assert_err(
        "[radius]\nacct_max_in_flight = 1025\n",
        "radius.acct_max_in_flight",
    );
    assert_err("[radius]\nsecret = \"s\"\n", "radius.secret");
    assert_err(
        "[radius]\neap_pass_through = true\n",
        "radius.eap_pass_through: needs \"radius\" in users.backends",
    );
    assert_err(
        &format!("[radius]\neap_pass_through = true\n[users]\nbackends = [\"radius\"]\n{server}"),
        "radius.eap_pass_through: needs \"eap-mschapv2\" in ppp.auth",
    );
}

#[test]
fn named_pools_must_stand_apart() {
    assert_err(
        "[[ipv4.pools]]\nname = \"a\"\nrange = \"10.99.0.128/25\"\n",
        "ipv4.pools[0].range: 10.99.0.128/25 overlaps ipv4.pool",
    );
    assert_err(
        "[[ipv4.pools]]\nname = \"a\"\nrange = \"10.98.0.0/24\"\n\
         [[ipv4.pools]]\nname = \"b\"\nrange = \"10.98.0.100-10.98.1.5\"\n",
        "ipv4.pools[1].range: 10.98.0.100-10.98.1.5 overlaps pool \"a\"",
    );
    assert_err(
        "[[ipv4.pools]]\nname = \"a\"\nrange = \"10.98.0.0/24\"\n\
         [[ipv4.pools]]\nname = \"a\"\nrange = \"10.97.0.0/24\"\n",
        "ipv4.pools[1].name: \"a\" is defined twice",
    );
    assert_err(
        "[[ipv4.pools]]\nname = \"\"\nrange = \"10.98.0.0/24\"\n",
        "ipv4.pools[0].name",
    );
}

#[test]
fn the_metrics_endpoint_is_off_unless_an_address_is_given() {
    assert_eq!(load("").unwrap().metrics.listen, None);
    let config = load("[metrics]\nlisten = \"127.0.0.1:9464\"\n").unwrap();
    assert_eq!(
        config.metrics.listen,
        Some("127.0.0.1:9464".parse::<SocketAddr>().unwrap())
    );
    let got = err("[metrics]\nlisten = \"localhost\"\n");
    assert!(got.contains("metrics.listen"), "{got}");
    let got = err("[metrics]\nport = 9464\n");
    assert!(got.contains("port"), "{got}");
}

/// Everything a file can say, secrets included, for the rendering tests.
const FULL_CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:4443"]
workers = 2
[[server.listener]]
address = "127.0.0.1:4444"
proxy_protocol = "v2"
proxy_from = ["10.0.0.0/8"]
[tls]
self_signed = true
cipher_suites = ["TLS13_AES_128_GCM_SHA256"]
[ppp]
auth = ["mschapv2", "pap"]
[ipv4]
pool = "10.99.0.10-10.99.0.250"
dns = ["9.9.9.9"]
[[ipv4.pools]]
name = "staff"
range = "10.98.0.0/24"
[ipv6]
enabled = true
prefix = "fd98::/48"
[users]
backends = ["local", "radius"]
[[users.local]]
name = "alice"
password = "alice-password"
ip = "10.99.0.20"
[radius]
acct_interim_interval = "5m"
[[radius.auth_server]]
address = "127.0.0.1:1812"
secret = "auth-secret"
[[radius.acct_server]]
address = "127.0.0.1:1813"
secret = "acct-secret"
[[radius.dae.client]]
address = "192.0.2.0/24"
secret = "dae-secret"
[metrics]
listen = "127.0.0.1:9464"
[control]
socket = "/run/sstpd/control.sock"
"#;

#[test]
fn the_rendered_configuration_loads_back_to_the_same() {
    let config = Config::from_toml_str(FULL_CONFIG).unwrap();
    let text = config.to_toml().unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), config, "{text}");
    let example =
        Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sstpd.toml")).unwrap();
    let mut again = Config::from_toml_str(&example.to_toml().unwrap()).unwrap();
    again.source = example.source.clone();
    assert_eq!(again, example);
    let embedded = Config::embedded_defaults_with(None, &mut rand::rngs::StdRng::seed_from_u64(1));
    assert_eq!(
        embedded.control.socket.as_deref(),
        Some(Path::new(DEFAULT_CONTROL_SOCKET))
    );
    assert_eq!(Config::default().control.socket, None);
}

#[test]
fn the_redacted_rendering_hides_every_secret_and_nothing_else() {
    let config = Config::from_toml_str(FULL_CONFIG).unwrap();
    let text = config.redacted().to_toml().unwrap();
    for secret in ["alice-password", "auth-secret", "acct-secret", "dae-secret"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    assert_eq!(text.matches(REDACTED).count(), 4, "{text}");
    let mut back = Config::from_toml_str(&text).unwrap();
    back.users.local[0].password = Secret("alice-password".into());
    back.radius.auth_server[0].secret = Secret("auth-secret".into());
    back.radius.acct_server[0].secret = Secret("acct-secret".into());
    back.radius.dae.client[0].secret = Secret("dae-secret".into());
    assert_eq!(back, config);
}

#[test]
fn a_control_socket_path_must_fit_a_socket_address() {
    assert_err(
        &format!("[control]\nsocket = \"/{}\"", "x".repeat(120)),
        "control.socket: a socket path must be 1 to 107 bytes long",
    );
}
