//! Drops in the kernel what a congested session would drop anyway.
//!
//! A session's plaintext queue has a bound; a packet from TUN for a session
//! whose queue is at it is dropped (`tx_queue_full`). But by then sstpd has
//! paid for it: the kernel copied it (a whole 64 KiB super-packet with
//! segmentation offload) out of the device, and io_uring completed a read
//! for it. A UDP stream at full speed toward one client read five times what
//! its client took, and that copy was a quarter of the worker's time
//! (`perf` of `sstp-bench run bulk_down_1`: `_copy_to_iter` under the TUN
//! read, 25% of the samples, with 83% of the packets read then dropped).
//!
//! So while a session's queue is full its addresses sit in a BPF hash map,
//! and a socket-filter program attached to the device (`TUNSETFILTEREBPF`,
//! Linux 4.18 on) drops the packets addressed to them in `tun_net_xmit`,
//! before they are queued for a read. The kernel counts them in the
//! device's `tx_dropped` (`ip -s link`; sstpd exports it as
//! `sstpd_tun_kernel_tx_dropped`). The decision is the one sstpd makes
//! itself at the bound, taken earlier; the session's own writer clears the
//! mark once its queue has drained to half the bound, and the session's
//! end clears it before its addresses go back to the pool.
//!
//! The map is keyed by destination: the IP version, then the session's
//! IPv4 address or IPv6 /64 ([`key_of`]). A congested session's
//! Framed-Route prefixes sit in a second map, an LPM trie of IPv4
//! prefixes, looked up when the first misses. The program (55
//! instructions, [`program`]) is the destination and prefix lookups the
//! steering shares (`tun::bpf`), with a drop on a hit; anything it cannot
//! read or does not know passes. Written by hand, not built with aya or libbpf-rs, for the
//! reason `tun::bpf` gives.
//!
//! Where the kernel refuses (no `CAP_BPF`/`CAP_SYS_ADMIN`, no BPF syscall,
//! a kernel without `TUNSETFILTEREBPF`), sstpd logs one warning, counts
//! `tun_drop_filter_unavailable` and drops at the bound as before.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};

use super::bpf::{
    attach_with_maps, destination_program, insn, ipv4_prefix_lookup, AddressMap, Insn, PrefixMap,
    EXIT, LDX_W, MOV64_IMM, R0, R6,
};
pub use super::bpf::{key_of, AttachError, AttachStep, DeviceProgram, KEY_LEN};
use crate::proto::route::Ipv4Prefix;

/// What the kernel refused, and at which step
/// ([`DeviceProgram::DropFilter`]).
pub type DropFilterError = AttachError;

/// The map of congested destinations, with the program attached to a TUN
/// device that reads it. Shared by all workers: map updates are single
/// system calls, safe from any thread.
pub struct DropFilter {
    map: AddressMap,
    prefixes: PrefixMap,
    /// Kept so that the program outlives any detach of the device; the
    /// device holds its own reference while attached.
    _program: OwnedFd,
}

impl fmt::Debug for DropFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropFilter")
            .field("map", &self.map.fd())
            .finish_non_exhaustive()
    }
}

impl DropFilter {
    /// Creates the maps (room for `capacity` keys each), loads the program
    /// and attaches it to the device of `queue` (any queue of a device: the
    /// filter is the device's).
    pub fn attach(queue: RawFd, capacity: u32) -> Result<DropFilter, DropFilterError> {
        let (maps, program) =
            attach_with_maps(DeviceProgram::DropFilter, queue, (capacity, 1), program)?;
        Ok(DropFilter {
            map: maps.addresses,
            prefixes: maps.prefixes,
            _program: program,
        })
    }

    /// Packets to `addr` (its /64 for IPv6) are dropped by the kernel from
    /// now on. Fails when the map is full (`E2BIG`).
    pub fn mark(&self, addr: IpAddr) -> io::Result<()> {
        self.map.update(addr, &[1])
    }

    /// Packets to `addr` reach sstpd again. Clearing a key that is not
    /// there is no error.
    pub fn clear(&self, addr: IpAddr) -> io::Result<()> {
        self.map.delete(addr)
    }

    /// Packets to any address inside `prefix` (a congested session's
    /// Framed-Route) are dropped by the kernel from now on. Fails when the
    /// trie is full (`ENOSPC`).
    pub fn mark_prefix(&self, prefix: Ipv4Prefix) -> io::Result<()> {
        self.prefixes.update(prefix, &[1])
    }

    /// Packets to `prefix` reach sstpd again. Clearing a prefix that is not
    /// there is no error.
    pub fn clear_prefix(&self, prefix: Ipv4Prefix) -> io::Result<()> {
        self.prefixes.delete(prefix)
    }
}

/// The filter: returns 0 (drop) for a packet whose destination key is in
/// `map` or, for IPv4, inside a prefix in `prefixes`; else the packet's
/// length (keep it whole).
pub fn program(map: RawFd, prefixes: RawFd) -> Vec<Insn> {
    let drop = [insn(MOV64_IMM, R0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
    // Keep the packet whole (`__sk_buff.len`, offset 0).
    let keep = [insn(LDX_W, R0, R6, 0, 0), insn(EXIT, 0, 0, 0, 0)];
    destination_program(map, drop, &ipv4_prefix_lookup(prefixes, drop, &keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tun::bpf::MISS;

    #[test]
    fn a_hit_drops_and_a_miss_tries_the_prefixes_then_keeps_the_packet_whole() {
        let prog = program(3, 4);
        assert_eq!(prog.len(), MISS + 18 + 2);
        assert_eq!(prog[33], insn(MOV64_IMM, R0, 0, 0, 0));
        assert_eq!(prog[27].imm, 3, "the map's fd");
        assert_eq!(prog[MISS + 10].imm, 4, "the prefix map's fd");
        assert_eq!(prog[MISS + 16], insn(MOV64_IMM, R0, 0, 0, 0));
        assert_eq!(prog[MISS + 18], insn(LDX_W, R0, R6, 0, 0));
    }
}
