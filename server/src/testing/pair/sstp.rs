//! SSTP connections alone: [`SstpEnd`], PPP frames handed up as they are.

use crate::proto::sstp::Transmit;
use std::time::Instant;

use super::{Delivery, Endpoint, Side};
use crate::proto::sstp::{CloseReason, SstpConnection, SstpEvent};

/// An [`SstpConnection`] as a harness endpoint (a byte stream). Dereferences
/// to the connection.
#[derive(Debug)]
pub struct SstpEnd {
    pub conn: SstpConnection,
}

derefs_to!(SstpEnd => conn: SstpConnection);

impl Endpoint for SstpEnd {
    type Event = SstpEvent;
    /// PPP frames.
    type Delivered = Vec<u8>;
    const STREAM: bool = true;

    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        self.conn.poll_transmit(now, out);
        if cfg!(debug_assertions) {
            out.assert_whole_units();
        }
        !out.is_empty()
    }

    fn receive(&mut self, now: Instant, input: &[u8], delivered: &mut Delivery<'_, Vec<u8>>) {
        self.conn.handle_input(now, input, &mut |frame| {
            delivered.deliver_with(|| frame.to_vec())
        });
    }

    timers_and_events_of!(conn: SstpEvent);
}

impl Side<SstpEnd> {
    /// The close event, if the connection ended.
    pub fn closed_reason(&self) -> Option<&CloseReason> {
        self.events.iter().find_map(|event| match event {
            SstpEvent::Closed(reason) => Some(reason),
            _ => None,
        })
    }
}
