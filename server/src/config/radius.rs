//! `[radius]`: the RADIUS servers sstpd authenticates against and sends
//! accounting to ([RFC 2865], [RFC 2866]), the NAS attributes it sends,
//! and its timers; with its validation.
//!
//! [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
//! [RFC 2866]: https://www.rfc-editor.org/rfc/rfc2866

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::positive_at_most;
use super::*;

/// RADIUS attributes of type "string" hold at most 253 octets ([RFC 2865]
/// 5).
///
/// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
const MAX_STRING_ATTRIBUTE: usize = 253;
/// User-Password hiding works on at most 128 octets of secret-derived
/// key stream; secrets are not limited by the RFC, but one longer than
/// this is surely a mistake.
const MAX_SECRET_LEN: usize = 128;
/// Servers per list: failover walks the list; more than this is a mistake.
const MAX_SERVERS: usize = 16;

/// `[radius]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadiusSection {
    /// Authentication servers, tried in order: the first one alive gets
    /// each request; one that does not answer `retries + 1` transmissions
    /// is skipped for `dead_time` (failover).
    pub auth_server: Vec<RadiusServer>,
    /// Accounting servers, tried the same way.
    pub acct_server: Vec<RadiusServer>,
    /// How long to wait for an Access-Accept/Reject before retransmitting.
    /// Default 3 s. Each retransmission doubles it.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// How long to wait for an Accounting-Response before retransmitting.
    /// Default 5 s.
    #[serde(with = "humantime_serde")]
    pub acct_timeout: Duration,
    /// Retransmissions to one server before failing over to the next.
    /// Default 2.
    pub retries: u32,
    /// How long a server that stopped answering is skipped before it is
    /// tried again. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub dead_time: Duration,
    /// Refuse responses without a valid Message-Authenticator ([RFC 3579]
    /// 3.2; the BlastRADIUS mitigation). Default true.
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    pub require_message_authenticator: bool,
    /// Refuse Accounting-Responses without a valid Message-Authenticator.
    /// Default false: an Accounting-Response is already bound to its
    /// request by the Response Authenticator and the shared secret;
    /// BlastRADIUS forges *access* answers; and stock FreeRADIUS 3.2 does
    /// not sign accounting responses, so requiring it would keep every
    /// record in the spool forever. One that is present is always checked.
    pub require_message_authenticator_accounting: bool,
    /// NAS-Identifier sent in every request. Default "sstpd".
    pub nas_identifier: String,
    /// NAS-IP-Address sent in every request; none by default (then only
    /// NAS-Identifier names this server).
    pub nas_ip_address: Option<Ipv4Addr>,
    /// Called-Station-Id sent in every request (the name clients dial,
    /// e.g. "vpn.example.com"); none by default.
    pub called_station_id: Option<String>,
    /// Interim-Update interval when the Access-Accept carries no
    /// Acct-Interim-Interval; 0 = no interim updates. Default 0. RFC 2869
    /// 5.16 advises at least 60 s; shorter values are the operator's
    /// choice (one from RADIUS is raised to 60 s).
    #[serde(with = "humantime_serde")]
    pub acct_interim_interval: Duration,
    /// Requests waiting for the RADIUS thread (all workers together); a
    /// request beyond it is answered "service unavailable" at once and
    /// counted (`radius_queue_full`). Default 4096.
    pub max_pending: usize,
    /// Accounting-Requests in flight to the accounting server at once;
    /// the rest wait in order. Bounded so that the Stops of many sessions
    /// ending together do not overflow the server's receive buffer (its
    /// kernel drops them silently, and they arrive only after a
    /// retransmission timeout). Default 128.
    pub acct_max_in_flight: usize,
    /// Accounting records kept on disk (in the state directory) until a
    /// server acknowledges them. Beyond it, records are sent without a
    /// copy on disk (counted `radius_acct_spool_full`). Default 16384.
    pub acct_spool_max: usize,
    /// EAP pass-through ([RFC 3579]): with `"eap-mschapv2"` in `ppp.auth`,
    /// relay the client's EAP to the authentication servers (EAP-Message,
    /// State, Access-Challenge) instead of running EAP-MSCHAPv2 in sstpd;
    /// the server picks the method (EAP-MSCHAPv2, PEAP, EAP-TLS) and
    /// returns the MSK as MS-MPPE-Recv-Key ‖ MS-MPPE-Send-Key. Needs
    /// `"radius"` in `users.backends`; local users then cannot use EAP.
    /// Default false.
    ///
    /// [RFC 3579]: https://www.rfc-editor.org/rfc/rfc3579
    pub eap_pass_through: bool,
    /// `[radius.dae]`: Disconnect and CoA requests ([RFC 5176]).
    ///
    /// [RFC 5176]: https://www.rfc-editor.org/rfc/rfc5176
    pub dae: DaeSection,
}

impl Default for RadiusSection {
    fn default() -> Self {
        RadiusSection {
            auth_server: Vec::new(),
            acct_server: Vec::new(),
            auth_timeout: Duration::from_secs(3),
            acct_timeout: Duration::from_secs(5),
            retries: 2,
            dead_time: Duration::from_secs(30),
            require_message_authenticator: true,
            require_message_authenticator_accounting: false,
            nas_identifier: "sstpd".into(),
            nas_ip_address: None,
            called_station_id: None,
            acct_interim_interval: Duration::ZERO,
            max_pending: 4096,
            acct_max_in_flight: 128,
            acct_spool_max: 16_384,
            eap_pass_through: false,
            dae: DaeSection::default(),
        }
    }
}

/// One `[[radius.auth_server]]` or `[[radius.acct_server]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusServer {
    /// `host:port`, e.g. "127.0.0.1:1812".
    pub address: SocketAddr,
    /// The shared secret ([RFC 2865] 3).
    ///
    /// [RFC 2865]: https://www.rfc-editor.org/rfc/rfc2865
    pub secret: Secret,
}

/// Where users are looked up: `users.backends`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserBackend {
    /// `[[users.local]]` and the chap-secrets file.
    Local,
    /// The `[radius]` authentication servers.
    Radius,
}

impl UserBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            UserBackend::Local => "local",
            UserBackend::Radius => "radius",
        }
    }
}

pub(super) fn default_backends() -> Vec<UserBackend> {
    vec![UserBackend::Local]
}

impl Config {
    /// Whether authentication goes to RADIUS (`users.backends` names it).
    pub fn uses_radius(&self) -> bool {
        self.users.backends.contains(&UserBackend::Radius)
    }

    /// Whether sessions are accounted (`[[radius.acct_server]]` given).
    pub fn uses_radius_accounting(&self) -> bool {
        !self.radius.acct_server.is_empty()
    }

    /// Whether the local user store is consulted.
    pub fn uses_local_users(&self) -> bool {
        self.users.backends.contains(&UserBackend::Local)
    }

    pub(super) fn validate_backends(&self) -> Result<(), ConfigError> {
        let backends = &self.users.backends;
        match backends.as_slice() {
            [UserBackend::Local] | [UserBackend::Radius] => {}
            [UserBackend::Local, UserBackend::Radius] => {}
            [] => {
                return Err(ConfigError::invalid(
                    "users.backends",
                    "must name at least one of \"local\" and \"radius\"",
                ))
            }
            _ => {
                return Err(ConfigError::invalid(
                    "users.backends",
                    "must be [\"local\"], [\"radius\"] or [\"local\", \"radius\"] (local users \
                     first: RADIUS cannot say it does not know a user, only reject it)",
                ))
            }
        }
        if self.uses_radius() && self.radius.auth_server.is_empty() {
            return Err(ConfigError::invalid(
                "radius.auth_server",
                "users.backends names \"radius\": at least one [[radius.auth_server]] is required",
            ));
        }
        Ok(())
    }

    pub(super) fn validate_radius(&self) -> Result<(), ConfigError> {
        let r = &self.radius;
        for (list, name) in [
            (&r.auth_server, "auth_server"),
            (&r.acct_server, "acct_server"),
        ] {
            if list.len() > MAX_SERVERS {
                return Err(ConfigError::invalid(
                    format!("radius.{name}"),
                    format!("{} servers; at most {MAX_SERVERS}", list.len()),
                ));
            }
            for (i, server) in list.iter().enumerate() {
                let key = |field: &str| format!("radius.{name}[{i}].{field}");
                if server.address.port() == 0 || server.address.ip().is_unspecified() {
                    return Err(ConfigError::invalid(
                        key("address"),
                        format!("{} is not a server address", server.address),
                    ));
                }
                if server.secret.0.is_empty() || server.secret.0.len() > MAX_SECRET_LEN {
                    return Err(ConfigError::invalid(
                        key("secret"),
                        format!("must be 1 to {MAX_SECRET_LEN} bytes"),
                    ));
                }
            }
            if let Some(i) =
                (1..list.len()).find(|&i| list[..i].iter().any(|s| s.address == list[i].address))
            {
                return Err(ConfigError::invalid(
                    format!("radius.{name}[{i}].address"),
                    format!("{} is listed twice", list[i].address),
                ));
            }
        }
        positive_at_most(
            "radius.auth_timeout",
            r.auth_timeout,
            Duration::from_secs(60),
        )?;
        positive_at_most(
            "radius.acct_timeout",
            r.acct_timeout,
            Duration::from_secs(60),
        )?;
        positive_at_most("radius.dead_time", r.dead_time, Duration::from_secs(3600))?;
        if r.retries > 10 {
            return Err(ConfigError::invalid(
                "radius.retries",
                format!("{} is more than 10", r.retries),
            ));
        }
        if r.nas_identifier.is_empty() || r.nas_identifier.len() > MAX_STRING_ATTRIBUTE {
            return Err(ConfigError::invalid(
                "radius.nas_identifier",
                format!("must be 1 to {MAX_STRING_ATTRIBUTE} bytes"),
            ));
        }
        if let Some(id) = &r.called_station_id {
            if id.is_empty() || id.len() > MAX_STRING_ATTRIBUTE {
                return Err(ConfigError::invalid(
                    "radius.called_station_id",
                    format!("must be 1 to {MAX_STRING_ATTRIBUTE} bytes"),
                ));
            }
        }
        if let Some(ip) = r.nas_ip_address {
            if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
                return Err(ConfigError::invalid(
                    "radius.nas_ip_address",
                    format!("{ip} is not a unicast address"),
                ));
            }
        }
        if r.acct_interim_interval != Duration::ZERO
            && r.acct_interim_interval < Duration::from_secs(1)
        {
            return Err(ConfigError::invalid(
                "radius.acct_interim_interval",
                "must be 0 (off) or at least 1s",
            ));
        }
        if r.acct_interim_interval > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::invalid(
                "radius.acct_interim_interval",
                "must be at most 24h",
            ));
        }
        if r.eap_pass_through && !self.users.backends.contains(&UserBackend::Radius) {
            return Err(ConfigError::invalid(
                "radius.eap_pass_through",
                "needs \"radius\" in users.backends",
            ));
        }
        if r.eap_pass_through
            && !self
                .ppp
                .auth
                .contains(&crate::proto::auth::AuthProtocol::EapMsChapV2)
        {
            return Err(ConfigError::invalid(
                "radius.eap_pass_through",
                "needs \"eap-mschapv2\" in ppp.auth",
            ));
        }
        if !(1..=1 << 22).contains(&r.acct_spool_max) {
            return Err(ConfigError::invalid(
                "radius.acct_spool_max",
                format!("{} is outside 1..=4194304", r.acct_spool_max),
            ));
        }
        if !(1..=1024).contains(&r.acct_max_in_flight) {
            return Err(ConfigError::invalid(
                "radius.acct_max_in_flight",
                format!("{} is outside 1..=1024", r.acct_max_in_flight),
            ));
        }
        if !(1..=1 << 20).contains(&r.max_pending) {
            return Err(ConfigError::invalid(
                "radius.max_pending",
                format!("{} is outside 1..=1048576", r.max_pending),
            ));
        }
        self.validate_dae()
    }
}
