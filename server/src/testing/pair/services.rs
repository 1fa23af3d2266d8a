//! What the runtime does for a server session or PPP link: authentication
//! requests to an authenticator, addresses from the server's pools.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::proto::auth::{
    AuthContext, AuthDecision, AuthReply, AuthRequest, AuthRequestId, Authenticator,
};
use crate::proto::ppp::{AddressRequestId, Ipv4AddressRequest, PppLink};
use crate::proto::session::Session;
use crate::routing::ServerPools;

/// The authenticator's answers, not yet handed to the machine.
type Decisions = Vec<(AuthRequestId, AuthDecision)>;

/// A request an event makes of the runtime.
#[derive(Clone, Copy, Debug)]
pub enum Duty<'a> {
    /// Judge these credentials.
    Authenticate(&'a AuthRequest),
    /// Give the peer an address.
    Allocate(&'a Ipv4AddressRequest),
    /// Take this address back.
    Release(Ipv4Addr),
}

/// The runtime's part for one server: answers authentication requests with
/// [`authenticator`](Services::authenticator) (or leaves them in
/// [`requests`](Services::requests) for the test when there is none) and
/// address requests from [`addresses`](Services::addresses), and takes
/// released addresses back. The adapters hand the answers back to the
/// machine after the events that asked for them were drained (in
/// [`Endpoint::answer`](super::Endpoint::answer)), as the runtime's
/// mailbox would.
pub struct Services {
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Authentication requests waiting for the test (no authenticator).
    pub requests: Vec<AuthRequest>,
    pub addresses: Arc<ServerPools>,
    /// Where the authenticator's answers arrive (made with the first
    /// request).
    decisions: Option<Arc<Mutex<Decisions>>>,
    /// Requests given to the authenticator and not answered yet.
    awaited: usize,
    address_answers: Vec<(AddressRequestId, Option<Ipv4Addr>)>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("authenticator", &self.authenticator.is_some())
            .field("requests", &self.requests.len())
            .field("awaited", &self.awaited)
            .finish_non_exhaustive()
    }
}

impl Services {
    pub fn new(authenticator: Option<Arc<dyn Authenticator>>, addresses: Arc<ServerPools>) -> Self {
        Services {
            authenticator,
            requests: Vec::new(),
            addresses,
            decisions: None,
            awaited: 0,
            address_answers: Vec::new(),
        }
    }

    /// Takes up `duty`, if the event made one.
    pub fn perform(&mut self, duty: Option<Duty<'_>>) {
        match duty {
            None => {}
            Some(Duty::Authenticate(request)) => match &self.authenticator {
                None => self.requests.push(request.clone()),
                Some(authenticator) => {
                    self.awaited += 1;
                    let sink = self.decisions.get_or_insert_with(Default::default).clone();
                    let id = request.id;
                    authenticator.authenticate(
                        request.clone(),
                        AuthContext::default(),
                        AuthReply::new(move |decision| {
                            sink.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((id, decision))
                        }),
                    );
                }
            },
            Some(Duty::Allocate(request)) => {
                let address = self
                    .addresses
                    .allocate_ipv4(&request.username, request.wanted);
                self.address_answers.push((request.id, address));
            }
            Some(Duty::Release(address)) => self.addresses.release_ipv4(address),
        }
    }

    /// Hands the answers that arrived since to `machine`; an address it
    /// refuses (a stale request) goes back to the pools. Returns whether
    /// there were any.
    #[inline]
    pub(crate) fn apply(&mut self, now: Instant, machine: &mut impl Served) -> bool {
        // Checked every step of every pair: the common case stays cheap.
        if self.awaited == 0 && self.address_answers.is_empty() {
            return false;
        }
        self.apply_answers(now, machine)
    }

    fn apply_answers(&mut self, now: Instant, machine: &mut impl Served) -> bool {
        let decisions = match &self.decisions {
            Some(sink) if self.awaited > 0 => {
                std::mem::take(&mut *sink.lock().unwrap_or_else(|e| e.into_inner()))
            }
            _ => Vec::new(),
        };
        self.awaited = self.awaited.saturating_sub(decisions.len());
        let any = !decisions.is_empty() || !self.address_answers.is_empty();
        for (request, decision) in decisions {
            machine.auth_decision(now, request, decision);
        }
        for (request, address) in self.address_answers.drain(..) {
            if !machine.assign_ipv4(now, request, address) {
                if let Some(address) = address {
                    self.addresses.release_ipv4(address);
                }
            }
        }
        any
    }
}

/// A server machine the runtime answers.
pub(crate) trait Served {
    fn auth_decision(&mut self, now: Instant, request: AuthRequestId, decision: AuthDecision);
    /// Whether the answer was taken (not stale).
    fn assign_ipv4(
        &mut self,
        now: Instant,
        request: AddressRequestId,
        address: Option<Ipv4Addr>,
    ) -> bool;
}

/// [`Served`] by a machine's own methods of the same names; an answer it
/// finds stale changes nothing (a session records that itself).
macro_rules! served_by_its_methods {
    ($($machine:ty),*) => {$(
        impl Served for $machine {
            fn auth_decision(
                &mut self,
                now: Instant,
                request: AuthRequestId,
                decision: AuthDecision,
            ) {
                let _ = <$machine>::auth_decision(self, now, request, decision);
            }

            fn assign_ipv4(
                &mut self,
                now: Instant,
                request: AddressRequestId,
                address: Option<Ipv4Addr>,
            ) -> bool {
                <$machine>::assign_ipv4(self, now, request, address).is_ok()
            }
        }
    )*};
}

served_by_its_methods!(Session, PppLink);

/// An [`Authenticator`] that answers at once with `decide`.
pub fn authenticator_fn(
    decide: impl Fn(&AuthRequest) -> AuthDecision + Send + Sync + 'static,
) -> Arc<dyn Authenticator> {
    struct FnAuthenticator<F>(F);

    impl<F: Fn(&AuthRequest) -> AuthDecision + Send + Sync> Authenticator for FnAuthenticator<F> {
        fn authenticate(&self, request: AuthRequest, _context: AuthContext, reply: AuthReply) {
            reply.send((self.0)(&request));
        }
    }

    Arc::new(FnAuthenticator(decide))
}
