//! Sends each session's packets to the TUN queue of the worker that owns
//! the session.
//!
//! A worker reads its own queue of the multi-queue device. Without a
//! program, the tun driver picks a packet's queue from its flow table: the
//! queue that last wrote a packet of the flow (a symmetric hash of its
//! addresses and ports; entries expire after 3 s without one), else the
//! hash itself. A flow the client has not sent on (a UDP stream toward it,
//! or one whose entry expired) lands on any worker's queue, and that worker
//! hands the packets over to the owner (a mailbox and an eventfd wake-up
//! per batch, docs/architecture.md). And when a flow's choice moves to
//! the owner's queue (its first upstream packet) while another worker
//! holds some of its packets, those are routed after ones the owner reads
//! itself: the flow is reordered.
//!
//! So a socket-filter program attached with `TUNSETSTEERINGEBPF` (Linux
//! 4.16 on) chooses the queue instead: the destination's key (the session's
//! IPv4 address or IPv6 /64, as the drop filter's map keys them) is looked up in a map
//! that holds its owner's queue, which is the worker's index (the workers'
//! queues are attached in order and never detached while sstpd runs). An IPv4
//! destination the map does not hold is looked up in a second map, of the
//! Framed-Route prefixes sessions route (the longest prefix wins), which
//! the route table keeps as it changes. Any other destination (an address
//! no session has) goes by its last address bytes, so each such flow
//! still stays on one queue. The kernel takes the returned value modulo the
//! number of queues.
//!
//! Sessions put their addresses into the map when they route them and take
//! them out when they let them go; an update is one `bpf(2)` call. Where
//! the kernel refuses the program (no `CAP_BPF`/`CAP_SYS_ADMIN`, no BPF, an
//! older kernel), sstpd logs one warning, counts `tun_steering_unavailable`
//! and the driver's flow table chooses, as before.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};

use crate::proto::route::Ipv4Prefix;

use super::bpf::{
    attach_with_maps, destination_program, insn, ipv4_prefix_lookup, AddressMap, DeviceProgram,
    Insn, PrefixMap, EXIT, KEY, LDX_B, LDX_W, R0, R1, R10, XOR64_REG,
};

/// What the kernel refused, and at which step
/// ([`DeviceProgram::Steering`](super::drop_filter::DeviceProgram)).
pub type SteeringError = super::bpf::AttachError;

/// The map of sessions' destinations to their owners' queues, with the
/// program attached to a TUN device that reads it. Shared by all workers.
pub struct Steering {
    map: AddressMap,
    /// Framed-Route prefixes to their owners' queues, for destinations
    /// `map` does not hold.
    prefixes: PrefixMap,
    /// Kept so that the program outlives any detach of the device; the
    /// device holds its own reference while attached.
    _program: OwnedFd,
}

impl fmt::Debug for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steering")
            .field("map", &self.map.fd())
            .finish_non_exhaustive()
    }
}

impl Steering {
    /// Creates the map (room for `capacity` destinations), loads the
    /// program and attaches it to the device of `queue` (any of its
    /// queues: the steering is the device's).
    pub fn attach(queue: RawFd, capacity: u32) -> Result<Steering, SteeringError> {
        let (maps, program) =
            attach_with_maps(DeviceProgram::Steering, queue, (capacity, 4), program)?;
        Ok(Steering {
            map: maps.addresses,
            prefixes: maps.prefixes,
            _program: program,
        })
    }

    /// Packets to `addr` (its /64 for IPv6) go to queue `queue` from now
    /// on. Fails when the map is full (`E2BIG`).
    pub fn steer(&self, addr: IpAddr, queue: u16) -> io::Result<()> {
        self.map.update(addr, &u32::from(queue).to_ne_bytes())
    }

    /// Packets to `addr` go by its address bytes again. Forgetting a
    /// destination that is not there is no error.
    pub fn forget(&self, addr: IpAddr) -> io::Result<()> {
        self.map.delete(addr)
    }

    /// Packets to addresses in `prefix` that no session has as its own go
    /// to queue `queue` (the longest matching prefix wins). Fails when the
    /// prefix map is full (`ENOSPC`).
    pub fn steer_prefix(&self, prefix: Ipv4Prefix, queue: u16) -> io::Result<()> {
        self.prefixes
            .update(prefix, &u32::from(queue).to_ne_bytes())
    }

    /// Packets to `prefix` go by their address bytes again (or a shorter
    /// prefix's queue).
    pub fn forget_prefix(&self, prefix: Ipv4Prefix) -> io::Result<()> {
        self.prefixes.delete(prefix)
    }
}

/// The steering program: the owner's queue for a destination in `map`;
/// else, for IPv4, the queue of the longest prefix in `prefixes` that
/// holds it; else the key's fifth and ninth bytes XORed (an IPv4
/// address's last byte; bytes 4 and 8 of an IPv6 /64; 0 for a packet it
/// cannot read).
pub fn program(map: RawFd, prefixes: RawFd) -> Vec<Insn> {
    // A hit's value: the queue, a u32.
    let queue = [insn(LDX_W, R0, R0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
    let by_address = [
        insn(LDX_B, R0, R10, KEY + 4, 0),
        insn(LDX_B, R1, R10, KEY + 8, 0),
        insn(XOR64_REG, R0, R1, 0, 0),
        insn(EXIT, 0, 0, 0, 0),
    ];
    destination_program(
        map,
        queue,
        &ipv4_prefix_lookup(prefixes, queue, &by_address),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tun::bpf::MISS;

    #[test]
    fn a_hit_returns_the_queue_and_a_miss_the_prefix_then_the_address_bytes() {
        let prog = program(5, 6);
        assert_eq!(prog.len(), MISS + 18 + 4);
        assert_eq!(prog[33], insn(LDX_W, R0, R0, 0, 0));
        assert_eq!(prog[27].imm, 5, "the map's fd");
        assert_eq!(prog[MISS + 10].imm, 6, "the prefix map's fd");
        assert_eq!(prog[MISS + 16], insn(LDX_W, R0, R0, 0, 0));
        assert_eq!(prog[MISS + 18], insn(LDX_B, R0, R10, KEY + 4, 0));
    }
}
