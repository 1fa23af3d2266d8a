//! The BPF plumbing of the TUN device's two programs, the drop filter
//! ([`super::drop_filter`]) and the queue steering ([`super::steering`]):
//! a hash map keyed by a packet's destination, the socket-filter program
//! that looks the destination up, and the `bpf(2)` commands that make them.
//!
//! The key is nine bytes: the IP version, then the destination's first
//! four (IPv4, the session's address) or eight bytes (IPv6, the session's
//! /64), the rest zero. Both programs read the packet with
//! `bpf_skb_load_bytes`, which fails cleanly on a short packet, and share
//! their first 33 instructions ([`destination_program`]); they differ in
//! what a hit and a miss return.
//!
//! Written here rather than with a crate: aya and libbpf-rs load programs
//! from an ELF object that a BPF toolchain (clang or bpf-linker) must build,
//! which the build would then need for a few dozen fixed instructions. The
//! four `bpf(2)` commands used (map create, program load, map update and
//! delete) have stable layouts (`include/uapi/linux/bpf.h`).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::metrics::Event;
use crate::proto::route::Ipv4Prefix;

/// `BPF_MAP_CREATE`, `BPF_MAP_UPDATE_ELEM`, `BPF_MAP_DELETE_ELEM`,
/// `BPF_PROG_LOAD` (`enum bpf_cmd`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_MAP_TYPE_HASH`, `BPF_MAP_TYPE_LPM_TRIE`,
/// `BPF_PROG_TYPE_SOCKET_FILTER`.
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
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

/// Which of the device's programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceProgram {
    /// `tun.drop_filter` (`TUNSETFILTEREBPF`).
    DropFilter,
    /// `tun.steering` (`TUNSETSTEERINGEBPF`).
    Steering,
}

impl DeviceProgram {
    fn request(self) -> (libc::Ioctl, &'static str) {
        match self {
            DeviceProgram::DropFilter => (libc::TUNSETFILTEREBPF, "TUNSETFILTEREBPF"),
            DeviceProgram::Steering => (libc::TUNSETSTEERINGEBPF, "TUNSETSTEERINGEBPF"),
        }
    }
}

/// The step of setting up a device program that the kernel refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachStep {
    /// `BPF_MAP_CREATE` (no BPF, no privilege, memory limit).
    Map,
    /// `BPF_PROG_LOAD`: the verifier's log says why.
    Program,
    /// The ioctl that attaches it to the device.
    Attach,
}

/// A device program the kernel refused, at which step, and why.
#[derive(Debug)]
pub struct AttachError {
    pub program: DeviceProgram,
    pub step: AttachStep,
    pub error: io::Error,
    /// The end of the verifier's log (for [`AttachStep::Program`]).
    pub log: String,
}

/// The step that failed, as its `tun_drop_filter_unavailable` or
/// `tun_steering_unavailable` counter.
impl From<&AttachError> for Event {
    fn from(e: &AttachError) -> Event {
        match (e.program, e.step) {
            (DeviceProgram::DropFilter, AttachStep::Map) => Event::TunDropFilterMapRefused,
            (DeviceProgram::DropFilter, AttachStep::Program) => Event::TunDropFilterProgramRefused,
            (DeviceProgram::DropFilter, AttachStep::Attach) => Event::TunDropFilterAttachRefused,
            (DeviceProgram::Steering, AttachStep::Map) => Event::TunSteeringMapRefused,
            (DeviceProgram::Steering, AttachStep::Program) => Event::TunSteeringProgramRefused,
            (DeviceProgram::Steering, AttachStep::Attach) => Event::TunSteeringAttachRefused,
        }
    }
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            AttachStep::Map => "creating the BPF map",
            AttachStep::Program => "loading the BPF program",
            AttachStep::Attach => self.program.request().1,
        };
        write!(f, "{step}: {}", self.error)?;
        if !self.log.is_empty() {
            write!(f, ": {}", self.log)?;
        }
        Ok(())
    }
}

impl std::error::Error for AttachError {}

/// `program`'s map refused by the kernel.
pub(crate) fn map_refused(program: DeviceProgram, error: io::Error) -> AttachError {
    AttachError {
        program,
        step: AttachStep::Map,
        error,
        log: String::new(),
    }
}

/// The maps a device program reads: one of destinations ([`key_of`]), and
/// an LPM trie of IPv4 prefixes it looks up when the first misses.
pub(crate) struct DestinationMaps {
    pub(crate) addresses: AddressMap,
    pub(crate) prefixes: PrefixMap,
}

/// Creates `program`'s two maps (room for `capacity` keys each, values of
/// `value_size` bytes), loads the instructions `build` makes for them
/// (the address map's fd, then the prefix map's), and attaches them to the
/// device of `queue` (any of its queues: the program is the device's).
/// The program's fd is returned to be kept, so that it outlives any
/// detach of the device.
pub(crate) fn attach_with_maps(
    program: DeviceProgram,
    queue: RawFd,
    (capacity, value_size): (u32, u32),
    build: impl FnOnce(RawFd, RawFd) -> Vec<Insn>,
) -> Result<(DestinationMaps, OwnedFd), AttachError> {
    let (addresses, prefixes) = match program {
        DeviceProgram::DropFilter => ("sstpd_congested", "sstpd_cong_pfx"),
        DeviceProgram::Steering => ("sstpd_owners", "sstpd_routes"),
    };
    let refused = |e| map_refused(program, e);
    let maps = DestinationMaps {
        addresses: AddressMap::create(addresses, capacity, value_size).map_err(refused)?,
        prefixes: PrefixMap::create(prefixes, capacity, value_size).map_err(refused)?,
    };
    let insns = build(maps.addresses.fd(), maps.prefixes.fd());
    let loaded = attach_program(program, queue, &insns)?;
    Ok((maps, loaded))
}

/// Loads `insns` as `program` and attaches it to the device of `queue`;
/// the program's fd is to be kept.
pub(crate) fn attach_program(
    program: DeviceProgram,
    queue: RawFd,
    insns: &[Insn],
) -> Result<OwnedFd, AttachError> {
    let refused = |step, error, log| AttachError {
        program,
        step,
        error,
        log,
    };
    let program_name = match program {
        DeviceProgram::DropFilter => "sstpd_drop",
        DeviceProgram::Steering => "sstpd_steer",
    };
    let loaded = load_program(program_name, insns)
        .map_err(|Refused { error, log }| refused(AttachStep::Program, error, log))?;
    attach(queue, program.request().0, &loaded)
        .map_err(|e| refused(AttachStep::Attach, e, String::new()))?;
    Ok(loaded)
}

/// A longest-prefix-match map from IPv4 prefixes to values of a fixed
/// size (`struct bpf_lpm_trie_key`: the prefix length as a host-order
/// u32, then the four address bytes). The kernel allocates its entries as
/// they are inserted (an LPM trie is never preallocated).
#[derive(Debug)]
pub(crate) struct PrefixMap {
    fd: OwnedFd,
}

/// Length of a [`PrefixMap`] key.
const PREFIX_KEY_LEN: usize = 8;

impl PrefixMap {
    pub(crate) fn create(name: &str, capacity: u32, value_size: u32) -> io::Result<PrefixMap> {
        let shape = (BPF_MAP_TYPE_LPM_TRIE, PREFIX_KEY_LEN, value_size);
        create_map(name, shape, capacity).map(|fd| PrefixMap { fd })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sets the value of `prefix`. Fails when the trie is full (`ENOSPC`,
    /// where a hash map says `E2BIG`).
    pub(crate) fn update(&self, prefix: Ipv4Prefix, value: &[u8]) -> io::Result<()> {
        let key = prefix_key(prefix.addr(), prefix.prefix_len());
        element(&self.fd, BPF_MAP_UPDATE_ELEM, &key, value.as_ptr() as u64)
    }

    /// Removes `prefix`; one that is not there is no error.
    pub(crate) fn delete(&self, prefix: Ipv4Prefix) -> io::Result<()> {
        delete_element(&self.fd, &prefix_key(prefix.addr(), prefix.prefix_len()))
    }
}

/// A map named `name` of `map_type` with keys of `key_len` bytes and
/// values of `value_size`, room for `capacity` entries, allocated as they
/// are inserted: room for every session without taking it up front (a
/// preallocated hash map of 200,000 entries is over 10 MB of kernel
/// memory; an LPM trie is never preallocated).
fn create_map(
    name: &str,
    (map_type, key_len, value_size): (u32, usize, u32),
    capacity: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size: key_len as u32,
        value_size,
        max_entries: capacity.max(1),
        map_flags: BPF_F_NO_PREALLOC,
        map_name: object_name(name),
        ..MapCreateAttr::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

fn prefix_key(addr: Ipv4Addr, len: u8) -> [u8; PREFIX_KEY_LEN] {
    let mut key = [0u8; PREFIX_KEY_LEN];
    key[..4].copy_from_slice(&u32::from(len).to_ne_bytes());
    key[4..].copy_from_slice(&addr.octets());
    key
}

/// `command` on the element `key` of the map `fd`; `value` points at the
/// value (updates) or is 0 (deletes). Flags 0: `BPF_ANY`.
fn element(fd: &OwnedFd, command: libc::c_long, key: &[u8], value: u64) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value,
        flags: 0,
    };
    bpf(command, &mut attr).map(drop)
}

/// Deletes the element `key` of the map `fd`; a key that is not there is
/// no error.
fn delete_element(fd: &OwnedFd, key: &[u8]) -> io::Result<()> {
    match element(fd, BPF_MAP_DELETE_ELEM, key, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        result => result,
    }
}

/// A hash map from destination keys ([`key_of`]) to values of a fixed
/// size, allocated as entries are inserted. Updates are single system
/// calls, safe from any thread.
#[derive(Debug)]
pub(crate) struct AddressMap {
    fd: OwnedFd,
}

impl AddressMap {
    /// A map named `name` with room for `capacity` keys and values of
    /// `value_size` bytes.
    pub(crate) fn create(name: &str, capacity: u32, value_size: u32) -> io::Result<AddressMap> {
        let shape = (BPF_MAP_TYPE_HASH, KEY_LEN, value_size);
        create_map(name, shape, capacity).map(|fd| AddressMap { fd })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sets `addr`'s value (its size the map's). Fails when the map is
    /// full (`E2BIG`).
    pub(crate) fn update(&self, addr: IpAddr, value: &[u8]) -> io::Result<()> {
        element(
            &self.fd,
            BPF_MAP_UPDATE_ELEM,
            &key_of(addr),
            value.as_ptr() as u64,
        )
    }

    /// Removes `addr`'s key; one that is not there is no error.
    pub(crate) fn delete(&self, addr: IpAddr) -> io::Result<()> {
        delete_element(&self.fd, &key_of(addr))
    }
}

/// Attaches `program` to the device of `queue` with `request`
/// (`TUNSETFILTEREBPF` or `TUNSETSTEERINGEBPF`: both read one int, the
/// program's fd).
fn attach(queue: RawFd, request: libc::Ioctl, program: &OwnedFd) -> io::Result<()> {
    let fd: libc::c_int = program.as_raw_fd();
    // SAFETY: both requests read one int from the pointer, which is valid
    // for the call.
    if unsafe { libc::ioctl(queue, request, &fd as *const libc::c_int) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// A BPF object's name: at most 15 bytes and a NUL.
fn object_name(text: &str) -> [u8; 16] {
    let mut name = [0u8; 16];
    let n = text.len().min(15);
    name[..n].copy_from_slice(&text.as_bytes()[..n]);
    name
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us alone.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// A socket-filter program the kernel refused: its error, and the end of
/// the verifier's log (where its verdict is).
#[derive(Debug)]
struct Refused {
    error: io::Error,
    log: String,
}

/// Loads `insns` as a socket-filter program named `name`.
fn load_program(name: &str, insns: &[Insn]) -> Result<OwnedFd, Refused> {
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
        prog_name: object_name(name),
        ..ProgLoadAttr::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(error) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let log = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            let log = tail.into_iter().rev().collect::<Vec<_>>().join("; ");
            Err(Refused { error, log })
        }
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub(crate) code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high one.
    regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

pub(crate) const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Opcodes (`include/uapi/linux/bpf.h`, `bpf_common.h`).
pub(crate) const MOV64_REG: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
pub(crate) const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
pub(crate) const ADD64_IMM: u8 = 0x07; // BPF_ALU64 | BPF_ADD | BPF_K
pub(crate) const RSH64_IMM: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
pub(crate) const XOR64_REG: u8 = 0xaf; // BPF_ALU64 | BPF_XOR | BPF_X
pub(crate) const ST_DW_IMM: u8 = 0x7a; // BPF_ST | BPF_MEM | BPF_DW
pub(crate) const ST_B_IMM: u8 = 0x72; // BPF_ST | BPF_MEM | BPF_B
const ST_W_IMM: u8 = 0x62; // BPF_ST | BPF_MEM | BPF_W
pub(crate) const LDX_B: u8 = 0x71; // BPF_LDX | BPF_MEM | BPF_B
pub(crate) const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_DW | BPF_IMM
const JEQ_IMM: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_IMM: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JA: u8 = 0x05; // BPF_JMP | BPF_JA
const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
pub(crate) const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
/// `src_reg` of a `LD_IMM64` whose immediate is a map's fd.
const PSEUDO_MAP_FD: u8 = 1;

pub(crate) const R0: u8 = 0;
pub(crate) const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
pub(crate) const R6: u8 = 6;
const R7: u8 = 7;
pub(crate) const R10: u8 = 10;

/// The offset of a jump at instruction `at` to `target`: it counts from
/// the next instruction.
const fn to(at: i16, target: i16) -> i16 {
    target - at - 1
}

/// The key on the stack, at the frame pointer minus 16 (16 bytes zeroed).
pub(crate) const KEY: i16 = -16;

/// Where a program built by [`destination_program`] has its miss path:
/// after the lookup (0..=32) and the two instructions of a hit.
pub(crate) const MISS: usize = 35;

/// A program that builds the packet's destination key on the stack at
/// [`KEY`], looks it up in `map`, and runs `hit` (with `r0` pointing at
/// the value) or, for a miss or a packet it cannot read, `miss` (with the
/// key as far as it was read, zeroes beyond). `r6` is the context.
///
/// ```text
///  0  r6 = ctx; zero 16 bytes at fp-16
///  3  skb_load_bytes(ctx, 0, fp-16, 1) or miss; r7 = version nibble
///     (a packet of another version misses with that byte in key[0])
/// 15  v4: key[0] = 4; skb_load_bytes(ctx, 16, fp-15, 4) or miss
/// 19  v6: key[0] = 6; skb_load_bytes(ctx, 24, fp-15, 8) or miss
/// 27  map_lookup_elem(map, fp-16) == NULL ? miss : hit
/// 33  hit (2 instructions)
/// 35  miss
/// ```
pub(crate) fn destination_program(map: RawFd, hit: [Insn; 2], miss: &[Insn]) -> Vec<Insn> {
    // Labels, as instruction indexes (checked in the tests).
    const V4: i16 = 15;
    const V6: i16 = 19;
    const LOAD: i16 = 22;
    const MISS_AT: i16 = MISS as i16;
    let mut program = vec![
        /* 0 */ insn(MOV64_REG, R6, R1, 0, 0),
        /* 1 */ insn(ST_DW_IMM, R10, 0, KEY, 0),
        /* 2 */ insn(ST_DW_IMM, R10, 0, KEY + 8, 0),
        /* 3 */ insn(MOV64_REG, R1, R6, 0, 0),
        /* 4 */ insn(MOV64_IMM, R2, 0, 0, 0),
        /* 5 */ insn(MOV64_REG, R3, R10, 0, 0),
        /* 6 */ insn(ADD64_IMM, R3, 0, 0, KEY as i32),
        /* 7 */ insn(MOV64_IMM, R4, 0, 0, 1),
        /* 8 */ insn(CALL, 0, 0, 0, HELPER_SKB_LOAD_BYTES),
        /* 9 */ insn(JNE_IMM, R0, 0, to(9, MISS_AT), 0),
        /* 10 */ insn(LDX_B, R7, R10, KEY, 0),
        /* 11 */ insn(RSH64_IMM, R7, 0, 0, 4),
        /* 12 */ insn(JEQ_IMM, R7, 0, to(12, V4), 4),
        /* 13 */ insn(JEQ_IMM, R7, 0, to(13, V6), 6),
        /* 14 */ insn(JA, 0, 0, to(14, MISS_AT), 0),
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
        /* 26 */ insn(JNE_IMM, R0, 0, to(26, MISS_AT), 0),
        /* 27 */ insn(LD_IMM64, R1, PSEUDO_MAP_FD, 0, map),
        /* 28 */ insn(0, 0, 0, 0, 0),
        /* 29 */ insn(MOV64_REG, R2, R10, 0, 0),
        /* 30 */ insn(ADD64_IMM, R2, 0, 0, KEY as i32),
        /* 31 */ insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
        /* 32 */ insn(JEQ_IMM, R0, 0, to(32, MISS_AT), 0),
    ];
    program.extend(hit);
    debug_assert_eq!(program.len(), MISS);
    program.extend_from_slice(miss);
    program
}

/// The prefix key on the stack, below the destination key: the length at
/// fp-24, the address at fp-20.
const PREFIX_KEY: i16 = -24;

/// For the miss path of a [`destination_program`]: an IPv4 packet's
/// destination (its key's first byte 4) looked up in the prefix map `map`
/// as a /32, running `hit` (with `r0` pointing at the value) on a match
/// and `miss` otherwise (an IPv6 or unreadable packet too). Uses `r6`, the
/// context the lookup keeps there.
///
/// ```text
///  0  key[0] != 4 ? miss
///  2  *(u32 *)(fp-24) = 32; skb_load_bytes(ctx, 16, fp-20, 4) or miss
/// 10  map_lookup_elem(map, fp-24) == NULL ? miss : hit
/// 16  hit (2 instructions)
/// 18  miss
/// ```
pub(crate) fn ipv4_prefix_lookup(map: RawFd, hit: [Insn; 2], miss: &[Insn]) -> Vec<Insn> {
    const MISS_AT: i16 = 18;
    let mut program = vec![
        /* 0 */ insn(LDX_B, R7, R10, KEY, 0),
        /* 1 */ insn(JNE_IMM, R7, 0, to(1, MISS_AT), 4),
        /* 2 */ insn(ST_W_IMM, R10, 0, PREFIX_KEY, 32),
        /* 3 */ insn(MOV64_REG, R1, R6, 0, 0),
        /* 4 */ insn(MOV64_IMM, R2, 0, 0, 16),
        /* 5 */ insn(MOV64_REG, R3, R10, 0, 0),
        /* 6 */ insn(ADD64_IMM, R3, 0, 0, PREFIX_KEY as i32 + 4),
        /* 7 */ insn(MOV64_IMM, R4, 0, 0, 4),
        /* 8 */ insn(CALL, 0, 0, 0, HELPER_SKB_LOAD_BYTES),
        /* 9 */ insn(JNE_IMM, R0, 0, to(9, MISS_AT), 0),
        /* 10 */ insn(LD_IMM64, R1, PSEUDO_MAP_FD, 0, map),
        /* 11 */ insn(0, 0, 0, 0, 0),
        /* 12 */ insn(MOV64_REG, R2, R10, 0, 0),
        /* 13 */ insn(ADD64_IMM, R2, 0, 0, PREFIX_KEY as i32),
        /* 14 */ insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
        /* 15 */ insn(JEQ_IMM, R0, 0, to(15, MISS_AT), 0),
    ];
    program.extend(hit);
    debug_assert_eq!(program.len(), MISS_AT as usize);
    program.extend_from_slice(miss);
    program
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
    fn the_lookups_jumps_land_on_their_labels() {
        let hit = [insn(MOV64_IMM, R0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
        let miss = [insn(MOV64_IMM, R0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0)];
        let prog = destination_program(3, hit, &miss);
        assert_eq!(prog.len(), MISS + 2);
        let target = |at: usize| (at as i64 + 1 + i64::from(prog[at].off)) as usize;
        // Every jump to the miss path lands on its first instruction.
        for at in [9, 14, 26, 32] {
            assert_eq!(target(at), MISS, "jump at {at}");
        }
        assert_eq!(prog[target(12)], insn(ST_B_IMM, R10, 0, KEY, 4));
        assert_eq!(prog[target(13)], insn(ST_B_IMM, R10, 0, KEY, 6));
        assert_eq!(prog[target(18)], insn(MOV64_REG, R1, R6, 0, 0));
        assert_eq!(prog[27].imm, 3, "the map's fd");
        assert_eq!(&prog[33..35], &hit);
    }

    #[test]
    fn the_prefix_lookups_jumps_land_on_its_miss() {
        let hit = [insn(MOV64_IMM, R0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)];
        let miss = [insn(MOV64_IMM, R0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0)];
        let prog = ipv4_prefix_lookup(4, hit, &miss);
        assert_eq!(prog.len(), 20);
        let target = |at: usize| (at as i64 + 1 + i64::from(prog[at].off)) as usize;
        for at in [1, 9, 15] {
            assert_eq!(target(at), 18, "jump at {at}");
        }
        assert_eq!(prog[10].imm, 4, "the map's fd");
        assert_eq!(&prog[16..18], &hit);
    }

    #[test]
    fn prefix_keys_are_the_length_then_the_address() {
        let key = prefix_key(Ipv4Addr::new(192, 0, 2, 0), 24);
        assert_eq!(&key[..4], &24u32.to_ne_bytes());
        assert_eq!(&key[4..], &[192, 0, 2, 0]);
    }
}
