//! `[radius.dae]`: the Dynamic Authorization Server ([RFC 5176]): where
//! sstpd listens for Disconnect-Request and CoA-Request, which clients
//! may send them and with which secrets; with its validation.
//!
//! The listener runs only when at least one `[[radius.dae.client]]` is
//! configured: with nobody allowed to send, there is nothing to listen for.
//!
//! [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::validate::positive_at_most;
use super::*;

/// The port RFC 5176 3.5 assigns to Disconnect and CoA messages.
pub const DAE_PORT: u16 = 3799;
/// Longest secret accepted (as for `[[radius.auth_server]]`).
const MAX_SECRET_LEN: usize = 128;
/// Clients per listener: a list longer than this is surely a mistake.
const MAX_CLIENTS: usize = 256;

/// `[radius.dae]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaeSection {
    /// UDP addresses to receive Disconnect-Request and CoA-Request on.
    /// Default `["127.0.0.1:3799"]`. Used only when `client` is not empty.
    pub listen: Vec<SocketAddr>,
    /// Who may send requests, with which secret. Requests from any other
    /// source are dropped and counted (`dae_unknown_client`). Empty (the
    /// default): no listener.
    pub client: Vec<DaeClient>,
    /// Drop requests without a Message-Authenticator ([RFC 3579] 3.2; the
    /// BlastRADIUS mitigation). Default true.
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    pub require_message_authenticator: bool,
    /// Drop requests without an Event-Timestamp ([RFC 5176] 3.5, replay
    /// protection). Default false: one that carries it is checked against
    /// `event_timestamp_window` either way.
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    pub require_event_timestamp: bool,
    /// How far an Event-Timestamp may be from this server's clock, either
    /// way. Default 300 s ([RFC 5176] 5 suggests it).
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    #[serde(with = "humantime_serde")]
    pub event_timestamp_window: Duration,
    /// How long an answer is kept to be sent again for a retransmission of
    /// its request (same source, identifier and authenticator; [RFC 5080]
    /// 2.2.2: 5 to 30 seconds). Default 10 s.
    ///
    /// [RFC 5080]: https://www.rfc-editor.org/rfc/rfc5080
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Answers kept for duplicates at most; the oldest goes first.
    /// Default 4096.
    pub max_cached: usize,
    /// Requests waiting for the workers at most; one beyond is answered
    /// NAK Resources Unavailable (506) at once. Default 256.
    pub max_pending: usize,
    /// How long a request waits for the workers to confirm; then it is
    /// answered NAK Resources Unavailable (506). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub answer_timeout: Duration,
}

impl Default for DaeSection {
    fn default() -> Self {
        DaeSection {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DAE_PORT))],
            client: Vec::new(),
            require_message_authenticator: true,
            require_event_timestamp: false,
            event_timestamp_window: Duration::from_secs(300),
            duplicate_window: Duration::from_secs(10),
            max_cached: 4096,
            max_pending: 256,
            answer_timeout: Duration::from_secs(1),
        }
    }
}

impl DaeSection {
    /// Whether the listener runs: some client is allowed to send.
    pub fn enabled(&self) -> bool {
        !self.client.is_empty()
    }

    /// The client `source` belongs to: the one with the longest matching
    /// prefix. IPv4-mapped IPv6 sources (a dual-stack socket) count as
    /// IPv4.
    pub fn client_for(&self, source: IpAddr) -> Option<&DaeClient> {
        self.client_index_for(source).map(|i| &self.client[i])
    }

    /// [`DaeSection::client_for`]'s position in `client` (the listener
    /// keeps per-client state by it).
    pub fn client_index_for(&self, source: IpAddr) -> Option<usize> {
        let source = source.to_canonical();
        self.client
            .iter()
            .enumerate()
            .filter(|(_, c)| c.address.contains(source))
            .max_by_key(|(_, c)| c.address.0.prefix_len())
            .map(|(i, _)| i)
    }
}

/// One `[[radius.dae.client]]`: a Dynamic Authorization Client (the RADIUS
/// server or the billing system that sends requests).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaeClient {
    /// Its address, or a prefix of addresses (`"192.0.2.10"`,
    /// `"10.1.0.0/16"`).
    pub address: ClientAddress,
    /// The shared secret ([RFC 5176] 2.3).
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    pub secret: Secret,
}

/// An address or a prefix, written `IP` or `IP/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpNet);

impl ClientAddress {
    /// Whether `ip` is this address or inside this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

impl FromStr for ClientAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if !text.contains('/') {
            let ip: IpAddr = text
                .parse()
                .map_err(|_| format!("{text:?} is not an IP address or prefix"))?;
            return Ok(ClientAddress(IpNet::from(ip.to_canonical())));
        }
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or prefix"))?;
        if net != net.trunc() {
            return Err(format!(
                "{text} has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(ClientAddress(net))
    }
}

impl Serialize for ClientAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClientAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    pub(super) fn validate_dae(&self) -> Result<(), ConfigError> {
        let d = &self.radius.dae;
        if d.client.len() > MAX_CLIENTS {
            return Err(ConfigError::invalid(
                "radius.dae.client",
                format!("{} clients; at most {MAX_CLIENTS}", d.client.len()),
            ));
        }
        for (i, client) in d.client.iter().enumerate() {
            if client.secret.0.is_empty() || client.secret.0.len() > MAX_SECRET_LEN {
                return Err(ConfigError::invalid(
                    format!("radius.dae.client[{i}].secret"),
                    format!("must be 1 to {MAX_SECRET_LEN} bytes"),
                ));
            }
            if let Some(j) = d.client[..i]
                .iter()
                .position(|c| c.address == client.address)
            {
                return Err(ConfigError::invalid(
                    format!("radius.dae.client[{i}].address"),
                    format!("{} is also radius.dae.client[{j}]", client.address),
                ));
            }
        }
        if d.enabled() && d.listen.is_empty() {
            return Err(ConfigError::invalid(
                "radius.dae.listen",
                "[[radius.dae.client]] is configured: at least one address is required",
            ));
        }
        if let Some(i) = (1..d.listen.len()).find(|&i| d.listen[..i].contains(&d.listen[i])) {
            return Err(ConfigError::invalid(
                format!("radius.dae.listen[{i}]"),
                format!("{} is listed twice", d.listen[i]),
            ));
        }
        positive_at_most(
            "radius.dae.event_timestamp_window",
            d.event_timestamp_window,
            Duration::from_secs(3600),
        )?;
        if !(Duration::from_secs(5)..=Duration::from_secs(30)).contains(&d.duplicate_window) {
            return Err(ConfigError::invalid(
                "radius.dae.duplicate_window",
                "must be 5s to 30s (RFC 5080 2.2.2)",
            ));
        }
        positive_at_most(
            "radius.dae.answer_timeout",
            d.answer_timeout,
            Duration::from_secs(30),
        )?;
        for (key, value) in [
            ("radius.dae.max_cached", d.max_cached),
            ("radius.dae.max_pending", d.max_pending),
        ] {
            if !(1..=1 << 20).contains(&value) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is outside 1..=1048576"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "\n[[users.local]]\nname = \"t\"\npassword = \"p\"\n";

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!("{text}{USER}"))
    }

    fn assert_err(text: &str, expected: &str) {
        let got = load(text).expect_err("must be rejected").to_string();
        assert!(
            got.starts_with(expected),
            "for {text:?}\n got: {got}\nwant: {expected}"
        );
    }

    #[test]
    fn off_by_default_on_port_3799_when_a_client_is_configured() {
        let config = load("").unwrap();
        let d = &config.radius.dae;
        assert!(!d.enabled());
        assert_eq!(d.listen, ["127.0.0.1:3799".parse::<SocketAddr>().unwrap()]);
        assert!(d.require_message_authenticator && !d.require_event_timestamp);
        assert_eq!(d.duplicate_window, Duration::from_secs(10));
        assert_eq!(d.answer_timeout, Duration::from_secs(1));

        let config = load(
            "[radius.dae]\nlisten = [\"0.0.0.0:3799\", \"[::]:3799\"]\nanswer_timeout = \"500ms\"\n\
             [[radius.dae.client]]\naddress = \"127.0.0.1\"\nsecret = \"testing123\"\n\
             [[radius.dae.client]]\naddress = \"10.1.0.0/16\"\nsecret = \"wide\"\n\
             [[radius.dae.client]]\naddress = \"10.1.2.0/24\"\nsecret = \"narrow\"\n",
        )
        .unwrap();
        let d = &config.radius.dae;
        assert!(d.enabled());
        assert_eq!(d.listen.len(), 2);
        assert_eq!(d.answer_timeout, Duration::from_millis(500));
        let secret = |ip: &str| {
            d.client_for(ip.parse().unwrap())
                .map(|c| c.secret.0.as_str())
        };
        assert_eq!(secret("127.0.0.1"), Some("testing123"));
        assert_eq!(secret("::ffff:127.0.0.1"), Some("testing123"));
        assert_eq!(secret("10.1.9.9"), Some("wide"));
        assert_eq!(
            secret("10.1.2.3"),
            Some("narrow"),
            "the longest prefix wins"
        );
        assert_eq!(secret("127.0.0.2"), None);
        assert_eq!(d.client[1].address.to_string(), "10.1.0.0/16");
        assert_eq!(d.client[0].address.to_string(), "127.0.0.1");
        assert!(
            !format!("{d:?}").contains("testing123"),
            "secrets stay out of logs"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let client = "[[radius.dae.client]]\naddress = \"127.0.0.1\"\nsecret = \"s\"\n";
        assert_err(
            "[[radius.dae.client]]\naddress = \"127.0.0.1\"\nsecret = \"\"\n",
            "radius.dae.client[0].secret: must be 1 to 128 bytes",
        );
        assert_err(
            &format!("{client}{client}"),
            "radius.dae.client[1].address: 127.0.0.1 is also radius.dae.client[0]",
        );
        assert_err(
            "[[radius.dae.client]]\naddress = \"10.0.0.1/8\"\nsecret = \"s\"\n",
            "radius.dae.client[0].address",
        );
        assert_err(
            "[[radius.dae.client]]\naddress = \"nas.example\"\nsecret = \"s\"\n",
            "radius.dae.client[0].address",
        );
        assert_err(
            &format!("[radius.dae]\nlisten = []\n{client}"),
            "radius.dae.listen: [[radius.dae.client]] is configured",
        );
        assert_err(
            "[radius.dae]\nlisten = [\"127.0.0.1:3799\", \"127.0.0.1:3799\"]\n",
            "radius.dae.listen[1]: 127.0.0.1:3799 is listed twice",
        );
        assert_err(
            "[radius.dae]\nduplicate_window = \"60s\"\n",
            "radius.dae.duplicate_window: must be 5s to 30s",
        );
        assert_err(
            "[radius.dae]\nanswer_timeout = \"0s\"\n",
            "radius.dae.answer_timeout",
        );
        assert_err("[radius.dae]\nmax_pending = 0\n", "radius.dae.max_pending");
        assert_err("[radius.dae]\nmax_cached = 0\n", "radius.dae.max_cached");
        assert_err("[radius.dae]\nport = 1\n", "radius.dae.port");
    }
}
