//! The one in-memory client↔server harness on a virtual clock, in the
//! manner of quinn-proto's test `Pair`: what one side transmits is fed to
//! the other, what the runtime would do with an event (judge credentials,
//! hand out an address) is done before anything moves again, and time
//! jumps straight to the next timer deadline. The protocol core's tests,
//! the benchmarks and the instruction-count gate all drive their pairs
//! with it, whatever the layer.
//!
//! # Pieces
//!
//! * [`Endpoint`]: what the harness needs of one side, the sans-IO surface
//!   every layer of `proto` has (transmit, receive, `poll_timeout`,
//!   `handle_timeout`, `poll_event`), plus three hooks with do-nothing
//!   defaults: [`serve`](Endpoint::serve) (what the runtime does with an
//!   event, before the event is recorded), [`answer`](Endpoint::answer)
//!   (hand the runtime's answers back) and [`pieces`](Endpoint::pieces)
//!   (where a byte stream may be cut for loss).
//! * Thin adapters, one a layer, each dereferencing to the machine it
//!   wraps: [`SessionEnd`] (a whole [`Session`](crate::proto::session::Session),
//!   a byte stream), [`SstpEnd`] (an [`SstpConnection`](crate::proto::sstp::SstpConnection),
//!   a byte stream), [`LinkEnd`] (a [`PppLink`](crate::proto::ppp::PppLink),
//!   frames), [`AuthServerEnd`] and [`AuthClientEnd`] (the authentication
//!   machines, packets), [`RadiusNas`] and [`RadiusServers`] (the RADIUS
//!   client, and servers built from its codec, datagrams), and
//!   [`ScriptedClient`](super::hostile::ScriptedClient) itself (hand-made
//!   bytes against a real server).
//! * [`Services`]: the runtime's part for a server session or link:
//!   authentication requests go to an [`Authenticator`](crate::proto::auth::Authenticator)
//!   (or wait in [`Services::requests`] for the test to answer), address
//!   requests are answered from [`ServerPools`](crate::routing::ServerPools)
//!   and released addresses returned, as the runtime does.
//! * [`Side`]: one end and its record: the events it reported (after
//!   `serve`), what it delivered up (IP packets, PPP frames, the errors of
//!   refused packets), optionally a [`Transcript`] of what it sent, and its
//!   outbox (bytes on the wire not yet moved; a data path such as
//!   `Session::send_ip` writes there directly).
//! * [`Pair`]: a server side, a client side, the clock and the wire:
//!   [`loss`](Pair::loss) by direction and index, [`tamper`](Pair::tamper),
//!   delivery in pieces of at most [`chunk`](Pair::chunk) bytes, and byte
//!   and unit counters each way.
//!
//! # Driving
//!
//! One [`step`](Pair::step) moves what the client transmits to the server,
//! then what the server transmits to the client, then collects both sides'
//! events through their hooks and applies the answers.
//! [`drive_now`](Pair::drive_now) steps until nothing moves, without
//! touching the clock; [`fire_next_timer`](Pair::fire_next_timer) jumps to
//! the earliest deadline and runs it without moving anything;
//! [`advance`](Pair::advance), [`advance_by`](Pair::advance_by) and
//! [`run_until`](Pair::run_until) alternate the two. Timers run only on the
//! side whose deadline is due. A test with its own rhythm (deciding
//! requests between exchanges, loss from a closure over its locals with
//! [`drive_now_with_loss`](Pair::drive_now_with_loss)) composes these.
//!
//! The layers' own pairs are aliases with their constructors:
//! [`SessionPair`] (the benchmarks' and gate's workload), [`LinkPair`],
//! and [`LoneServer`](super::hostile::LoneServer). The SSTP and
//! authentication-machine tests build theirs from [`SstpEnd`] and the
//! `Auth*End`s.
//!
//! # Cost
//!
//! The gate counts the instructions of `SessionPair::send_ip` and
//! [`drive_now`](Pair::drive_now): without loss, tamper or transcript a
//! transfer is one `poll_transmit` into the side's reused outbox and one
//! `receive` of all of it, with no allocation or copy per packet; delivered
//! packets are only counted unless [`Side::keep_delivered`] is set, and a
//! side with no request outstanding answers nothing without a lock.

use crate::proto::sstp::Transmit;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// Dereferences an adapter to the machine it wraps.
macro_rules! derefs_to {
    ($end:ty => $field:ident: $machine:ty) => {
        impl std::ops::Deref for $end {
            type Target = $machine;

            fn deref(&self) -> &$machine {
                &self.$field
            }
        }

        impl std::ops::DerefMut for $end {
            fn deref_mut(&mut self) -> &mut $machine {
                &mut self.$field
            }
        }
    };
}

/// The [`Endpoint`] methods an adapter hands straight to its machine.
macro_rules! timers_and_events_of {
    ($field:ident: $event:ty) => {
        fn poll_timeout(&self) -> Option<Instant> {
            self.$field.poll_timeout()
        }

        fn handle_timeout(&mut self, now: Instant) {
            self.$field.handle_timeout(now);
        }

        fn poll_event(&mut self) -> Option<$event> {
            self.$field.poll_event()
        }
    };
}

mod auth;
mod link;
mod radius;
mod services;
mod session;
mod sstp;

pub use auth::{AuthClientEnd, AuthServerEnd};
pub use link::{LinkEnd, LinkPair};
pub use radius::{accept_all, Answer, RadiusNas, RadiusServers, Received, Responder};
pub use services::{authenticator_fn, Duty, Services};
pub use session::{
    control_message_type, is_data_packet, SessionEnd, SessionPair, TEST_CERTIFICATE,
};
pub use sstp::SstpEnd;

/// Which way bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// Decides whether to drop a unit travelling in a direction: a message, or
/// for a byte stream a piece [`Endpoint::pieces`] cut. `n` is the unit's
/// index among [`Pair::units`] that way (from 0, lost ones included).
pub type LossFn = Box<dyn FnMut(Direction, u64, &[u8]) -> bool>;

/// Rewrites a transmission in flight (after the sender's transcript, before
/// loss).
pub type TamperFn = Box<dyn FnMut(Direction, &mut Vec<u8>)>;

/// A [`TamperFn`] borrowed for `'a`.
type Tamper<'a> = &'a mut (dyn FnMut(Direction, &mut Vec<u8>) + 'static);

/// A loss decision (living for `'f`) borrowed for `'a`.
type Loss<'a, 'f> = &'a mut (dyn FnMut(Direction, u64, &[u8]) -> bool + 'f);

/// One side of a [`Pair`]: a protocol machine behind the sans-IO surface
/// the harness drives. Implemented by the thin adapters of this module.
pub trait Endpoint: fmt::Debug {
    /// What the endpoint reports.
    type Event: fmt::Debug;
    /// What receiving hands up: IP packets (session), PPP frames (SSTP),
    /// IP packets with their version (PPP link), the errors of refused
    /// packets (authentication machines).
    type Delivered;
    /// Whether one [`poll_transmit`](Endpoint::poll_transmit) hands over
    /// everything queued (a byte stream) rather than one message: the
    /// harness then asks once a transfer.
    const STREAM: bool = false;

    /// Appends the next message, or for a byte stream everything queued,
    /// to `out`; returns whether `out` holds anything to move.
    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool;
    /// Takes in what the peer transmitted (a message, or a piece of the
    /// stream).
    fn receive(
        &mut self,
        now: Instant,
        input: &[u8],
        delivered: &mut Delivery<'_, Self::Delivered>,
    );
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// Plays the runtime's part for `event` (takes up the requests it
    /// makes); returns the event to record, or `None` to leave it out.
    fn serve(&mut self, now: Instant, event: Self::Event) -> Option<Self::Event> {
        let _ = now;
        Some(event)
    }

    /// Hands the runtime's answers that arrived since back to the machine;
    /// returns whether there were any.
    fn answer(&mut self, now: Instant) -> bool {
        let _ = now;
        false
    }

    /// Cuts one transmission into the units loss decides on, in order.
    /// Messages are one unit each (the default).
    fn pieces(&mut self, transmission: &[u8], piece: &mut dyn FnMut(&[u8])) {
        piece(transmission)
    }
}

/// Where [`Endpoint::receive`] hands things up: into a side's
/// [`delivered`](Side::delivered), or only its count.
pub struct Delivery<'a, T> {
    items: &'a mut Vec<T>,
    count: &'a mut u64,
    keep: bool,
}

impl<T> Delivery<'_, T> {
    /// Counts one item, and keeps it (built by `item`) when the side keeps
    /// what it delivers.
    #[inline]
    pub fn deliver_with(&mut self, item: impl FnOnce() -> T) {
        *self.count += 1;
        if self.keep {
            self.items.push(item());
        }
    }

    /// [`deliver_with`](Self::deliver_with) of an item already built.
    pub fn deliver(&mut self, item: T) {
        self.deliver_with(|| item)
    }
}

impl<T> fmt::Debug for Delivery<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("count", &self.count)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// Everything one side transmitted through the harness, in order (only
/// when [`enabled`](Transcript::enabled), see [`Pair::recording`]). Reads
/// as the concatenated bytes; [`transmissions`](Transcript::transmissions)
/// gives them one by one.
#[derive(Clone, Default)]
pub struct Transcript {
    pub enabled: bool,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Transcript {
    fn record(&mut self, transmission: &[u8]) {
        if self.enabled {
            self.bytes.extend_from_slice(transmission);
            self.ends.push(self.bytes.len());
        }
    }

    /// Each transmission (a message, or what one transfer of a stream
    /// moved), in order.
    pub fn transmissions(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let transmission = &self.bytes[start..end];
            start = end;
            transmission
        })
    }
}

impl Deref for Transcript {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl PartialEq<Vec<u8>> for Transcript {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.bytes == *other
    }
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.bytes, f)
    }
}

/// One end of a [`Pair`] and what it has seen. Dereferences to its
/// endpoint (and through the adapter to the machine).
pub struct Side<E: Endpoint> {
    pub endpoint: E,
    /// Every event it reported and [`Endpoint::serve`] kept, in order.
    pub events: Vec<E::Event>,
    /// What it handed up, when [`keep_delivered`](Side::keep_delivered).
    pub delivered: Vec<E::Delivered>,
    /// How many things it handed up, kept or not.
    pub delivered_count: u64,
    /// Keep every delivered thing (tests) or only count them (benchmarks).
    pub keep_delivered: bool,
    /// What it transmitted, if recording.
    pub sent: Transcript,
    /// Bytes on the wire from this side, moved on the next transfer.
    pub outbox: Transmit,
}

impl<E: Endpoint> Side<E> {
    pub fn new(endpoint: E) -> Self {
        Side {
            endpoint,
            events: Vec::new(),
            delivered: Vec::new(),
            delivered_count: 0,
            keep_delivered: true,
            sent: Transcript::default(),
            outbox: Transmit::new(),
        }
    }

    /// Feeds `input` to the endpoint as one read, recording what it hands
    /// up (the harness's transfers come here too).
    pub fn receive(&mut self, now: Instant, input: &[u8]) {
        let mut delivery = Delivery {
            items: &mut self.delivered,
            count: &mut self.delivered_count,
            keep: self.keep_delivered,
        };
        self.endpoint.receive(now, input, &mut delivery);
    }

    /// [`receive`](Self::receive) in pieces of at most `chunk` bytes.
    pub fn receive_in_chunks(&mut self, now: Instant, input: &[u8], chunk: usize) {
        if input.len() <= chunk {
            return self.receive(now, input);
        }
        for piece in input.chunks(chunk.max(1)) {
            self.receive(now, piece);
        }
    }

    /// Drains the endpoint's events through [`Endpoint::serve`] into
    /// [`events`](Side::events), then applies the runtime's answers.
    /// Returns whether anything happened.
    pub fn collect_events(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(event) = self.endpoint.poll_event() {
            any = true;
            if let Some(event) = self.endpoint.serve(now, event) {
                self.events.push(event);
            }
        }
        self.endpoint.answer(now) | any
    }

    /// Runs the endpoint's timers if one is due at `now`.
    fn fire(&mut self, now: Instant) {
        if self.endpoint.poll_timeout().is_some_and(|d| d <= now) {
            self.endpoint.handle_timeout(now);
        }
    }
}

impl<E: Endpoint> Deref for Side<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.endpoint
    }
}

impl<E: Endpoint> DerefMut for Side<E> {
    fn deref_mut(&mut self) -> &mut E {
        &mut self.endpoint
    }
}

impl<E: Endpoint> fmt::Debug for Side<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Side")
            .field("endpoint", &self.endpoint)
            .field("events", &self.events.len())
            .field("delivered", &self.delivered_count)
            .finish_non_exhaustive()
    }
}

/// A server and a client connected by an in-memory wire, on a virtual
/// clock. See the [module documentation](self).
pub struct Pair<S: Endpoint, C: Endpoint> {
    pub server: Side<S>,
    pub client: Side<C>,
    /// The start of the virtual clock.
    pub base: Instant,
    pub now: Instant,
    /// Loss injected on the wire.
    pub loss: Option<LossFn>,
    /// Rewriting of transmissions in flight.
    pub tamper: Option<TamperFn>,
    /// The largest piece a transfer is handed to the receiver in (byte
    /// streams only; default: all at once).
    pub chunk: usize,
    /// Bytes transmitted each way (index: [`Direction`] as `usize`).
    pub bytes: [u64; 2],
    /// Units transmitted each way, lost ones included: messages, or for a
    /// byte stream its transfers (its loss pieces while `loss` is set).
    pub units: [u64; 2],
    /// Units dropped by `loss`.
    pub dropped: u64,
}

impl<S: Endpoint, C: Endpoint> fmt::Debug for Pair<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("server", &self.server)
            .field("client", &self.client)
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

/// Steps of [`Pair::drive_now`] before it gives up on a pair that never
/// goes quiet.
const MAX_STEPS: usize = 10_000;
/// Timer deadlines one [`Pair::run_until`] or [`Pair::advance_by`] may
/// pass before it gives up on a timer that never stops firing.
const MAX_DEADLINES: usize = 1_000_000;

impl<S: Endpoint, C: Endpoint> Pair<S, C> {
    /// `server` and `client` on a clock starting at `now`, nothing in
    /// flight, no loss.
    pub fn between(server: S, client: C, now: Instant) -> Self {
        Pair {
            server: Side::new(server),
            client: Side::new(client),
            base: now,
            now,
            loss: None,
            tamper: None,
            chunk: usize::MAX,
            bytes: [0; 2],
            units: [0; 2],
            dropped: 0,
        }
    }

    /// Records every transmission in both sides' [`Side::sent`].
    pub fn recording(mut self) -> Self {
        self.server.sent.enabled = true;
        self.client.sent.enabled = true;
        self
    }

    /// Virtual time since the pair was made.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// The earliest timer of either side.
    pub fn next_timeout(&self) -> Option<Instant> {
        match (self.server.poll_timeout(), self.client.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets the clock to `t` (never backwards) and runs the timers due by
    /// then. Moves nothing.
    pub fn advance_to(&mut self, t: Instant) {
        self.now = self.now.max(t);
        self.server.fire(self.now);
        self.client.fire(self.now);
    }

    /// Jumps to the earliest deadline of either side, if it is within
    /// `limit` of now, runs the timers and collects the events; moves
    /// nothing. Returns whether there was such a deadline.
    pub fn fire_next_timer(&mut self, limit: Duration) -> bool {
        let Some(deadline) = self.next_timeout() else {
            return false;
        };
        if self
            .now
            .checked_add(limit)
            .is_some_and(|end| deadline > end)
        {
            return false;
        }
        self.advance_to(deadline);
        self.collect_events();
        true
    }

    /// Jumps to the earliest deadline, runs it and drives until quiet.
    /// Returns `false` (and does nothing) when no timer is set.
    pub fn advance(&mut self) -> bool {
        if !self.fire_next_timer(Duration::MAX) {
            return false;
        }
        self.drive_now();
        true
    }

    /// Moves the clock forward by `by`, driving and running every timer
    /// that falls due on the way.
    pub fn advance_by(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..MAX_DEADLINES {
            self.drive_now();
            if !self.fire_next_timer(end.saturating_duration_since(self.now)) {
                self.now = self.now.max(end);
                self.drive_now();
                return;
            }
        }
        panic!("timers kept firing: {self:?}");
    }

    /// Collects both sides' events (see [`Side::collect_events`]). Returns
    /// whether anything happened.
    pub fn collect_events(&mut self) -> bool {
        let server = self.server.collect_events(self.now);
        self.client.collect_events(self.now) | server
    }

    /// One round: what the client transmits to the server, what the server
    /// transmits to the client, then both sides' events. Returns whether
    /// anything moved or happened.
    pub fn step(&mut self) -> bool {
        let mut loss = self.loss.take();
        let moved = self.step_with(loss.as_deref_mut());
        self.loss = loss;
        moved
    }

    /// Steps until nothing moves, without advancing time. Returns whether
    /// anything moved.
    pub fn drive_now(&mut self) -> bool {
        let mut loss = self.loss.take();
        let moved = self.settle(loss.as_deref_mut());
        self.loss = loss;
        moved
    }

    /// [`drive_now`](Self::drive_now) with `loss` instead of the pair's
    /// own (for a test's closure that borrows its locals).
    pub fn drive_now_with_loss(
        &mut self,
        loss: &mut dyn FnMut(Direction, u64, &[u8]) -> bool,
    ) -> bool {
        self.settle(Some(loss))
    }

    /// Drives until `done` holds, jumping time from deadline to deadline,
    /// for at most `limit` of virtual time. Returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + limit;
        for _ in 0..MAX_DEADLINES {
            self.drive_now();
            if done(self) {
                return true;
            }
            match self.next_timeout() {
                Some(t) if t <= end => self.advance_to(t),
                _ => return false,
            }
        }
        panic!("timers kept firing: {self:?}");
    }

    fn settle(&mut self, mut loss: Option<Loss<'_, '_>>) -> bool {
        for step in 0..MAX_STEPS {
            if !self.step_with(loss.as_deref_mut()) {
                return step > 0;
            }
        }
        panic!("the pair did not settle: {self:?}");
    }

    fn step_with(&mut self, loss: Option<Loss<'_, '_>>) -> bool {
        let Pair {
            server,
            client,
            now,
            tamper,
            chunk,
            bytes,
            units,
            dropped,
            ..
        } = self;
        let mut wire = Wire {
            now: *now,
            loss,
            tamper: tamper.as_deref_mut(),
            chunk: *chunk,
            bytes,
            units,
            dropped,
        };
        let mut moved = wire.transfer(Direction::ClientToServer, client, server);
        moved |= wire.transfer(Direction::ServerToClient, server, client);
        moved |= server.collect_events(*now);
        moved |= client.collect_events(*now);
        moved
    }
}

/// The wire of one step: the pair's loss, tamper and counters, borrowed.
struct Wire<'a, 'f> {
    now: Instant,
    loss: Option<Loss<'a, 'f>>,
    tamper: Option<Tamper<'a>>,
    chunk: usize,
    bytes: &'a mut [u64; 2],
    units: &'a mut [u64; 2],
    dropped: &'a mut u64,
}

impl Wire<'_, '_> {
    /// Moves everything `from` transmits to `to`. Returns whether anything
    /// was transmitted.
    fn transfer<A: Endpoint, B: Endpoint>(
        &mut self,
        direction: Direction,
        from: &mut Side<A>,
        to: &mut Side<B>,
    ) -> bool {
        let index = direction as usize;
        let (now, chunk) = (self.now, self.chunk);
        let mut moved = false;
        while from.endpoint.poll_transmit(now, &mut from.outbox) {
            moved = true;
            self.bytes[index] += from.outbox.len() as u64;
            from.sent.record(&from.outbox);
            if let Some(tamper) = self.tamper.as_deref_mut() {
                tamper(direction, from.outbox.bytes_mut());
            }
            match self.loss.as_deref_mut() {
                None => {
                    self.units[index] += 1;
                    to.receive_in_chunks(now, &from.outbox, chunk);
                }
                Some(loss) => {
                    let units = &mut self.units[index];
                    let dropped = &mut *self.dropped;
                    from.endpoint.pieces(&from.outbox, &mut |piece| {
                        let n = *units;
                        *units += 1;
                        if loss(direction, n, piece) {
                            *dropped += 1;
                        } else {
                            to.receive_in_chunks(now, piece, chunk);
                        }
                    });
                }
            }
            from.outbox.clear();
            if A::STREAM {
                break;
            }
        }
        moved
    }
}
