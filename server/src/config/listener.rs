//! `[[server.listener]]`: a listening address with options, today the
//! PROXY protocol (HAProxy's "PROXY protocol" specification, versions 1
//! and 2) for sstpd behind a TCP load balancer.
//!
//! `server.listen` stays the short form (plain listeners); both lists may
//! be used together. A PROXY listener accepts connections only from the
//! networks in `proxy_from` (the load balancers): anyone else could claim
//! any client address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::positive_at_most;
use super::*;

/// Longest `proxy_header_timeout` accepted.
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Load balancer networks per listener at most.
const MAX_PROXY_FROM: usize = 256;

/// Whether a listener expects a PROXY protocol header before TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header: the TCP peer is the client (the default).
    #[default]
    Off,
    /// The text header (spec section 2.1), HAProxy's `send-proxy`.
    V1,
    /// The binary header (spec section 2.2), HAProxy's `send-proxy-v2`.
    V2,
    /// Either version, told apart by the first bytes.
    Any,
}

impl ProxyProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocol::Off => "off",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::Any => "any",
        }
    }

    /// Whether a header is expected at all.
    pub fn is_on(self) -> bool {
        self != ProxyProtocol::Off
    }
}

/// One `[[server.listener]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// The TCP address to accept SSTP connections on (required).
    pub address: SocketAddr,
    /// `"off"` (default), `"v1"`, `"v2"` or `"any"`.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// The load balancers: addresses or prefixes (`"10.0.0.0/8"`) allowed
    /// to connect and send the header. Required when `proxy_protocol` is
    /// on; a connection from anywhere else is closed at accept and counted
    /// (`proxy_source_not_allowed`).
    #[serde(default)]
    pub proxy_from: Vec<ClientAddress>,
    /// How long the load balancer has to send the whole header after
    /// connecting (the shorter of this and `server.preauth_timeout`
    /// applies). Default 5 s.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub proxy_header_timeout: Duration,
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(5)
}

impl ListenerSection {
    /// A plain listener (what each `server.listen` entry is).
    pub fn plain(address: SocketAddr) -> Self {
        ListenerSection {
            address,
            proxy_protocol: ProxyProtocol::Off,
            proxy_from: Vec::new(),
            proxy_header_timeout: default_header_timeout(),
        }
    }

    /// Whether `peer` may send this listener's PROXY header.
    pub fn proxy_allowed(&self, peer: IpAddr) -> bool {
        self.proxy_from.iter().any(|net| net.contains(peer))
    }
}

impl ServerSection {
    /// Every listener: `listen` (plain) first, then `listener`, in the
    /// order written. The runtime binds them in this order.
    pub fn listeners(&self) -> Vec<ListenerSection> {
        self.listen
            .iter()
            .map(|&a| ListenerSection::plain(a))
            .chain(self.listener.iter().cloned())
            .collect()
    }
}

/// `listen`'s default applies only when no `[[server.listener]]` is
/// written: a file that lists only listeners with options means only
/// those.
pub(super) fn drop_default_listen(config: &mut Config, text: &str) {
    if config.server.listener.is_empty() {
        return;
    }
    let listen_written = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("server").and_then(|s| s.get("listen")).cloned())
        .is_some();
    if !listen_written {
        config.server.listen.clear();
    }
}

impl Config {
    pub(super) fn validate_listeners(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        for (i, l) in s.listener.iter().enumerate() {
            let key = |field: &str| format!("server.listener[{i}].{field}");
            if s.listen.contains(&l.address)
                || s.listener[..i].iter().any(|o| o.address == l.address)
            {
                return Err(ConfigError::invalid(
                    key("address"),
                    format!("{} is listed twice", l.address),
                ));
            }
            if l.proxy_protocol.is_on() && l.proxy_from.is_empty() {
                return Err(ConfigError::invalid(
                    key("proxy_from"),
                    "name the load balancers allowed to send the PROXY header \
                     (required when proxy_protocol is on)",
                ));
            }
            if !l.proxy_protocol.is_on() && !l.proxy_from.is_empty() {
                return Err(ConfigError::invalid(
                    key("proxy_from"),
                    "set only with proxy_protocol = \"v1\", \"v2\" or \"any\"",
                ));
            }
            if l.proxy_from.len() > MAX_PROXY_FROM {
                return Err(ConfigError::invalid(
                    key("proxy_from"),
                    format!("{} entries; at most {MAX_PROXY_FROM}", l.proxy_from.len()),
                ));
            }
            if let Some(j) =
                (1..l.proxy_from.len()).find(|&j| l.proxy_from[..j].contains(&l.proxy_from[j]))
            {
                return Err(ConfigError::invalid(
                    format!("server.listener[{i}].proxy_from[{j}]"),
                    format!("{} is listed twice", l.proxy_from[j]),
                ));
            }
            positive_at_most(
                &key("proxy_header_timeout"),
                l.proxy_header_timeout,
                MAX_HEADER_TIMEOUT,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a user, which validation requires.
    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!("{text}{}", super::super::tests::USER))
    }

    fn err(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    #[test]
    fn listeners_with_proxy_protocol_parse_and_replace_the_default_listen() {
        let c = load(
            "[[server.listener]]\naddress = \"0.0.0.0:443\"\nproxy_protocol = \"v2\"\n\
             proxy_from = [\"10.0.0.0/8\", \"192.0.2.7\"]\n\
             [[server.listener]]\naddress = \"127.0.0.1:8443\"\n",
        )
        .unwrap();
        assert!(c.server.listen.is_empty());
        let l = c.server.listeners();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].proxy_protocol, ProxyProtocol::V2);
        assert_eq!(l[0].proxy_header_timeout, Duration::from_secs(5));
        assert!(l[0].proxy_allowed("10.1.2.3".parse().unwrap()));
        assert!(l[0].proxy_allowed("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!l[0].proxy_allowed("192.0.2.8".parse().unwrap()));
        assert_eq!(l[1].proxy_protocol, ProxyProtocol::Off);

        // Written together: both kept, `listen` first.
        let c = load(
            "[server]\nlisten = [\"127.0.0.1:4443\"]\n[[server.listener]]\n\
             address = \"127.0.0.1:4444\"\nproxy_protocol = \"any\"\nproxy_from = [\"127.0.0.1\"]\n\
             proxy_header_timeout = \"500ms\"\n",
        )
        .unwrap();
        let l = c.server.listeners();
        assert_eq!(l[0].address.port(), 4443);
        assert_eq!(l[1].proxy_protocol, ProxyProtocol::Any);
        assert_eq!(l[1].proxy_header_timeout, Duration::from_millis(500));
        // Without listeners, `listen` keeps its default.
        let c = load("[server]\nworkers = 1\n").unwrap();
        assert_eq!(c.server.listeners().len(), 1);
    }

    #[test]
    fn the_behind_haproxy_example_is_valid() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/behind-haproxy.toml");
        let c = Config::load(&path).unwrap();
        let l = c.server.listeners();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].proxy_protocol, ProxyProtocol::V2);
        assert!(l[0].proxy_allowed("10.0.0.2".parse().unwrap()));
        assert!(!l[0].proxy_allowed("10.0.0.4".parse().unwrap()));
        assert_eq!(l[1].proxy_protocol, ProxyProtocol::Any);
    }

    #[test]
    fn listener_errors_name_the_key() {
        let proxy = "proxy_protocol = \"v1\"\nproxy_from = [\"10.0.0.1\"]\n";
        for (text, want) in [
            (
                "[[server.listener]]\naddress = \"0.0.0.0:443\"\nproxy_protocol = \"v1\"\n".to_owned(),
                "server.listener[0].proxy_from: name the load balancers",
            ),
            (
                "[[server.listener]]\naddress = \"0.0.0.0:443\"\nproxy_from = [\"10.0.0.1\"]\n"
                    .to_owned(),
                "server.listener[0].proxy_from: set only with",
            ),
            (
                "[[server.listener]]\naddress = \"0.0.0.0:443\"\nproxy_protocol = \"v3\"\n"
                    .to_owned(),
                "server.listener[0].proxy_protocol: unknown variant `v3`",
            ),
            (
                "[[server.listener]]\nproxy_protocol = \"v1\"\n".to_owned(),
                "server.listener[0]: missing field `address`",
            ),
            (
                format!("[[server.listener]]\naddress = \"0.0.0.0:443\"\n{proxy}proxy_header_timeout = \"0s\"\n"),
                "server.listener[0].proxy_header_timeout: 0s is outside",
            ),
            (
                "[[server.listener]]\naddress = \"0.0.0.0:443\"\nproxy_protocol = \"v1\"\n\
                 proxy_from = [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n"
                    .to_owned(),
                "server.listener[0].proxy_from[1]: 10.0.0.0/8 is listed twice",
            ),
            (
                "[[server.listener]]\naddress = \"0.0.0.0:443\"\nproxy_protocol = \"v1\"\n\
                 proxy_from = [\"10.0.0.1/8\"]\n"
                    .to_owned(),
                "server.listener[0].proxy_from[0]: 10.0.0.1/8 has host bits set",
            ),
            (
                format!("[server]\nlisten = [\"0.0.0.0:443\"]\n[[server.listener]]\naddress = \"0.0.0.0:443\"\n{proxy}"),
                "server.listener[0].address: 0.0.0.0:443 is listed twice",
            ),
            (
                format!("[[server.listener]]\naddress = \"0.0.0.0:443\"\n{proxy}[[server.listener]]\naddress = \"0.0.0.0:443\"\n"),
                "server.listener[1].address: 0.0.0.0:443 is listed twice",
            ),
            (
                "[server]\nlisten = []\n".to_owned(),
                "server.listen: at least one address is required",
            ),
        ] {
            let got = err(&text);
            assert!(got.contains(want), "{text}\n got: {got}\nwant: {want}");
        }
    }
}
