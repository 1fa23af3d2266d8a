//! PPP links alone: [`LinkEnd`] and [`LinkPair`], frames shuttled directly
//! with no SSTP in between.

use crate::proto::sstp::Transmit;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::{Delivery, Duty, Endpoint, Pair, Services};
use crate::proto::auth::Authenticator;
use crate::proto::ppp::{IpVersion, PppConfig, PppEvent, PppLink};
use crate::routing::ServerPools;

/// A [`PppLink`] as a harness endpoint (one frame a message), with the
/// runtime's [`Services`]. Dereferences to the link.
pub struct LinkEnd {
    pub link: PppLink,
    pub services: Services,
}

impl fmt::Debug for LinkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkEnd")
            .field("phase", &self.link.phase())
            .field("lcp", &self.link.lcp_state())
            .finish_non_exhaustive()
    }
}

derefs_to!(LinkEnd => link: PppLink);

/// What the runtime is asked to do by a link event.
pub(crate) fn duty(event: &PppEvent) -> Option<Duty<'_>> {
    match event {
        PppEvent::AuthRequest(request) => Some(Duty::Authenticate(request)),
        PppEvent::Ipv4AddressRequest(request) => Some(Duty::Allocate(request)),
        PppEvent::Ipv4AddressReleased(address) => Some(Duty::Release(*address)),
        _ => None,
    }
}

impl Endpoint for LinkEnd {
    type Event = PppEvent;
    /// IP packets and their version.
    type Delivered = (IpVersion, Vec<u8>);

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) -> bool {
        self.link.poll_transmit(&mut out.unit())
    }

    fn receive(
        &mut self,
        now: Instant,
        input: &[u8],
        delivered: &mut Delivery<'_, (IpVersion, Vec<u8>)>,
    ) {
        self.link.handle_frame(now, input, &mut |version, packet| {
            delivered.deliver_with(|| (version, packet.to_vec()))
        });
    }

    timers_and_events_of!(link: PppEvent);

    fn serve(&mut self, _now: Instant, event: PppEvent) -> Option<PppEvent> {
        self.services.perform(duty(&event));
        Some(event)
    }

    fn answer(&mut self, now: Instant) -> bool {
        self.services.apply(now, &mut self.link)
    }
}

/// A client and a server [`PppLink`] back to back on the harness, for
/// tests and benchmarks. Authentication requests wait in the server's
/// [`Services::requests`] unless an authenticator is set
/// ([`with_authenticator`](Pair::with_authenticator)).
pub type LinkPair = Pair<LinkEnd, LinkEnd>;

impl Pair<LinkEnd, LinkEnd> {
    /// A pair with distinct RNG seeds derived from `seed`, addresses from
    /// 10.0.0.2 to 10.0.0.254. Neither link is open yet (see
    /// [`open`](Self::open)).
    pub fn new(
        server_config: Arc<PppConfig>,
        client_config: Arc<PppConfig>,
        username: &str,
        password: &[u8],
        seed: u8,
    ) -> Self {
        let base = Instant::now();
        let addresses = super::super::ipv4_pools([10, 0, 0, 2], [10, 0, 0, 254]);
        let end = |link| LinkEnd {
            link,
            services: Services::new(None, addresses.clone()),
        };
        Pair::between(
            end(PppLink::server(server_config, base, [seed; 32])),
            end(PppLink::client(
                client_config,
                base,
                username,
                password,
                [seed ^ 0x5a; 32],
            )),
            base,
        )
    }

    /// Answers the server's address requests from `addresses` instead.
    pub fn with_addresses(mut self, addresses: Arc<ServerPools>) -> Self {
        // The client's services hold the pools too (it never asks): swap
        // both, so that the default pools are freed here rather than with
        // the pair (the gate's setup part counts the allocator's work,
        // which depends on that order).
        self.client.services.addresses = addresses.clone();
        self.server.services.addresses = addresses;
        self
    }

    /// Answers the server's authentication requests with `authenticator`.
    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.server.services.authenticator = Some(authenticator);
        self
    }

    /// Both lower layers up.
    pub fn open(&mut self) {
        let now = self.now;
        self.server.link.open(now);
        self.client.link.open(now);
        self.collect_events();
    }
}
