//! RADIUS on the harness: [`RadiusNas`], a [`radius::Client`] as the
//! client side, and [`RadiusServers`], RADIUS servers built from the same
//! codec as the server side: they verify each request as a server would
//! (authenticators, Message-Authenticator, the hidden password) and answer
//! as a test scripts them: with what, after how long, twice, without a
//! Message-Authenticator, with the wrong secret, or not at all.
//!
//! A message on the wire is the index of the server in the address table
//! both sides share, the socket number, then the RADIUS datagram, so loss
//! and tampering work per datagram as for any other layer.
//!
//! This is the client state machine's unit-test rig: an integration test
//! talks to a real FreeRADIUS instead.
//!
//! [`radius::Client`]: crate::radius::Client

use crate::proto::sstp::Transmit;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Delivery, Endpoint};
use crate::radius::attr::{self, Attributes};
use crate::radius::client::{Client, DropReason, Event};
use crate::radius::crypt::{self, VerifyError};
use crate::radius::packet::{frame, Code, Packet};

/// Octets before the datagram in a message: server index, socket.
const HEADER: usize = 2;

/// A NAS: the client state machine, and the server addresses in the order
/// of the harness's index. Dereferences to the client.
#[derive(Debug)]
pub struct RadiusNas<T> {
    pub client: Client<T>,
    pub addresses: Vec<SocketAddr>,
}

impl<T> RadiusNas<T> {
    pub fn new(client: Client<T>, addresses: Vec<SocketAddr>) -> Self {
        RadiusNas { client, addresses }
    }
}

impl<T> std::ops::Deref for RadiusNas<T> {
    type Target = Client<T>;

    fn deref(&self) -> &Client<T> {
        &self.client
    }
}

impl<T> std::ops::DerefMut for RadiusNas<T> {
    fn deref_mut(&mut self) -> &mut Client<T> {
        &mut self.client
    }
}

impl<T: fmt::Debug> Endpoint for RadiusNas<T> {
    type Event = Event<T>;
    type Delivered = DropReason;

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) -> bool {
        let mut out = out.unit();
        let Some(transmit) = self.client.poll_transmit() else {
            return false;
        };
        let index = self
            .addresses
            .iter()
            .position(|&a| a == transmit.server)
            .expect("the harness knows every server the client sends to");
        out.push(index as u8);
        out.push(transmit.socket as u8);
        out.extend_from_slice(&transmit.payload);
        true
    }

    fn receive(&mut self, now: Instant, input: &[u8], delivered: &mut Delivery<'_, DropReason>) {
        let (Some(&index), Some(&socket)) = (input.first(), input.get(1)) else {
            return;
        };
        let from = self.addresses[usize::from(index)];
        let datagram = &input[HEADER..];
        if let Err(reason) = self
            .client
            .handle_datagram(now, from, usize::from(socket), datagram)
        {
            delivered.deliver(reason);
        }
    }

    timers_and_events_of!(client: Event<T>);
}

/// How a [`Responder`] answers a verified request: the response's code and
/// attributes (the secret is given for encrypting keys), or `None` to stay
/// silent.
pub type Answer = Box<dyn FnMut(&Packet, &[u8]) -> Option<(Code, Attributes)>>;

/// The answer a server gives by default: Access-Accept to an
/// Access-Request, Accounting-Response to an Accounting-Request, no
/// attributes.
pub fn accept_all() -> Answer {
    Box::new(|request, _| match request.code {
        Code::AccessRequest => Some((Code::AccessAccept, Attributes::new())),
        Code::AccountingRequest => Some((Code::AccountingResponse, Attributes::new())),
        _ => None,
    })
}

/// A request a [`Responder`] received and verified.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub socket: u8,
    pub packet: Packet,
    /// The User-Password revealed with the responder's secret.
    pub password: Option<Vec<u8>>,
}

/// One RADIUS server.
pub struct Responder {
    pub addr: SocketAddr,
    pub secret: Vec<u8>,
    /// Off: it drops everything (a dead server).
    pub up: bool,
    /// Signs its answers with this secret instead (a forger).
    pub signing_secret: Option<Vec<u8>>,
    /// Adds a Message-Authenticator to its answers.
    pub message_authenticator: bool,
    /// Sends every answer twice.
    pub duplicate: bool,
    /// Answers after this long.
    pub delay: Duration,
    pub answer: Answer,
    /// Every verified request, in order.
    pub received: Vec<Received>,
    /// Requests that failed verification.
    pub refused: Vec<VerifyError>,
}

impl Responder {
    /// A server at `addr` with `secret` that accepts everything at once,
    /// with a Message-Authenticator.
    pub fn new(addr: SocketAddr, secret: &[u8]) -> Self {
        Responder {
            addr,
            secret: secret.to_vec(),
            up: true,
            signing_secret: None,
            message_authenticator: true,
            duplicate: false,
            delay: Duration::ZERO,
            answer: accept_all(),
            received: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Verifies a request and builds the answer (`None`: nothing to send).
    fn respond(&mut self, now: Instant, socket: u8, datagram: &[u8]) -> Option<Vec<u8>> {
        if !self.up {
            return None;
        }
        let packet = frame(datagram).ok()?;
        if let Err(error) = crypt::verify_request(packet, &self.secret, true) {
            self.refused.push(error);
            return None;
        }
        let request = Packet::decode(packet).ok()?;
        let password = request
            .attributes
            .get(attr::USER_PASSWORD)
            .and_then(|hidden| {
                crypt::unhide_password(hidden, &self.secret, &request.authenticator).ok()
            });
        self.received.push(Received {
            at: now,
            socket,
            packet: request.clone(),
            password,
        });
        let (code, attributes) = (self.answer)(&request, &self.secret)?;
        let mut response = Packet {
            code,
            identifier: request.identifier,
            authenticator: [0; 16],
            attributes: Attributes::new(),
        };
        if self.message_authenticator {
            response
                .attributes
                .push(attr::MESSAGE_AUTHENTICATOR, &[0; 16])
                .ok()?;
        }
        for attribute in &attributes {
            response.attributes.push_attribute(attribute.clone());
        }
        let mut bytes = response.encode().ok()?;
        let secret = self.signing_secret.as_deref().unwrap_or(&self.secret);
        crypt::sign_response(&mut bytes, &request.authenticator, secret);
        Some(bytes)
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("addr", &self.addr)
            .field("up", &self.up)
            .field("received", &self.received.len())
            .finish_non_exhaustive()
    }
}

/// The RADIUS servers a [`RadiusNas`] talks to, in the order of the
/// harness's address table. Dereferences to the responders.
#[derive(Debug, Default)]
pub struct RadiusServers {
    pub responders: Vec<Responder>,
    /// Answers waiting for their time: (when, message).
    outbox: VecDeque<(Instant, Vec<u8>)>,
}

impl RadiusServers {
    pub fn new(responders: Vec<Responder>) -> Self {
        RadiusServers {
            responders,
            outbox: VecDeque::new(),
        }
    }

    /// The address table both sides share.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.responders.iter().map(|r| r.addr).collect()
    }
}

derefs_to!(RadiusServers => responders: Vec<Responder>);

impl Endpoint for RadiusServers {
    type Event = Infallible;
    type Delivered = Infallible;

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        let Some(at) = self.outbox.iter().position(|(due, _)| *due <= now) else {
            return false;
        };
        let Some((_, message)) = self.outbox.remove(at) else {
            return false;
        };
        out.unit().extend_from_slice(&message);
        true
    }

    fn receive(&mut self, now: Instant, input: &[u8], _: &mut Delivery<'_, Infallible>) {
        let (Some(&index), Some(&socket)) = (input.first(), input.get(1)) else {
            return;
        };
        let Some(responder) = self.responders.get_mut(usize::from(index)) else {
            return;
        };
        let Some(answer) = responder.respond(now, socket, &input[HEADER..]) else {
            return;
        };
        let mut message = vec![index, socket];
        message.extend_from_slice(&answer);
        let due = now + responder.delay;
        if responder.duplicate {
            self.outbox.push_back((due, message.clone()));
        }
        self.outbox.push_back((due, message));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.outbox.iter().map(|(due, _)| *due).min()
    }

    fn handle_timeout(&mut self, _now: Instant) {
        // Due answers go out on the next transfer.
    }

    fn poll_event(&mut self) -> Option<Infallible> {
        None
    }
}
