//! SSTP settings, with the spec's values as defaults.

use std::fmt;
use std::time::Duration;

use super::http::{is_header_value, DEFAULT_MAX_HEAD_LEN, DEFAULT_SERVER_HEADER};
use super::wire::{HashProtocols, CALL_CONNECTED_LEN, MAX_PACKET_LEN};

/// Timers, limits and options of an [`SstpConnection`](super::SstpConnection).
/// `Default` gives the values [MS-SSTP] recommends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstpConfig {
    /// Negotiation timer, first phase ([MS-SSTP] 3.3.2.1, 3.2.2.1; 60 s).
    /// Server: from TCP accept until an acceptable Call Connect Request (the
    /// HTTP request included). Client: from sending a Call Connect Request
    /// until the Call Connect Acknowledge.
    pub negotiation_timeout: Duration,
    /// Negotiation timer, second phase (60 s; the spec allows a separate
    /// value, Windows uses 60 s: [MS-SSTP] 3.3.2.1 <12>, 3.2.2.1 <6>).
    /// Server: from sending the Call Connect Acknowledge until a verified
    /// Call Connected. Client: from receiving the Acknowledge until it sends
    /// Call Connected (that is, until PPP authentication hands it the HLAK).
    pub call_connected_timeout: Duration,
    /// Client: how long to wait for the HTTP reply ([MS-SSTP] 4.1: 60 s).
    pub http_response_timeout: Duration,
    /// Hello timer ([MS-SSTP] 3.1.2.3: 60 s).
    pub hello_interval: Duration,
    /// TIMER_VAL_ABORT_STATE_TIMER_1 ([MS-SSTP] 3.1.2.1: 3 s).
    pub abort_timer_1: Duration,
    /// TIMER_VAL_ABORT_STATE_TIMER_2 ([MS-SSTP] 3.1.2.1: 1 s).
    pub abort_timer_2: Duration,
    /// TIMER_VAL_DISCONNECT_STATE_TIMER_1 ([MS-SSTP] 3.1.2.2: 5 s).
    pub disconnect_timer_1: Duration,
    /// TIMER_VAL_DISCONNECT_STATE_TIMER_2 ([MS-SSTP] 3.1.2.2: 1 s).
    pub disconnect_timer_2: Duration,
    /// ServerHashProtocolSupported ([MS-SSTP] 3.3.1): what the server offers
    /// in the Call Connect Acknowledge. Must not be empty.
    pub server_hash_protocols: HashProtocols,
    /// ClientHashProtocolSupported ([MS-SSTP] 3.2.1).
    pub client_hash_protocols: HashProtocols,
    /// Largest SSTP packet accepted from the peer (at most 4095, the 12-bit
    /// Length; at least 112 so that a Call Connected fits).
    pub max_packet_len: u16,
    /// Bound on the HTTP request (server) or reply (client) head.
    pub http_max_head_len: usize,
    /// The Server header of the 200 reply; the spec's example uses
    /// `Microsoft-HTTPAPI/2.0` ([MS-SSTP] 4.1). `None` leaves it out.
    pub http_server_header: Option<String>,
    /// Server: how many Call Connect NAKs to send before aborting with
    /// ATTRIB_STATUS_RETRY_COUNT_EXCEEDED ([MS-SSTP] 3.3.5.2.2; Windows
    /// allows 3, <16>).
    pub server_max_naks: u8,
    /// Client: how many times to resend the Call Connect Request after a NAK
    /// ([MS-SSTP] 3.2.5.3.3; Windows retries 3 times, <10>).
    pub client_connect_retries: u8,
    /// Client, for tests: how many of the first Call Connect Requests
    /// propose [`UNSUPPORTED_TEST_PROTOCOL`] instead of PPP, so that the
    /// NAK-and-retry path runs. 0 in production.
    pub client_unsupported_proposals: u8,
    /// Echo Requests answered at once ([MS-SSTP] 3.2.5.3.7, 3.3.5.2.7):
    /// the bucket of a token-bucket limit. Beyond it, and beyond one more
    /// per [`echo_reply_interval`](Self::echo_reply_interval), Echo
    /// Requests are dropped (counted as `sstp_echo_rate_limited`); any
    /// packet still restarts the Hello timer. Default 10.
    pub echo_reply_burst: u32,
    /// One more Echo Response allowed per this interval. Default 100 ms.
    pub echo_reply_interval: Duration,
}

/// The encapsulated protocol a test client proposes to provoke a NAK: no
/// protocol other than PPP (0x0001) is defined ([MS-SSTP] 2.2.5).
pub const UNSUPPORTED_TEST_PROTOCOL: u16 = 0x0002;

impl Default for SstpConfig {
    fn default() -> Self {
        SstpConfig {
            negotiation_timeout: Duration::from_secs(60),
            call_connected_timeout: Duration::from_secs(60),
            http_response_timeout: Duration::from_secs(60),
            hello_interval: Duration::from_secs(60),
            abort_timer_1: Duration::from_secs(3),
            abort_timer_2: Duration::from_secs(1),
            disconnect_timer_1: Duration::from_secs(5),
            disconnect_timer_2: Duration::from_secs(1),
            server_hash_protocols: HashProtocols::BOTH,
            client_hash_protocols: HashProtocols::BOTH,
            max_packet_len: MAX_PACKET_LEN as u16,
            http_max_head_len: DEFAULT_MAX_HEAD_LEN,
            http_server_header: Some(DEFAULT_SERVER_HEADER.to_owned()),
            server_max_naks: 3,
            client_connect_retries: 3,
            client_unsupported_proposals: 0,
            echo_reply_burst: 10,
            echo_reply_interval: Duration::from_millis(100),
        }
    }
}

/// A setting [`SstpConfig::validate`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No defined hash protocol offered or supported.
    NoHashProtocol,
    /// `max_packet_len` outside 112..=4095.
    MaxPacketLen(u16),
    /// `http_max_head_len` under 256 bytes: no real request fits.
    HttpHeadTooSmall(usize),
    /// The Server header holds characters that cannot go into a header.
    ServerHeader,
    /// A timer of zero.
    ZeroTimer(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoHashProtocol => {
                f.write_str("no SHA-1 or SHA-256 hash protocol selected")
            }
            ConfigError::MaxPacketLen(len) => {
                write!(f, "max_packet_len {len} is outside 112..=4095")
            }
            ConfigError::HttpHeadTooSmall(len) => {
                write!(f, "http_max_head_len {len} is under 256 bytes")
            }
            ConfigError::ServerHeader => f.write_str("the Server header must be printable ASCII"),
            ConfigError::ZeroTimer(name) => write!(f, "timer {name} is zero"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl SstpConfig {
    /// Checks the settings. Connections built from a configuration that
    /// fails here still behave safely (the values are clamped), but not as
    /// configured.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server_hash_protocols.is_empty() || self.client_hash_protocols.is_empty() {
            return Err(ConfigError::NoHashProtocol);
        }
        if !(CALL_CONNECTED_LEN as u16..=MAX_PACKET_LEN as u16).contains(&self.max_packet_len) {
            return Err(ConfigError::MaxPacketLen(self.max_packet_len));
        }
        if self.http_max_head_len < 256 {
            return Err(ConfigError::HttpHeadTooSmall(self.http_max_head_len));
        }
        if !self
            .http_server_header
            .as_deref()
            .is_none_or(is_header_value)
        {
            return Err(ConfigError::ServerHeader);
        }
        for (name, value) in [
            ("negotiation_timeout", self.negotiation_timeout),
            ("call_connected_timeout", self.call_connected_timeout),
            ("http_response_timeout", self.http_response_timeout),
            ("hello_interval", self.hello_interval),
            ("abort_timer_1", self.abort_timer_1),
            ("abort_timer_2", self.abort_timer_2),
            ("disconnect_timer_1", self.disconnect_timer_1),
            ("disconnect_timer_2", self.disconnect_timer_2),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroTimer(name));
            }
        }
        Ok(())
    }

    /// The hash protocols the server offers, never empty: SHA-256 when the
    /// configured set holds no defined protocol.
    pub(crate) fn offered_hash_protocols(&self) -> HashProtocols {
        let known = self.server_hash_protocols.known();
        if known.is_empty() {
            HashProtocols::SHA256
        } else {
            known
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_values() {
        let config = SstpConfig::default();
        assert_eq!(config.hello_interval, Duration::from_secs(60));
        assert_eq!(config.negotiation_timeout, Duration::from_secs(60));
        assert_eq!(config.call_connected_timeout, Duration::from_secs(60));
        assert_eq!(config.abort_timer_1, Duration::from_secs(3));
        assert_eq!(config.abort_timer_2, Duration::from_secs(1));
        assert_eq!(config.disconnect_timer_1, Duration::from_secs(5));
        assert_eq!(config.disconnect_timer_2, Duration::from_secs(1));
        assert_eq!(config.max_packet_len, 4095);
        assert_eq!(config.server_max_naks, 3);
        assert_eq!(config.client_connect_retries, 3);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn validate_refuses_each_bad_setting() {
        let bad = |f: fn(&mut SstpConfig)| {
            let mut config = SstpConfig::default();
            f(&mut config);
            config.validate()
        };
        assert_eq!(
            bad(|c| c.server_hash_protocols = HashProtocols::from_bits(0x80)),
            Err(ConfigError::NoHashProtocol)
        );
        assert_eq!(
            bad(|c| c.client_hash_protocols = HashProtocols::from_bits(0)),
            Err(ConfigError::NoHashProtocol)
        );
        assert_eq!(
            bad(|c| c.max_packet_len = 111),
            Err(ConfigError::MaxPacketLen(111))
        );
        assert_eq!(
            bad(|c| c.max_packet_len = 4096),
            Err(ConfigError::MaxPacketLen(4096))
        );
        assert_eq!(
            bad(|c| c.http_max_head_len = 100),
            Err(ConfigError::HttpHeadTooSmall(100))
        );
        assert_eq!(
            bad(|c| c.http_server_header = Some("a\r\nb".into())),
            Err(ConfigError::ServerHeader)
        );
        assert_eq!(
            bad(|c| c.abort_timer_2 = Duration::ZERO),
            Err(ConfigError::ZeroTimer("abort_timer_2"))
        );
    }

    #[test]
    fn an_empty_offer_falls_back_to_sha256() {
        let config = SstpConfig {
            server_hash_protocols: HashProtocols::from_bits(0),
            ..SstpConfig::default()
        };
        assert_eq!(config.offered_hash_protocols(), HashProtocols::SHA256);
        assert_eq!(
            SstpConfig::default().offered_hash_protocols(),
            HashProtocols::BOTH
        );
    }
}
