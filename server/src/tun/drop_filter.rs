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
//! The key is nine bytes: the IP version, then the destination's first
//! four (IPv4, the session's address) or eight bytes (IPv6, the session's
//! /64), the rest zero. The program (37 instructions, [`program`]) reads
//! the packet with `bpf_skb_load_bytes`, which fails cleanly on a short
//! packet; anything it cannot read or does not know passes.
//!
//! Written here rather than with a crate: aya and libbpf-rs load programs
//! from an ELF object that a BPF toolchain (clang or bpf-linker) must build,
//! which the build would then need for 37 fixed instructions. The three
//! `bpf(2)` commands used (map create, program load, map update and delete)
//! have stable layouts (`include/uapi/linux/bpf.h`).
//!
//! Where the kernel refuses (no `CAP_BPF`/`CAP_SYS_ADMIN`, no BPF syscall,
//! a kernel without `TUNSETFILTEREBPF`), sstpd logs one warning, counts
//! `tun_drop_filter_unavailable` and drops at the bound as before.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::metrics::Event;

/// `BPF_MAP_CREATE`, `BPF_MAP_UPDATE_ELEM`, `BPF_MAP_DELETE_ELEM`,
/// `BPF_PROG_LOAD` (`enum bpf_cmd`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_MAP_TYPE_HASH`, `BPF_PROG_TYPE_SOCKET_FILTER`.
const BPF_MAP_TYPE_HASH: u32 = 1;
/// `BPF_F_NO_PREALLOC`: entries are allocated as they are inserted.
const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// Helper function ids (`enum bpf_func_id`).
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_SKB_LOAD_BYTES: i32 = 26;

/// Length of a map key: the IP version, then up to eight address bytes.
pub const KEY_LEN: usize = 9;

/// A map key: version 4 with the IPv4 address, or version 6 with the
/// IPv6 address's /64 (the rest of it ignored: a session owns the /64).
pub fn key_of(addr: IpAddr) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    match addr {
        IpAddr::V4(v4) => {
            key[0] = 4;
            key[1..5].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            key[0] = 6;
            key[1..9].copy_from_slice(&v6.octets()[..8]);
        }
    }
    key
}

/// What the kernel refused, and at which step.
#[derive(Debug)]
#[non_exhaustive]
pub enum DropFilterError {
    /// `BPF_MAP_CREATE` failed (no BPF, no privilege, memory limit).
    Map(io::Error),
    /// `BPF_PROG_LOAD` failed: the verifier's log says why.
    Program { error: io::Error, log: String },
    /// `TUNSETFILTEREBPF` failed.
    Attach(io::Error),
}

/// The step that failed, as its `tun_drop_filter_unavailable` counter.
impl From<&DropFilterError> for Event {
    fn from(error: &DropFilterError) -> Event {
        match error {
            DropFilterError::Map(_) => Event::TunDropFilterMapRefused,
            DropFilterError::Program { .. } => Event::TunDropFilterProgramRefused,
            DropFilterError::Attach(_) => Event::TunDropFilterAttachRefused,
        }
    }
}

impl fmt::Display for DropFilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropFilterError::Map(e) => write!(f, "creating the BPF map: {e}"),
            DropFilterError::Program { error, log } if log.is_empty() => {
                write!(f, "loading the BPF program: {error}")
            }
            DropFilterError::Program { error, log } => {
                write!(f, "loading the BPF program: {error}: {log}")
            }
            DropFilterError::Attach(e) => write!(f, "TUNSETFILTEREBPF: {e}"),
        }
    }
}

impl std::error::Error for DropFilterError {}

/// The map of congested destinations, with the program attached to a TUN
/// device that reads it. Shared by all workers: map updates are single
/// system calls, safe from any thread.
pub struct DropFilter {
    map: OwnedFd,
    /// Kept so that the program outlives any detach of the device; the
    /// device holds its own reference while attached.
    _program: OwnedFd,
}

impl fmt::Debug for DropFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropFilter")
            .field("map", &self.map.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl DropFilter {
    /// Creates the map (room for `capacity` keys), loads the program and
    /// attaches it to the device of `queue` (any queue of a device: the
    /// filter is the device's).
    pub fn attach(queue: RawFd, capacity: u32) -> Result<DropFilter, DropFilterError> {
        let map = create_map(capacity.max(1)).map_err(DropFilterError::Map)?;
        let program = load_program(&program(map.as_raw_fd()))?;
        let fd: libc::c_int = program.as_raw_fd();
        // SAFETY: TUNSETFILTEREBPF reads one int, the program's fd (-1
        // detaches).
        if unsafe { libc::ioctl(queue, libc::TUNSETFILTEREBPF, &fd as *const libc::c_int) } < 0 {
            return Err(DropFilterError::Attach(io::Error::last_os_error()));
        }
        Ok(DropFilter {
            map,
            _program: program,
        })
    }

    /// Packets to `addr` (its /64 for IPv6) are dropped by the kernel from
    /// now on. Fails when the map is full (`E2BIG`).
    pub fn mark(&self, addr: IpAddr) -> io::Result<()> {
        let value = [1u8];
        self.element(BPF_MAP_UPDATE_ELEM, addr, value.as_ptr() as u64)
    }

    /// Packets to `addr` reach sstpd again. Clearing a key that is not
    /// there is no error.
    pub fn clear(&self, addr: IpAddr) -> io::Result<()> {
        match self.element(BPF_MAP_DELETE_ELEM, addr, 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            result => result,
        }
    }

    /// `command` on `addr`'s key in the map; `value` points at the value
    /// (updates) or is 0 (deletes). Flags 0: `BPF_ANY`.
    fn element(&self, command: libc::c_long, addr: IpAddr, value: u64) -> io::Result<()> {
        let key = key_of(addr);
        let mut attr = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value,
            flags: 0,
        };
        bpf(command, &mut attr).map(drop)
    }
}

/// `union bpf_attr` for `BPF_MAP_CREATE` (the fields up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for the element commands.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD` (the fields up to `prog_name`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is the `union bpf_attr` prefix this command reads (the
    // kernel zero-extends a shorter attr), and every pointer in it is valid
    // for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn name(text: &str) -> [u8; 16] {
    let mut name = [0u8; 16];
    let n = text.len().min(15);
    name[..n].copy_from_slice(&text.as_bytes()[..n]);
    name
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us alone.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn create_map(capacity: u32) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_HASH,
        key_size: KEY_LEN as u32,
        value_size: 1,
        max_entries: capacity,
        // Few sessions are congested at once: the map holds room for all
        // of them without allocating it up front (a preallocated hash map
        // of 200,000 entries is over 10 MB of kernel memory).
        map_flags: BPF_F_NO_PREALLOC,
        map_name: name("sstpd_congested"),
        ..MapCreateAttr::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

fn load_program(insns: &[Insn]) -> Result<OwnedFd, DropFilterError> {
    let license = c"GPL";
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name("sstpd_drop"),
        ..ProgLoadAttr::default()
    };
    let loaded = bpf(BPF_PROG_LOAD, &mut attr);
    match loaded {
        Ok(fd) => Ok(owned(fd)),
        Err(error) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let log = String::from_utf8_lossy(&log[..end]);
            // The verifier's verdict is at the end of its log.
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            let log = tail.into_iter().rev().collect::<Vec<_>>().join("; ");
            Err(DropFilterError::Program { error, log })
        }
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Opcodes (`include/uapi/linux/bpf.h`, `bpf_common.h`).
const MOV64_REG: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ADD64_IMM: u8 = 0x07; // BPF_ALU64 | BPF_ADD | BPF_K
const RSH64_IMM: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const ST_DW_IMM: u8 = 0x7a; // BPF_ST | BPF_MEM | BPF_DW
const ST_B_IMM: u8 = 0x72; // BPF_ST | BPF_MEM | BPF_B
const LDX_B: u8 = 0x71; // BPF_LDX | BPF_MEM | BPF_B
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_DW | BPF_IMM
const JEQ_IMM: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_IMM: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JA: u8 = 0x05; // BPF_JMP | BPF_JA
const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
/// `src_reg` of a `LD_IMM64` whose immediate is a map's fd.
const PSEUDO_MAP_FD: u8 = 1;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R6: u8 = 6;
const R7: u8 = 7;
const R10: u8 = 10;

/// The key on the stack, at the frame pointer minus 16 (16 bytes zeroed).
const KEY: i16 = -16;

/// The filter: returns 0 (drop) for a packet whose destination key is in
/// `map`, else the packet's length (keep it whole).
///
/// ```text
///  r6 = ctx; zero 16 bytes at fp-16
///  skb_load_bytes(ctx, 0, fp-16, 1) or pass; r7 = version nibble
///  v4: key[0] = 4; skb_load_bytes(ctx, 16, fp-15, 4) or pass
///  v6: key[0] = 6; skb_load_bytes(ctx, 24, fp-15, 8) or pass
///  map_lookup_elem(map, fp-16) == NULL ? pass : return 0
///  pass: return skb->len
/// ```
pub fn program(map: RawFd) -> Vec<Insn> {
    // Labels, as instruction indexes (checked in the tests).
    const V4: i16 = 15;
    const V6: i16 = 19;
    const LOAD: i16 = 22;
    const PASS: i16 = 35;
    // A jump at `at` to `to`: offsets count from the next instruction.
    const fn to(at: i16, target: i16) -> i16 {
        target - at - 1
    }
    vec![
        /* 0 */ insn(MOV64_REG, R6, R1, 0, 0),
        /* 1 */ insn(ST_DW_IMM, R10, 0, KEY, 0),
        /* 2 */ insn(ST_DW_IMM, R10, 0, KEY + 8, 0),
        /* 3 */ insn(MOV64_REG, R1, R6, 0, 0),
        /* 4 */ insn(MOV64_IMM, R2, 0, 0, 0),
        /* 5 */ insn(MOV64_REG, R3, R10, 0, 0),
        /* 6 */ insn(ADD64_IMM, R3, 0, 0, KEY as i32),
        /* 7 */ insn(MOV64_IMM, R4, 0, 0, 1),
        /* 8 */ insn(CALL, 0, 0, 0, HELPER_SKB_LOAD_BYTES),
        /* 9 */ insn(JNE_IMM, R0, 0, to(9, PASS), 0),
        /* 10 */ insn(LDX_B, R7, R10, KEY, 0),
        /* 11 */ insn(RSH64_IMM, R7, 0, 0, 4),
        /* 12 */ insn(JEQ_IMM, R7, 0, to(12, V4), 4),
        /* 13 */ insn(JEQ_IMM, R7, 0, to(13, V6), 6),
        /* 14 */ insn(JA, 0, 0, to(14, PASS), 0),
        // V4: the destination address, bytes 16..20 of the header.
        /* 15 */
        insn(ST_B_IMM, R10, 0, KEY, 4),
        /* 16 */ insn(MOV64_IMM, R2, 0, 0, 16),
        /* 17 */ insn(MOV64_IMM, R4, 0, 0, 4),
        /* 18 */ insn(JA, 0, 0, to(18, LOAD), 0),
        // V6: the destination's /64, bytes 24..32 of the header.
        /* 19 */
        insn(ST_B_IMM, R10, 0, KEY, 6),
        /* 20 */ insn(MOV64_IMM, R2, 0, 0, 24),
        /* 21 */ insn(MOV64_IMM, R4, 0, 0, 8),
        // LOAD: the address bytes behind the version, then the lookup.
        /* 22 */
        insn(MOV64_REG, R1, R6, 0, 0),
        /* 23 */ insn(MOV64_REG, R3, R10, 0, 0),
        /* 24 */ insn(ADD64_IMM, R3, 0, 0, KEY as i32 + 1),
        /* 25 */ insn(CALL, 0, 0, 0, HELPER_SKB_LOAD_BYTES),
        /* 26 */ insn(JNE_IMM, R0, 0, to(26, PASS), 0),
        /* 27 */ insn(LD_IMM64, R1, PSEUDO_MAP_FD, 0, map),
        /* 28 */ insn(0, 0, 0, 0, 0),
        /* 29 */ insn(MOV64_REG, R2, R10, 0, 0),
        /* 30 */ insn(ADD64_IMM, R2, 0, 0, KEY as i32),
        /* 31 */ insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
        /* 32 */ insn(JEQ_IMM, R0, 0, to(32, PASS), 0),
        /* 33 */ insn(MOV64_IMM, R0, 0, 0, 0),
        /* 34 */ insn(EXIT, 0, 0, 0, 0),
        // PASS: keep the packet whole (`__sk_buff.len`, offset 0).
        /* 35 */
        insn(LDX_W, R0, R6, 0, 0),
        /* 36 */ insn(EXIT, 0, 0, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn keys_carry_the_version_and_the_routed_part_of_the_address() {
        assert_eq!(
            key_of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
            [4, 10, 0, 0, 7, 0, 0, 0, 0]
        );
        let a: Ipv6Addr = "2001:db8:1:2::5".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(key_of(a.into()), key_of(b.into()), "one key per /64");
        assert_eq!(key_of(a.into())[0], 6);
        // An IPv6 /64 that starts with an IPv4 address's bytes is another key.
        let v6: Ipv6Addr = "a00:7::".parse().unwrap();
        assert_ne!(key_of(v6.into()), key_of(Ipv4Addr::new(10, 0, 0, 7).into()));
    }

    #[test]
    fn the_program_jumps_land_on_their_labels() {
        let prog = program(3);
        assert_eq!(prog.len(), 37);
        let target = |at: usize| (at as i64 + 1 + i64::from(prog[at].off)) as usize;
        // Every jump to PASS lands on the `skb->len` load.
        for at in [9, 14, 26, 32] {
            assert_eq!(prog[target(at)].code, LDX_W, "jump at {at}");
        }
        assert_eq!(prog[target(12)], insn(ST_B_IMM, R10, 0, KEY, 4));
        assert_eq!(prog[target(13)], insn(ST_B_IMM, R10, 0, KEY, 6));
        assert_eq!(prog[target(18)], insn(MOV64_REG, R1, R6, 0, 0));
        assert_eq!(prog[27].imm, 3, "the map's fd");
    }
}
