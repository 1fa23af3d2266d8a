//! The rules that parsing alone does not enforce. Every error names the
//! offending key.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;
/// IPv6 needs links of at least 1280 octets ([RFC 8200] 5).
const IPV6_MIN_MTU: u16 = 1280;
/// Smallest MTU/MRU accepted: the IPv4 minimum reassembly size.
const MIN_MTU: u16 = 576;
/// PPP names and passwords are carried in one-octet length fields
/// ([RFC 1334] 2.2.1, [RFC 1994] 4.1) or limited by Windows to 256.
const MAX_CREDENTIAL_LEN: usize = 255;

impl Config {
    /// Checks every rule that parsing alone does not enforce. The error names
    /// the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server()?;
        self.validate_tls()?;
        self.validate_sstp()?;
        self.validate_ppp()?;
        self.validate_ipv4()?;
        self.validate_ipv6()?;
        self.validate_tun()?;
        self.validate_users()?;
        self.validate_backends()?;
        self.validate_radius()?;
        self.validate_auth_throttle()?;
        self.validate_control()?;
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.listen.is_empty() && s.listener.is_empty() {
            return Err(ConfigError::invalid(
                "server.listen",
                "at least one address is required",
            ));
        }
        no_duplicates("server.listen", &s.listen, ToString::to_string)?;
        self.validate_listeners()?;
        if s.workers > 1024 {
            return Err(ConfigError::invalid(
                "server.workers",
                format!("{} is more than 1024", s.workers),
            ));
        }
        if s.shutdown_timeout > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "server.shutdown_timeout",
                "must be at most 5m",
            ));
        }
        if s.drain_period > MAX_DRAIN_PERIOD {
            return Err(ConfigError::invalid(
                "server.drain_period",
                "must be at most 24h",
            ));
        }
        for (key, value) in [
            ("server.max_sessions", s.max_sessions),
            ("server.max_preauth_sessions", s.max_preauth_sessions),
            ("server.max_preauth_per_source", s.max_preauth_per_source),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        positive_at_most(
            "server.preauth_timeout",
            s.preauth_timeout,
            Duration::from_secs(600),
        )
    }

    fn validate_auth_throttle(&self) -> Result<(), ConfigError> {
        let t = &self.auth_throttle;
        for (key, value) in [
            ("auth_throttle.window", t.window),
            ("auth_throttle.lockout", t.lockout),
        ] {
            positive_at_most(key, value, Duration::from_secs(24 * 3600))?;
        }
        for (key, value) in [
            (
                "auth_throttle.max_failures_per_source",
                t.max_failures_per_source,
            ),
            (
                "auth_throttle.max_failures_per_user",
                t.max_failures_per_user,
            ),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is outside 1..=100000"),
                ));
            }
        }
        if !(1..=1 << 20).contains(&t.max_entries) {
            return Err(ConfigError::invalid(
                "auth_throttle.max_entries",
                format!("{} is outside 1..=1048576", t.max_entries),
            ));
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        match (&t.certificate, &t.private_key) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "tls.private_key",
                    "required when tls.certificate is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "tls.certificate",
                    "required when tls.private_key is set",
                ))
            }
            _ => {}
        }
        if t.self_signed && t.certificate.is_some() {
            return Err(ConfigError::invalid(
                "tls.self_signed",
                "cannot be combined with tls.certificate: choose one",
            ));
        }
        if t.min_version > t.max_version {
            return Err(ConfigError::invalid(
                "tls.max_version",
                format!(
                    "\"{}\" is below tls.min_version \"{}\"",
                    t.max_version.as_str(),
                    t.min_version.as_str()
                ),
            ));
        }
        if let Some(names) = &t.cipher_suites {
            if names.is_empty() {
                return Err(ConfigError::invalid(
                    "tls.cipher_suites",
                    "must not be empty (leave it out for the defaults)",
                ));
            }
            let mut seen = Vec::new();
            let mut any_tls13 = false;
            let mut any_in_range = false;
            for (i, name) in names.iter().enumerate() {
                let key = format!("tls.cipher_suites[{i}]");
                let suite = super::tls_names::cipher_suite_by_name(name)
                    .map_err(|message| ConfigError::invalid(&key, message))?;
                if seen.contains(&suite.suite()) {
                    return Err(ConfigError::invalid(key, format!("{name} is listed twice")));
                }
                seen.push(suite.suite());
                any_tls13 |= suite.version() == &rustls::version::TLS13;
                any_in_range |= (t.min_version..=t.max_version)
                    .contains(&super::tls_names::suite_version(suite));
            }
            if t.min_version == TlsVersion::Tls13 && !any_tls13 {
                return Err(ConfigError::invalid(
                    "tls.cipher_suites",
                    "no TLS 1.3 suite listed, but tls.min_version is \"1.3\"",
                ));
            }
            if !any_in_range {
                return Err(ConfigError::invalid(
                    "tls.cipher_suites",
                    format!(
                        "no suite listed for TLS {} to {} (tls.min_version..tls.max_version)",
                        t.min_version.as_str(),
                        t.max_version.as_str()
                    ),
                ));
            }
        }
        if t.handshake_timeout.is_zero() || t.handshake_timeout > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "tls.handshake_timeout",
                "must be between 1ms and 5m",
            ));
        }
        if t.session_tickets && t.ktls != KtlsMode::Off {
            return Err(ConfigError::invalid(
                "tls.session_tickets",
                format!(
                    "needs tls.ktls = \"off\" (it is \"{}\"): sessions handed to kernel TLS \
                     cannot issue or accept resumption tickets",
                    t.ktls.as_str()
                ),
            ));
        }
        Ok(())
    }

    fn validate_sstp(&self) -> Result<(), ConfigError> {
        let s = &self.sstp;
        for (key, value) in [
            ("sstp.hello_interval", s.hello_interval),
            ("sstp.negotiation_timeout", s.negotiation_timeout),
            ("sstp.abort_timeout", s.abort_timeout),
            ("sstp.abort_ack_timeout", s.abort_ack_timeout),
            ("sstp.disconnect_timeout", s.disconnect_timeout),
            ("sstp.disconnect_ack_timeout", s.disconnect_ack_timeout),
        ] {
            positive_at_most(key, value, Duration::from_secs(3600))?;
        }
        if s.crypto_binding.is_empty() {
            return Err(ConfigError::invalid(
                "sstp.crypto_binding",
                "list at least one of \"sha256\", \"sha1\"",
            ));
        }
        no_duplicates("sstp.crypto_binding", &s.crypto_binding, |h| {
            h.as_str().to_owned()
        })
    }

    fn validate_ppp(&self) -> Result<(), ConfigError> {
        let p = &self.ppp;
        if p.auth.is_empty() {
            return Err(ConfigError::invalid(
                "ppp.auth",
                "list at least one of \"mschapv2\", \"chap-md5\", \"pap\"",
            ));
        }
        no_duplicates("ppp.auth", &p.auth, |a| a.as_str().to_owned())?;
        if p.mru < MIN_MTU {
            return Err(ConfigError::invalid(
                "ppp.mru",
                format!("{} is below {MIN_MTU}", p.mru),
            ));
        }
        if self.ipv6.enabled && p.mru < IPV6_MIN_MTU {
            return Err(ConfigError::invalid(
                "ppp.mru",
                format!(
                    "{} is below {IPV6_MIN_MTU}, the IPv6 minimum (ipv6.enabled is true)",
                    p.mru
                ),
            ));
        }
        positive_at_most(
            "ppp.lcp_restart_interval",
            p.lcp_restart_interval,
            Duration::from_secs(60),
        )?;
        for (key, value) in [
            ("ppp.lcp_max_configure", p.lcp_max_configure),
            ("ppp.lcp_max_failure", p.lcp_max_failure),
            ("ppp.lcp_max_terminate", p.lcp_max_terminate),
            ("ppp.lcp_echo_failures", p.lcp_echo_failures),
            ("ppp.auth_max_attempts", p.auth_max_attempts),
        ] {
            if !(1..=255).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is outside 1..=255"),
                ));
            }
        }
        if p.lcp_echo_interval > Duration::from_secs(3600) {
            return Err(ConfigError::invalid(
                "ppp.lcp_echo_interval",
                "must be at most 1h (0 turns echoes off)",
            ));
        }
        positive_at_most("ppp.auth_timeout", p.auth_timeout, Duration::from_secs(600))
    }

    fn validate_ipv4(&self) -> Result<(), ConfigError> {
        let v4 = &self.ipv4;
        if v4.pool.len() > MAX_POOL_ADDRESSES {
            return Err(ConfigError::invalid(
                "ipv4.pool",
                format!(
                    "{} has {} addresses; the limit is {MAX_POOL_ADDRESSES} (a /8)",
                    v4.pool,
                    v4.pool.len()
                ),
            ));
        }
        for addr in [v4.pool.first(), v4.pool.last()] {
            if !usable_unicast_v4(addr) {
                return Err(ConfigError::invalid(
                    "ipv4.pool",
                    format!(
                        "{} contains {addr}, which cannot be a client address",
                        v4.pool
                    ),
                ));
            }
        }
        if !usable_unicast_v4(v4.gateway) {
            return Err(ConfigError::invalid(
                "ipv4.gateway",
                format!("{} is not a unicast address", v4.gateway),
            ));
        }
        if v4.pool.len() == 1 && v4.pool.contains(v4.gateway) {
            return Err(ConfigError::invalid(
                "ipv4.pool",
                format!(
                    "{} holds only the gateway {}: no address left for clients",
                    v4.pool, v4.gateway
                ),
            ));
        }
        self.validate_named_pools()?;
        for (key, list) in [("ipv4.dns", &v4.dns), ("ipv4.nbns", &v4.nbns)] {
            if list.len() > 2 {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} servers listed; IPCP carries at most 2", list.len()),
                ));
            }
            for addr in list {
                if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{addr} is not a unicast address"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `[[ipv4.pools]]`: named, usable, and apart from each other and from
    /// `ipv4.pool` (an address belongs to one pool).
    fn validate_named_pools(&self) -> Result<(), ConfigError> {
        let v4 = &self.ipv4;
        let mut total = v4.pool.len();
        for (i, pool) in v4.pools.iter().enumerate() {
            let key = |field: &str| format!("ipv4.pools[{i}].{field}");
            if pool.name.is_empty() || pool.name.len() > 253 {
                return Err(ConfigError::invalid(key("name"), "must be 1 to 253 bytes"));
            }
            if v4.pools[..i].iter().any(|p| p.name == pool.name) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("{:?} is defined twice", pool.name),
                ));
            }
            let range = &pool.range;
            for addr in [range.first(), range.last()] {
                if !usable_unicast_v4(addr) {
                    return Err(ConfigError::invalid(
                        key("range"),
                        format!("{range} contains {addr}, which cannot be a client address"),
                    ));
                }
            }
            let overlaps =
                |other: &Ipv4Range| range.first() <= other.last() && other.first() <= range.last();
            if overlaps(&v4.pool) {
                return Err(ConfigError::invalid(
                    key("range"),
                    format!("{range} overlaps ipv4.pool {}", v4.pool),
                ));
            }
            if let Some(other) = v4.pools[..i].iter().find(|p| overlaps(&p.range)) {
                return Err(ConfigError::invalid(
                    key("range"),
                    format!("{range} overlaps pool {:?} ({})", other.name, other.range),
                ));
            }
            total += range.len();
        }
        if total > MAX_POOL_ADDRESSES {
            return Err(ConfigError::invalid(
                "ipv4.pools",
                format!(
                    "the pools hold {total} addresses together; the limit is \
                     {MAX_POOL_ADDRESSES} (a /8)"
                ),
            ));
        }
        Ok(())
    }

    fn validate_ipv6(&self) -> Result<(), ConfigError> {
        let v6 = &self.ipv6;
        if v6.prefix.len > 64 {
            return Err(ConfigError::invalid(
                "ipv6.prefix",
                format!(
                    "{} is longer than /64: each session needs a /64 from it",
                    v6.prefix
                ),
            ));
        }
        if v6.prefix.addr.is_multicast() || v6.prefix.addr.is_unspecified() {
            return Err(ConfigError::invalid(
                "ipv6.prefix",
                format!("{} is not a unicast prefix", v6.prefix),
            ));
        }
        if let Some(gw) = v6.gateway {
            if gw.is_multicast() || gw.is_unspecified() || gw.is_loopback() {
                return Err(ConfigError::invalid(
                    "ipv6.gateway",
                    format!("{gw} is not a unicast address"),
                ));
            }
        }
        if v6.dns.len() > 2 {
            return Err(ConfigError::invalid(
                "ipv6.dns",
                format!("{} servers listed; at most 2 are announced", v6.dns.len()),
            ));
        }
        if let Some(bad) = v6
            .dns
            .iter()
            .find(|a| a.is_multicast() || a.is_unspecified())
        {
            return Err(ConfigError::invalid(
                "ipv6.dns",
                format!("{bad} is not a unicast address"),
            ));
        }
        Ok(())
    }

    fn validate_tun(&self) -> Result<(), ConfigError> {
        let t = &self.tun;
        let name_ok = !t.name.is_empty()
            && t.name.len() <= MAX_IFNAME_LEN
            && t.name != "."
            && t.name != ".."
            && t.name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !name_ok {
            return Err(ConfigError::invalid(
                "tun.name",
                format!(
                    "{:?} is not a valid interface name (1-15 printable characters, no '/', ':' or spaces)",
                    t.name
                ),
            ));
        }
        if t.mtu < MIN_MTU {
            return Err(ConfigError::invalid(
                "tun.mtu",
                format!("{} is below {MIN_MTU}", t.mtu),
            ));
        }
        if self.ipv6.enabled && t.mtu < IPV6_MIN_MTU {
            return Err(ConfigError::invalid(
                "tun.mtu",
                format!(
                    "{} is below {IPV6_MIN_MTU}, the IPv6 minimum (ipv6.enabled is true)",
                    t.mtu
                ),
            ));
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        let u = &self.users;
        if u.chap_secrets.is_none() && u.local.is_empty() && self.uses_local_users() {
            return Err(ConfigError::invalid(
                "users",
                "no users: set users.chap_secrets or add [[users.local]] entries",
            ));
        }
        if u.server_name.is_empty() || u.server_name.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "users.server_name",
                "must be a non-empty name without spaces",
            ));
        }
        let mut names = HashSet::new();
        for (i, user) in u.local.iter().enumerate() {
            let key = |field: &str| format!("users.local[{i}].{field}");
            if user.name.is_empty() || user.name.len() > MAX_CREDENTIAL_LEN {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("must be 1 to {MAX_CREDENTIAL_LEN} bytes"),
                ));
            }
            if user.name == "*" {
                return Err(ConfigError::invalid(
                    key("name"),
                    "\"*\" is not a user name (wildcards belong in chap-secrets)",
                ));
            }
            if !names.insert(user.name.as_str()) {
                return Err(ConfigError::invalid(
                    key("name"),
                    format!("{:?} is defined twice", user.name),
                ));
            }
            if user.password.0.is_empty() || user.password.0.len() > MAX_CREDENTIAL_LEN {
                return Err(ConfigError::invalid(
                    key("password"),
                    format!("must be 1 to {MAX_CREDENTIAL_LEN} bytes"),
                ));
            }
            if let Some(ip) = user.ip {
                if !usable_unicast_v4(ip) || ip == self.ipv4.gateway {
                    return Err(ConfigError::invalid(
                        key("ip"),
                        format!("{ip} cannot be a client address"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Addresses a tunnel endpoint may use: not 0.0.0.0, loopback, multicast,
/// class E or broadcast (pppd's `bad_ip_adrs` plus the obvious ones).
fn usable_unicast_v4(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_broadcast()
        || addr.octets()[0] >= 240)
}

pub(super) fn positive_at_most(
    key: &str,
    value: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value.is_zero() || value > max {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{} is outside 1ms..={}",
                humantime_serde::re::humantime::format_duration(value),
                humantime_serde::re::humantime::format_duration(max)
            ),
        ));
    }
    Ok(())
}

fn no_duplicates<T: PartialEq>(
    key: &str,
    items: &[T],
    describe: impl Fn(&T) -> String,
) -> Result<(), ConfigError> {
    for (i, item) in items.iter().enumerate() {
        if items.get(..i).is_some_and(|before| before.contains(item)) {
            return Err(ConfigError::invalid(
                format!("{key}[{i}]"),
                format!("{} is listed twice", describe(item)),
            ));
        }
    }
    Ok(())
}
