//! The authentication machines alone: [`AuthServerEnd`] and
//! [`AuthClientEnd`], one PAP or CHAP packet a message.

use crate::proto::sstp::Transmit;
use std::collections::VecDeque;
use std::time::Instant;

use super::{Delivery, Endpoint};
use crate::proto::auth::{AuthClient, AuthEvent, AuthPacketError, AuthRequest, AuthServer};

/// An [`AuthServer`] as a harness endpoint. Its requests are not recorded
/// as events: they wait in [`requests`](AuthServerEnd::requests) for the
/// test to decide ([`AuthServer::decide`]). Dereferences to the machine.
#[derive(Debug)]
pub struct AuthServerEnd {
    pub machine: AuthServer,
    /// Requests nobody decided yet, oldest first.
    pub requests: VecDeque<AuthRequest>,
}

impl AuthServerEnd {
    pub fn new(machine: AuthServer) -> Self {
        AuthServerEnd {
            machine,
            requests: VecDeque::new(),
        }
    }
}

/// An [`AuthClient`] as a harness endpoint. Dereferences to the machine.
#[derive(Debug)]
pub struct AuthClientEnd {
    pub machine: AuthClient,
}

/// [`Endpoint`] for an adapter whose `machine` is an authentication
/// machine (both have the same surface, with no trait in common): one
/// packet a message, the errors of refused packets delivered, `serve` as
/// given; and the dereference to the machine.
macro_rules! auth_endpoint {
    ($end:ty, $machine:ty, |$this:ident, $event:ident| $serve:expr) => {
        impl Endpoint for $end {
            type Event = AuthEvent;
            type Delivered = AuthPacketError;

            fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) -> bool {
                self.machine.poll_transmit(&mut out.unit())
            }

            fn receive(
                &mut self,
                now: Instant,
                input: &[u8],
                delivered: &mut Delivery<'_, AuthPacketError>,
            ) {
                if let Err(error) = self.machine.handle_packet(now, input) {
                    delivered.deliver(error);
                }
            }

            timers_and_events_of!(machine: AuthEvent);

            fn serve(&mut self, _now: Instant, $event: AuthEvent) -> Option<AuthEvent> {
                let $this = self;
                $serve
            }
        }

        derefs_to!($end => machine: $machine);
    };
}

auth_endpoint!(AuthServerEnd, AuthServer, |this, event| match event {
    AuthEvent::Request(request) => {
        this.requests.push_back(request);
        None
    }
    other => Some(other),
});
auth_endpoint!(AuthClientEnd, AuthClient, |_this, event| Some(event));
