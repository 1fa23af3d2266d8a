//! The IP Control Protocol ([RFC 1332]) with the DNS and NBNS options of
//! [RFC 1877], in both roles.
//!
//! Server: requests its own (gateway) address, assigns the peer the address
//! the link reserved from the pool (Nak'ing `0.0.0.0` or any other value
//! with it, and asking for it when the peer leaves the option out), and
//! hands out the configured name servers. Client: requests `0.0.0.0` (or a
//! configured address) and the name servers, and takes what the server
//! Naks back.
//!
//! IP-Compression-Protocol (Van Jacobson) and the deprecated IP-Addresses
//! option are Configure-Rejected.
//!
//! [RFC 1332]: https://www.rfc-editor.org/rfc/rfc1332
//! [RFC 1877]: https://www.rfc-editor.org/rfc/rfc1877

use std::net::Ipv4Addr;
use std::sync::Arc;

use rand::RngCore;

use super::frame::PROTO_IPCP;
use super::fsm::{NegotiationFailure, OptionHandler, Verdict};
use super::packet::{data_u32, write_option, ConfigOption, Options};
use super::PppConfig;
use crate::proto::Role;

/// IP-Addresses, deprecated ([RFC 1332] 3.1).
pub const OPT_IP_ADDRESSES: u8 = 1;
/// IP-Compression-Protocol ([RFC 1332] 3.2).
pub const OPT_IP_COMPRESSION: u8 = 2;
/// IP-Address ([RFC 1332] 3.3).
pub const OPT_IP_ADDRESS: u8 = 3;
/// Primary-DNS-Address ([RFC 1877] 1.1).
pub const OPT_PRIMARY_DNS: u8 = 129;
/// Primary-NBNS-Address ([RFC 1877] 1.2).
pub const OPT_PRIMARY_NBNS: u8 = 130;
/// Secondary-DNS-Address ([RFC 1877] 1.3).
pub const OPT_SECONDARY_DNS: u8 = 131;
/// Secondary-NBNS-Address ([RFC 1877] 1.4).
pub const OPT_SECONDARY_NBNS: u8 = 132;

/// IPCP settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcpConfig {
    /// Negotiate IPCP at all. Default on.
    pub enabled: bool,
    /// Server: its own address on the link (the gateway the clients see).
    /// Client: a fixed address to ask for; `None` asks the server for one
    /// (`0.0.0.0`).
    pub local_address: Option<Ipv4Addr>,
    /// Server: primary and secondary DNS servers handed out ([RFC 1877]
    /// 1.1, 1.3); DNS options are rejected when not configured.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Server: primary and secondary NBNS (WINS) servers ([RFC 1877] 1.2,
    /// 1.4); rejected when not configured.
    pub nbns: [Option<Ipv4Addr>; 2],
    /// Client: ask the server for DNS servers. Default on.
    pub request_dns: bool,
}

impl Default for IpcpConfig {
    fn default() -> Self {
        IpcpConfig {
            enabled: true,
            local_address: None,
            dns: [None; 2],
            nbns: [None; 2],
            request_dns: true,
        }
    }
}

/// The IPv4 configuration of an opened link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Params {
    /// This end's address (server: the gateway; `0.0.0.0` if none is
    /// configured).
    pub local: Ipv4Addr,
    /// The peer's address (server: the one assigned; client: the server's,
    /// `0.0.0.0` if it did not say).
    pub peer: Ipv4Addr,
    /// Primary and secondary DNS servers (server: as handed out; client: as
    /// learned).
    pub dns: [Option<Ipv4Addr>; 2],
}

/// IPCP's option handling.
#[derive(Debug)]
pub struct Ipcp {
    role: Role,
    config: Arc<PppConfig>,
    /// Our address as requested (client: `0.0.0.0` until Nak'd).
    local_address: Ipv4Addr,
    request_address: bool,
    request_dns: [bool; 2],
    /// Client: name servers learned. Server: unused.
    dns: [Option<Ipv4Addr>; 2],
    /// Server: the address reserved for the peer.
    assigned: Option<Ipv4Addr>,
    /// Server: name servers the authenticator chose for this peer
    /// (RADIUS MS-Primary/Secondary-DNS-Server), offered instead of the
    /// configured ones.
    dns_override: Option<[Option<Ipv4Addr>; 2]>,
    /// The peer's address as acknowledged.
    peer_address: Option<Ipv4Addr>,
}

fn data_ipv4(data: &[u8]) -> Option<Ipv4Addr> {
    data_u32(data).map(Ipv4Addr::from)
}

/// Index 0/1 of the primary/secondary variant of a DNS or NBNS option.
fn name_server_index(kind: u8) -> usize {
    usize::from(matches!(kind, OPT_SECONDARY_DNS | OPT_SECONDARY_NBNS))
}

impl Ipcp {
    /// IPCP for `role` with `config`.
    pub fn new(role: Role, config: Arc<PppConfig>) -> Self {
        Ipcp {
            role,
            config,
            local_address: Ipv4Addr::UNSPECIFIED,
            request_address: false,
            request_dns: [false; 2],
            dns: [None; 2],
            assigned: None,
            dns_override: None,
            peer_address: None,
        }
    }

    /// Server: offer `dns` ([RFC 1877] 1.1, 1.3) instead of the configured
    /// DNS servers (the authenticator's choice for this peer). Must be set
    /// before IPCP comes up.
    pub fn set_dns(&mut self, dns: [Option<Ipv4Addr>; 2]) {
        self.dns_override = Some(dns);
    }

    /// Server: the DNS servers offered to the peer.
    fn offered_dns(&self) -> [Option<Ipv4Addr>; 2] {
        self.dns_override.unwrap_or(self.config.ipcp.dns)
    }

    /// Server: the address reserved for the peer (from the pool or the
    /// authenticator). Must be set before IPCP comes up.
    pub fn set_assigned(&mut self, address: Option<Ipv4Addr>) {
        self.assigned = address;
    }

    /// Server: the address reserved for the peer.
    pub fn assigned(&self) -> Option<Ipv4Addr> {
        self.assigned
    }

    /// The negotiated parameters, valid once Opened. `None` when this end
    /// has no usable address (client given `0.0.0.0`, server with nothing
    /// assigned).
    pub fn params(&self) -> Option<Ipv4Params> {
        match self.role {
            Role::Server => Some(Ipv4Params {
                local: self
                    .config
                    .ipcp
                    .local_address
                    .unwrap_or(Ipv4Addr::UNSPECIFIED),
                peer: self.assigned?,
                dns: self.offered_dns(),
            }),
            Role::Client => {
                if self.local_address.is_unspecified() {
                    return None;
                }
                Some(Ipv4Params {
                    local: self.local_address,
                    peer: self.peer_address.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    dns: self.dns,
                })
            }
        }
    }

    /// Server: ack the configured value, Nak anything else with it, reject
    /// when nothing is configured.
    fn judge_configured(
        option: &ConfigOption<'_>,
        configured: Option<Ipv4Addr>,
        verdict: &mut Verdict,
    ) {
        match (data_ipv4(option.data), configured) {
            (Some(asked), Some(ours)) if asked == ours => {}
            (Some(_), Some(ours)) => verdict.nak(option, &ours.octets()),
            _ => verdict.reject(option),
        }
    }

    fn judge_as_server(&mut self, options: Options<'_>, verdict: &mut Verdict) {
        let mut address_seen = false;
        for option in options {
            match option.kind {
                OPT_IP_ADDRESS => {
                    address_seen = true;
                    match (data_ipv4(option.data), self.assigned) {
                        (Some(asked), Some(assigned)) if asked == assigned => {
                            self.peer_address = Some(asked);
                        }
                        // 0.0.0.0 ("assign me one") or not the address
                        // reserved for this peer.
                        (Some(_), Some(assigned)) => verdict.nak(&option, &assigned.octets()),
                        _ => verdict.reject(&option),
                    }
                }
                OPT_PRIMARY_DNS | OPT_SECONDARY_DNS => {
                    let configured = self.offered_dns()[name_server_index(option.kind)];
                    Self::judge_configured(&option, configured, verdict);
                }
                OPT_PRIMARY_NBNS | OPT_SECONDARY_NBNS => {
                    let configured = self.config.ipcp.nbns[name_server_index(option.kind)];
                    Self::judge_configured(&option, configured, verdict);
                }
                // IP-Addresses (deprecated), IP-Compression-Protocol (VJ)
                // and anything unknown.
                _ => verdict.reject(&option),
            }
        }
        if !address_seen {
            if let Some(assigned) = self.assigned {
                // [RFC 1332] 3.3: prompt the peer to use its address.
                verdict.nak_missing(OPT_IP_ADDRESS, &assigned.octets());
                if verdict.naks_become_rejects() {
                    // It will not say it; the assignment stands anyway.
                    self.peer_address = Some(assigned);
                }
            }
        }
    }

    fn judge_as_client(&mut self, options: Options<'_>, verdict: &mut Verdict) {
        for option in options {
            match (option.kind, data_ipv4(option.data)) {
                (OPT_IP_ADDRESS, Some(address)) if !address.is_unspecified() => {
                    self.peer_address = Some(address);
                }
                // A server asking us for its address, or anything else.
                _ => verdict.reject(&option),
            }
        }
    }
}

impl OptionHandler for Ipcp {
    const PROTOCOL: u16 = PROTO_IPCP;

    fn start_negotiation(&mut self, _rng: &mut dyn RngCore) {
        let config = &self.config.ipcp;
        self.peer_address = None;
        match self.role {
            Role::Server => {
                self.local_address = config.local_address.unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.request_address = config.local_address.is_some();
                self.request_dns = [false; 2];
            }
            Role::Client => {
                self.local_address = config.local_address.unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.request_address = true;
                self.request_dns = [config.request_dns; 2];
                self.dns = [None; 2];
            }
        }
    }

    fn build_request(&mut self, out: &mut Vec<u8>) {
        if self.request_address {
            write_option(OPT_IP_ADDRESS, &self.local_address.octets(), out);
        }
        for (index, kind) in [OPT_PRIMARY_DNS, OPT_SECONDARY_DNS].into_iter().enumerate() {
            if self.request_dns[index] {
                let asked = self.dns[index].unwrap_or(Ipv4Addr::UNSPECIFIED);
                write_option(kind, &asked.octets(), out);
            }
        }
    }

    fn judge_request(
        &mut self,
        options: Options<'_>,
        verdict: &mut Verdict,
        _rng: &mut dyn RngCore,
    ) {
        self.peer_address = None;
        match self.role {
            Role::Server => self.judge_as_server(options, verdict),
            Role::Client => self.judge_as_client(options, verdict),
        }
    }

    fn request_acked(&mut self, _options: Options<'_>) {
        // The Ack repeats our request: the values requested are agreed.
        // Name servers asked as 0.0.0.0 and acknowledged as such are none.
        for slot in &mut self.dns {
            if slot.is_some_and(|address| address.is_unspecified()) {
                *slot = None;
            }
        }
    }

    fn request_naked(
        &mut self,
        options: Options<'_>,
        _rng: &mut dyn RngCore,
    ) -> Result<(), NegotiationFailure> {
        if self.role == Role::Server {
            // The gateway address is ours to choose; keep requesting it.
            return Ok(());
        }
        for option in options {
            let Some(address) = data_ipv4(option.data).filter(|a| !a.is_unspecified()) else {
                continue;
            };
            match option.kind {
                OPT_IP_ADDRESS => self.local_address = address,
                OPT_PRIMARY_DNS | OPT_SECONDARY_DNS => {
                    let index = name_server_index(option.kind);
                    if self.request_dns[index] {
                        self.dns[index] = Some(address);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn request_rejected(&mut self, options: Options<'_>) -> Result<(), NegotiationFailure> {
        for option in options {
            match option.kind {
                OPT_IP_ADDRESS => {
                    self.request_address = false;
                    if self.role == Role::Client && self.local_address.is_unspecified() {
                        // Without the option there is no way to learn an
                        // address.
                        return Err(NegotiationFailure::NoAddress);
                    }
                }
                OPT_PRIMARY_DNS | OPT_SECONDARY_DNS => {
                    let index = name_server_index(option.kind);
                    self.request_dns[index] = false;
                    self.dns[index] = None;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_server_indexes() {
        assert_eq!(name_server_index(OPT_PRIMARY_DNS), 0);
        assert_eq!(name_server_index(OPT_SECONDARY_DNS), 1);
        assert_eq!(name_server_index(OPT_PRIMARY_NBNS), 0);
        assert_eq!(name_server_index(OPT_SECONDARY_NBNS), 1);
    }

    #[test]
    fn client_without_address_has_no_params() {
        let ipcp = Ipcp::new(Role::Client, Arc::new(PppConfig::default()));
        assert_eq!(ipcp.params(), None);
        let server = Ipcp::new(Role::Server, Arc::new(PppConfig::default()));
        assert_eq!(server.params(), None, "nothing assigned yet");
    }
}
