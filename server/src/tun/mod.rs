//! The multi-queue TUN device that carries tunnel IP packets to and from the
//! kernel.
//!
//! One device, one queue per worker: every queue is its own file descriptor
//! on `/dev/net/tun`, attached with `TUNSETIFF` under the same name and
//! `IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE` (Linux
//! `Documentation/networking/tuntap.rst`, "Multiqueue tuntap interface").
//! A read returns exactly one IP packet, a write injects exactly one.
//!
//! The device is configured without shelling out: MTU, IPv4 address and
//! prefix, IPv6 addresses and the link state through the classic interface
//! ioctls (`SIOCSIFMTU`, `SIOCSIFADDR`/`SIOCSIFNETMASK`, `SIOCSIFADDR` with
//! `struct in6_ifreq`, `SIOCSIFFLAGS`, see netdevice(7)). The control
//! sockets are opened when the device is created, so configuration applies
//! in the network namespace the device lives in, whatever thread calls it.
//!
//! The device is not persistent: the kernel removes it when the last queue
//! descriptor is closed.
//!
//! # Using a queue with io_uring
//!
//! Queue descriptors are opened `O_NONBLOCK`, and [`UringQueue`] drives
//! them. io_uring decides per file whether an operation can be tried
//! without blocking; a TUN queue qualifies when it is non-blocking (the tun
//! driver of Debian 12's 6.1 kernel does not mark its files `FMODE_NOWAIT`).
//! Measured with 64 writes submitted at once and 8 reads in flight
//! (December 2026):
//!
//! | kernel | queue | writes | reads |
//! |---|---|---|---|
//! | 6.1 (Debian 12) | blocking | handed to io-wq threads, run in parallel: 621 of 640 packets out of order | io-wq threads, each parked in `read` |
//! | 6.1 | `O_NONBLOCK` | done at submission, in order | parked on the poll list, in order |
//! | 6.18 | either | done at submission, in order | parked on the poll list, in order |
//!
//! So a blocking queue reorders the packets of a batch on 6.1, and every
//! read in flight costs a kernel thread there. Opening with `O_NONBLOCK`
//! costs nothing on 6.18. With tokio-uring:
//!
//! ```ignore
//! let queue = UringQueue::new(device.take_queues().remove(0));
//! let (result, buf) = queue.read(Vec::with_capacity(65_536)).await;      // one packet
//! let (result, buf) = queue.file().write_at(packet, 0).submit().await;  // one packet
//! ```
//!
//! The offset is ignored (a TUN fd is a stream); pass 0. A plain `read(2)`
//! on a queue returns `EAGAIN` when nothing waits: poll it first.

mod bpf;
pub mod drop_filter;
pub mod offload;
mod queue;
pub mod routes;
pub mod steering;
mod uring;

pub use queue::{PacketQueue, SMALL_PACKET};
pub use uring::UringQueue;

use std::ffi::CStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use socket2::{Domain, Socket, Type};

/// The kernel's limit on queues per TUN device (`MAX_TAP_QUEUES`).
pub const MAX_QUEUES: usize = 256;

/// The kernel's interface name limit, including the terminating NUL.
const IFNAMSIZ: usize = libc::IFNAMSIZ;

/// How to create the TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunOptions {
    /// Interface name (at most 15 bytes), or a template such as `"sstp%d"`
    /// for which the kernel picks the first free number.
    pub name: String,
    /// Number of queues (descriptors), normally one per worker; 1..=256.
    pub queues: usize,
    /// `IFF_NAPI`: the kernel processes packets written to the device in
    /// NAPI context, batching them like a real NIC's receive path.
    pub napi: bool,
    /// `IFF_VNET_HDR`: every packet read or written is prefixed with a
    /// `struct virtio_net_hdr` (GSO/GRO metadata). Off by default; the
    /// workers read and write the header when `tun.offload = "auto"` and
    /// [`TunDevice::set_offloads`] succeeded.
    pub vnet_hdr: bool,
}

impl TunOptions {
    /// `queues` queues on a device named `name`, without NAPI or vnet headers.
    pub fn new(name: impl Into<String>, queues: usize) -> Self {
        TunOptions {
            name: name.into(),
            queues,
            napi: false,
            vnet_hdr: false,
        }
    }
}

/// What went wrong creating or configuring the TUN device.
#[derive(Debug)]
#[non_exhaustive]
pub enum TunError {
    /// `/dev/net/tun` is missing or the tun driver is not loaded.
    DriverMissing(io::Error),
    /// The operation needs `CAP_NET_ADMIN` in the device's network namespace.
    NeedsCapNetAdmin {
        /// What was attempted.
        operation: &'static str,
    },
    /// An interface with this name exists already.
    NameInUse {
        /// The name.
        name: String,
    },
    /// The name is empty, too long, or has a character interfaces cannot have.
    InvalidName {
        /// The name.
        name: String,
    },
    /// The queue count is 0 or above [`MAX_QUEUES`].
    InvalidQueueCount {
        /// The count given.
        queues: usize,
    },
    /// The kernel rejected the MTU (too small or too large for the device).
    InvalidMtu {
        /// The MTU given.
        mtu: u32,
    },
    /// A prefix length longer than the address.
    InvalidPrefixLength {
        /// The prefix length given.
        prefix_len: u8,
    },
    /// IPv6 is not available (kernel without IPv6, or disabled on the device).
    Ipv6Unavailable,
    /// The device no longer exists.
    NoSuchDevice {
        /// The name.
        name: String,
    },
    /// Any other failure of a system call.
    Os {
        /// What was attempted.
        operation: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl TunError {
    /// A short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            TunError::DriverMissing(_) => "tun_driver_missing",
            TunError::NeedsCapNetAdmin { .. } => "needs_cap_net_admin",
            TunError::NameInUse { .. } => "name_in_use",
            TunError::InvalidName { .. } => "invalid_name",
            TunError::InvalidQueueCount { .. } => "invalid_queue_count",
            TunError::InvalidMtu { .. } => "invalid_mtu",
            TunError::InvalidPrefixLength { .. } => "invalid_prefix_length",
            TunError::Ipv6Unavailable => "ipv6_unavailable",
            TunError::NoSuchDevice { .. } => "no_such_device",
            TunError::Os { .. } => "os_error",
        }
    }

    /// Maps an error of an ioctl on the device to the most telling variant.
    fn from_ioctl(operation: &'static str, name: &str, source: io::Error) -> TunError {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => TunError::NeedsCapNetAdmin { operation },
            Some(libc::ENODEV) => TunError::NoSuchDevice { name: name.into() },
            _ => TunError::Os { operation, source },
        }
    }
}

impl fmt::Display for TunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunError::DriverMissing(e) => write!(
                f,
                "TUN driver missing: cannot open /dev/net/tun ({e}); load the `tun` module"
            ),
            TunError::NeedsCapNetAdmin { operation } => {
                write!(
                    f,
                    "{operation} needs CAP_NET_ADMIN (run as root or grant the capability)"
                )
            }
            TunError::NameInUse { name } => write!(f, "interface name {name:?} is already in use"),
            TunError::InvalidName { name } => write!(
                f,
                "invalid interface name {name:?} (1 to 15 bytes, no '/', ':' or whitespace)"
            ),
            TunError::InvalidQueueCount { queues } => {
                write!(f, "invalid TUN queue count {queues} (1 to {MAX_QUEUES})")
            }
            TunError::InvalidMtu { mtu } => write!(f, "MTU {mtu} rejected by the kernel"),
            TunError::InvalidPrefixLength { prefix_len } => {
                write!(f, "invalid prefix length /{prefix_len}")
            }
            TunError::Ipv6Unavailable => f.write_str("IPv6 is not available on this device"),
            TunError::NoSuchDevice { name } => write!(f, "interface {name:?} does not exist"),
            TunError::Os { operation, source } => write!(f, "{operation} failed: {source}"),
        }
    }
}

impl std::error::Error for TunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TunError::DriverMissing(e) | TunError::Os { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// The TUN flags the kernel reports for the device (`TUNGETIFF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunFlags {
    /// `IFF_MULTI_QUEUE`.
    pub multi_queue: bool,
    /// `IFF_NAPI`.
    pub napi: bool,
    /// `IFF_VNET_HDR`.
    pub vnet_hdr: bool,
    /// `IFF_NO_PI`: packets carry no 4-byte protocol-information prefix.
    pub no_packet_info: bool,
    /// `IFF_PERSIST`: the device outlives its descriptors.
    pub persistent: bool,
}

/// An open multi-queue TUN device: its queue descriptors and the sockets
/// used to configure it.
pub struct TunDevice {
    name: String,
    queues: Vec<File>,
    /// An `AF_INET` datagram socket in the device's namespace, for ioctls.
    inet: Socket,
    /// The same for `AF_INET6`, absent when the kernel has no IPv6.
    inet6: Option<Socket>,
}

impl fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("queues", &self.queues.len())
            .finish()
    }
}

impl TunDevice {
    /// Creates the device with `options.queues` queues in the calling
    /// thread's network namespace.
    ///
    /// The first queue is attached with `IFF_TUN_EXCL`, so an existing
    /// interface of the same name (a leftover persistent TUN device, or any
    /// other link) is reported as [`TunError::NameInUse`] rather than joined.
    pub fn create(options: &TunOptions) -> Result<TunDevice, TunError> {
        validate_name(&options.name)?;
        if options.queues == 0 || options.queues > MAX_QUEUES {
            return Err(TunError::InvalidQueueCount {
                queues: options.queues,
            });
        }
        let inet = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(|source| TunError::Os {
            operation: "open AF_INET control socket",
            source,
        })?;
        let inet6 = Socket::new(Domain::IPV6, Type::DGRAM, None).ok();

        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
        if options.napi {
            flags |= libc::IFF_NAPI;
        }
        if options.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        let mut name = options.name.clone();
        let mut queues = Vec::with_capacity(options.queues);
        for index in 0..options.queues {
            let exclusive = if index == 0 { libc::IFF_TUN_EXCL } else { 0 };
            let (queue, actual_name) = attach_queue(&name, flags | exclusive)?;
            name = actual_name;
            queues.push(queue);
        }
        Ok(TunDevice {
            name,
            queues,
            inet,
            inet6,
        })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Attaches the [`drop_filter::DropFilter`] to this device, with room
    /// for `capacity` congested destinations.
    pub fn attach_drop_filter(
        &self,
        capacity: u32,
    ) -> Result<drop_filter::DropFilter, drop_filter::DropFilterError> {
        let queue = self.queues.first().map(|q| q.as_raw_fd()).unwrap_or(-1);
        drop_filter::DropFilter::attach(queue, capacity)
    }

    /// Attaches the [`steering::Steering`] to this device, with room for
    /// `capacity` destinations.
    pub fn attach_steering(
        &self,
        capacity: u32,
    ) -> Result<steering::Steering, steering::SteeringError> {
        let queue = self.queues.first().map(|q| q.as_raw_fd()).unwrap_or(-1);
        steering::Steering::attach(queue, capacity)
    }

    /// The queues still held by this handle.
    pub fn queues(&self) -> &[File] {
        &self.queues
    }

    /// Takes the queue descriptors, one per worker. The handle keeps working
    /// for configuration; the device goes away when every queue is closed.
    pub fn take_queues(&mut self) -> Vec<File> {
        std::mem::take(&mut self.queues)
    }

    fn request(&self) -> libc::ifreq {
        ifreq_for(&self.name)
    }

    fn ioctl(
        &self,
        socket: &Socket,
        request: libc::c_ulong,
        ifr: &mut libc::ifreq,
        operation: &'static str,
    ) -> Result<(), TunError> {
        // SAFETY: every caller passes an `SIOC*IF*` request, all of which
        // take a `struct ifreq`.
        unsafe { ioctl_with(socket.as_raw_fd(), request as libc::Ioctl, ifr) }
            .map_err(|source| TunError::from_ioctl(operation, &self.name, source))
    }

    /// The interface index.
    pub fn ifindex(&self) -> Result<u32, TunError> {
        let mut ifr = self.request();
        self.ioctl(&self.inet, libc::SIOCGIFINDEX, &mut ifr, "SIOCGIFINDEX")?;
        // SAFETY: SIOCGIFINDEX filled in `ifru_ifindex`.
        Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
    }

    /// Sets the MTU. IPv6 needs at least 1280 ([RFC 8200] 5); below that
    /// the kernel disables IPv6 on the device.
    pub fn set_mtu(&self, mtu: u32) -> Result<(), TunError> {
        let mut ifr = self.request();
        ifr.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| TunError::InvalidMtu { mtu })?;
        self.ioctl(&self.inet, libc::SIOCSIFMTU, &mut ifr, "SIOCSIFMTU")
            .map_err(|e| match e {
                TunError::Os { source, .. } if source.raw_os_error() == Some(libc::EINVAL) => {
                    TunError::InvalidMtu { mtu }
                }
                other => other,
            })
    }

    /// The current MTU.
    pub fn mtu(&self) -> Result<u32, TunError> {
        let mut ifr = self.request();
        self.ioctl(&self.inet, libc::SIOCGIFMTU, &mut ifr, "SIOCGIFMTU")?;
        // SAFETY: SIOCGIFMTU filled in `ifru_mtu`.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    /// Sets the device's IPv4 address and prefix length (which also adds the
    /// connected route for the prefix), like `ip addr add addr/prefix_len`.
    /// Replaces a previous IPv4 address.
    pub fn set_ipv4(&self, addr: Ipv4Addr, prefix_len: u8) -> Result<(), TunError> {
        if !(1..=32).contains(&prefix_len) {
            return Err(TunError::InvalidPrefixLength { prefix_len });
        }
        let mask = Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix_len)));
        let mut ifr = self.request();
        ifr.ifr_ifru.ifru_addr = sockaddr_v4(addr);
        self.ioctl(&self.inet, libc::SIOCSIFADDR, &mut ifr, "SIOCSIFADDR")?;
        let mut ifr = self.request();
        ifr.ifr_ifru.ifru_netmask = sockaddr_v4(mask);
        self.ioctl(&self.inet, libc::SIOCSIFNETMASK, &mut ifr, "SIOCSIFNETMASK")
    }

    /// Sets the far end of the point-to-point link (`SIOCSIFDSTADDR`), as
    /// `ip addr add LOCAL peer PEER` does: the kernel then routes `peer`
    /// through the device. Call it after [`set_ipv4`](Self::set_ipv4) with
    /// a /32; a client's tunnel has the server's address at the far end.
    pub fn set_ipv4_peer(&self, peer: Ipv4Addr) -> Result<(), TunError> {
        let mut ifr = self.request();
        ifr.ifr_ifru.ifru_dstaddr = sockaddr_v4(peer);
        self.ioctl(&self.inet, libc::SIOCSIFDSTADDR, &mut ifr, "SIOCSIFDSTADDR")
    }

    /// Adds an IPv6 address with its prefix length (and the prefix route).
    /// TUN devices are `IFF_NOARP`, so the address skips duplicate address
    /// detection; it stays tentative only until the kernel's link watcher
    /// has processed the link going up (normally at once, up to about a
    /// second on a busy host), and packets to it are dropped until then.
    pub fn add_ipv6(&self, addr: Ipv6Addr, prefix_len: u8) -> Result<(), TunError> {
        if !(1..=128).contains(&prefix_len) {
            return Err(TunError::InvalidPrefixLength { prefix_len });
        }
        let inet6 = self.inet6.as_ref().ok_or(TunError::Ipv6Unavailable)?;
        let mut request = libc::in6_ifreq {
            ifr6_addr: libc::in6_addr {
                s6_addr: addr.octets(),
            },
            ifr6_prefixlen: u32::from(prefix_len),
            ifr6_ifindex: self.ifindex()? as libc::c_int,
        };
        // SAFETY: SIOCSIFADDR on an AF_INET6 socket takes a `struct in6_ifreq`.
        unsafe {
            ioctl_with(
                inet6.as_raw_fd(),
                libc::SIOCSIFADDR as libc::Ioctl,
                &mut request,
            )
        }
        .map_err(|source| match source.raw_os_error() {
            // addrconf answers EACCES when IPv6 is disabled on the device.
            Some(libc::EACCES) | Some(libc::EAFNOSUPPORT) => TunError::Ipv6Unavailable,
            _ => TunError::from_ioctl("SIOCSIFADDR (IPv6)", &self.name, source),
        })
    }

    /// Brings the link up (or down).
    pub fn set_up(&self, up: bool) -> Result<(), TunError> {
        let mut ifr = self.request();
        self.ioctl(&self.inet, libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS")?;
        // SAFETY: SIOCGIFFLAGS filled in `ifru_flags`.
        let current = unsafe { ifr.ifr_ifru.ifru_flags };
        let up_flag = libc::IFF_UP as libc::c_short;
        ifr.ifr_ifru.ifru_flags = if up {
            current | up_flag
        } else {
            current & !up_flag
        };
        self.ioctl(&self.inet, libc::SIOCSIFFLAGS, &mut ifr, "SIOCSIFFLAGS")
    }

    /// Whether the link is administratively up.
    pub fn is_up(&self) -> Result<bool, TunError> {
        let mut ifr = self.request();
        self.ioctl(&self.inet, libc::SIOCGIFFLAGS, &mut ifr, "SIOCGIFFLAGS")?;
        // SAFETY: SIOCGIFFLAGS filled in `ifru_flags`.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        Ok(flags & libc::IFF_UP as libc::c_short != 0)
    }

    /// Lets the kernel hand over and take TCP super-packets, and UDP ones
    /// too when `uso` (offload::Segmenter and offload::Coalescer do the
    /// rest). The device must have been created with `vnet_hdr`. A kernel
    /// without USO refuses the whole request (`EINVAL`), so that is retried
    /// with TSO alone; [`TunOffloads`] says what was taken. Set through the
    /// first queue still held, before the queues are taken.
    pub fn set_offloads(&self, uso: bool) -> Result<TunOffloads, TunError> {
        let queue = self.queues.first().ok_or_else(|| TunError::Os {
            operation: "TUNSETOFFLOAD",
            source: io::Error::from_raw_os_error(libc::EBADF),
        })?;
        let tso = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        let set = |features: libc::c_uint| {
            // SAFETY: TUNSETOFFLOAD takes the feature bits as its argument.
            let result = unsafe {
                libc::ioctl(
                    queue.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    libc::c_ulong::from(features),
                )
            };
            if result < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        if uso && set(tso | libc::TUN_F_USO4 | libc::TUN_F_USO6).is_ok() {
            return Ok(TunOffloads {
                tso: true,
                uso: true,
            });
        }
        set(tso).map_err(|source| TunError::from_ioctl("TUNSETOFFLOAD", &self.name, source))?;
        Ok(TunOffloads {
            tso: true,
            uso: false,
        })
    }

    /// The TUN flags the kernel reports, read through the first queue still
    /// held (`None` once the queues were taken).
    pub fn flags(&self) -> Option<Result<TunFlags, TunError>> {
        let queue = self.queues.first()?;
        let mut ifr = self.request();
        // SAFETY: TUNGETIFF on a TUN descriptor fills a `struct ifreq`.
        let result = unsafe { ioctl_with(queue.as_raw_fd(), libc::TUNGETIFF, &mut ifr) };
        Some(
            result
                .map_err(|source| TunError::from_ioctl("TUNGETIFF", &self.name, source))
                .map(|()| {
                    // SAFETY: TUNGETIFF filled in `ifru_flags`.
                    let raw = libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags }) & 0xffff;
                    TunFlags {
                        multi_queue: raw & libc::IFF_MULTI_QUEUE != 0,
                        napi: raw & libc::IFF_NAPI != 0,
                        vnet_hdr: raw & libc::IFF_VNET_HDR != 0,
                        no_packet_info: raw & libc::IFF_NO_PI != 0,
                        persistent: raw & libc::IFF_PERSIST != 0,
                    }
                }),
        )
    }
}

/// The segmentation offloads the kernel took for the device
/// (`TUNSETOFFLOAD`, see [`TunDevice::set_offloads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunOffloads {
    /// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`: partial checksums and TCP
    /// super-packets both ways.
    pub tso: bool,
    /// `TUN_F_USO4 | TUN_F_USO6`: UDP super-packets (Linux 6.2 on).
    pub uso: bool,
}

/// Whether a TUN read error means the queue will never read again: the
/// device was deleted (its queues' files are detached: `EBADFD`; `EIO`
/// while it unregisters) or the descriptor is unusable.
pub fn queue_is_lost(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADFD | libc::EBADF | libc::EIO | libc::ENODEV | libc::ENXIO)
    )
}

/// Switches a queue descriptor between blocking (for plain `read(2)`
/// loops) and non-blocking (as opened, for io_uring and epoll).
pub fn set_nonblocking(queue: &File, nonblocking: bool) -> io::Result<()> {
    let fd = queue.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL take and return plain integers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `/dev/net/tun` and attaches it as a queue of `name` (creating the
/// device for the first queue). Returns the queue and the device's name.
fn attach_queue(name: &str, flags: libc::c_int) -> Result<(File, String), TunError> {
    let queue = OpenOptions::new()
        .read(true)
        .write(true)
        // Non-blocking, so that io_uring never hands its operations to
        // io-wq threads (module docs, "Using a queue with io_uring").
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                TunError::DriverMissing(e)
            }
            Some(libc::EPERM) | Some(libc::EACCES) => TunError::NeedsCapNetAdmin {
                operation: "opening /dev/net/tun",
            },
            _ => TunError::Os {
                operation: "open /dev/net/tun",
                source: e,
            },
        })?;
    let mut ifr = ifreq_for(name);
    // The kernel reads the flags as an unsigned short; IFF_TUN_EXCL is the
    // top bit, so the cast to `c_short` keeps the bit pattern.
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF takes a `struct ifreq`.
    unsafe { ioctl_with(queue.as_raw_fd(), libc::TUNSETIFF, &mut ifr) }.map_err(|source| {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => TunError::NeedsCapNetAdmin {
                operation: "creating a TUN device",
            },
            Some(libc::EBUSY) => TunError::NameInUse { name: name.into() },
            _ => TunError::Os {
                operation: "TUNSETIFF",
                source,
            },
        }
    })?;
    // The kernel wrote back the actual name (a `%d` template is resolved).
    let raw: Vec<u8> = ifr.ifr_name.iter().map(|&c| c as u8).collect();
    let actual = CStr::from_bytes_until_nul(&raw)
        .ok()
        .and_then(|c| c.to_str().ok())
        .unwrap_or(name)
        .to_owned();
    Ok((queue, actual))
}

/// The kernel's `dev_valid_name`: 1..=15 bytes, not `.` or `..`, no `/`,
/// `:` or whitespace (and no NUL, which would cut the name short).
fn validate_name(name: &str) -> Result<(), TunError> {
    let valid = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if valid {
        Ok(())
    } else {
        Err(TunError::InvalidName { name: name.into() })
    }
}

/// A zeroed `struct ifreq` naming `name` (validated to fit).
fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain data (integers, arrays, a raw pointer in a
    // union), for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.as_bytes().iter().take(IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    ifr
}

/// A `struct sockaddr` holding a `sockaddr_in` for `addr`, port 0.
fn sockaddr_v4(addr: Ipv4Addr) -> libc::sockaddr {
    let mut data = [0 as libc::c_char; 14];
    // sockaddr_in after the family: 2 bytes port, then the address.
    for (dst, &src) in data[2..6].iter_mut().zip(addr.octets().iter()) {
        *dst = src as libc::c_char;
    }
    libc::sockaddr {
        sa_family: libc::AF_INET as libc::sa_family_t,
        sa_data: data,
    }
}

/// `ioctl(fd, request, arg)`, mapping -1 to the OS error.
///
/// # Safety
/// `T` must be the type `request` reads and writes.
unsafe fn ioctl_with<T>(fd: RawFd, request: libc::Ioctl, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a valid, exclusive pointer to a `T`, which the caller
    // guarantees is what `request` expects.
    if unsafe { libc::ioctl(fd, request, arg as *mut T) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The kernel's counters of a device, from `/proc/net/dev` of the network
/// namespace it was opened in: the file keeps that namespace, so the
/// counters can be read from any thread later (the metrics exporter's).
#[derive(Debug)]
pub struct DeviceStats {
    file: File,
    /// `"<name>:"`, the start of the device's line.
    prefix: String,
}

impl DeviceStats {
    /// Opens the counters of device `name` in the calling thread's network
    /// namespace.
    pub fn open(name: &str) -> io::Result<DeviceStats> {
        let file = File::open("/proc/thread-self/net/dev")?;
        let stats = DeviceStats {
            file,
            prefix: format!("{name}:"),
        };
        stats
            .tx_dropped()
            .ok_or_else(|| io::Error::other(format!("no line for {name} in /proc/net/dev")))?;
        Ok(stats)
    }

    /// Packets the kernel dropped on their way to the device (`tx_dropped`),
    /// or `None` when the device is gone (or its line lies beyond the
    /// first MiB of the table).
    pub fn tx_dropped(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut text = vec![0u8; 16 * 1024];
        let mut len = 0;
        // A sequence file: read from offset 0 gives the table afresh. It
        // holds a line (about 120 bytes) per device of the namespace.
        loop {
            if len == text.len() {
                if len >= MAX_DEVICE_TABLE {
                    break;
                }
                text.resize(len * 2, 0);
            }
            match self.file.read_at(&mut text[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(_) => return None,
            }
        }
        let text = std::str::from_utf8(&text[..len]).ok()?;
        parse_tx_dropped(text, &self.prefix)
    }
}

/// The most of `/proc/net/dev` [`DeviceStats`] reads: about 8,000
/// devices' lines.
const MAX_DEVICE_TABLE: usize = 1 << 20;

/// `tx_dropped` from the device's line of `/proc/net/dev`: after the
/// name, eight receive counters, then transmit bytes, packets, errors and
/// drops.
fn parse_tx_dropped(table: &str, prefix: &str) -> Option<u64> {
    let line = table
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))?;
    line.split_whitespace().nth(11)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_dropped_is_the_twelfth_counter_of_the_device_line() {
        let table = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:   71400     850    0    0    0     0          0         0    71400     850    0    0    0     0       0          0\n \
sstp0: 9000      10    0    0    0     0          0         0     1234      12    0   77    0     0       0          0\n";
        assert_eq!(parse_tx_dropped(table, "sstp0:"), Some(77));
        assert_eq!(parse_tx_dropped(table, "lo:"), Some(0));
        assert_eq!(parse_tx_dropped(table, "sstp1:"), None);
    }

    /// The table is read whole however many devices come first, up to
    /// [`MAX_DEVICE_TABLE`]; a line beyond it reads as no counters.
    #[test]
    fn a_long_device_table_is_read_to_its_bound() {
        let stats_after = |filler_lines: usize| {
            let mut table = String::new();
            for i in 0..filler_lines {
                table.push_str(&format!("veth{i:06}: {}\n", "0 ".repeat(16)));
            }
            table.push_str("sstp0: 1 2 3 4 5 6 7 8 9 10 11 42 13 14 15 16\n");
            let path = std::env::temp_dir().join(format!(
                "sstpd-devstats-{}-{filler_lines}",
                std::process::id()
            ));
            std::fs::write(&path, &table).unwrap();
            let stats = DeviceStats {
                file: File::open(&path).unwrap(),
                prefix: "sstp0:".into(),
            };
            std::fs::remove_file(&path).unwrap();
            (table.len(), stats.tx_dropped())
        };
        let (len, read) = stats_after(2_000);
        assert!(len > 64 * 1024, "past the first buffer: {len}");
        assert_eq!(read, Some(42));
        let (len, read) = stats_after(MAX_DEVICE_TABLE / 40);
        assert!(len > MAX_DEVICE_TABLE, "past the bound: {len}");
        assert_eq!(read, None);
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        for good in ["sstp0", "tun%d", "a", "x23456789012345", "wg-pool_1.v4"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "x234567890123456",
            "a/b",
            "a:1",
            "a b",
            "a\tb",
            "a\0",
        ] {
            assert!(
                matches!(validate_name(bad), Err(TunError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ifreq_and_sockaddr_encoding() {
        let ifr = ifreq_for("sstp7");
        let name: Vec<u8> = ifr.ifr_name.iter().map(|&c| c as u8).collect();
        assert_eq!(&name[..6], b"sstp7\0");
        let sa = sockaddr_v4(Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        let data: Vec<u8> = sa.sa_data.iter().map(|&c| c as u8).collect();
        assert_eq!(data, [0, 0, 10, 99, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn invalid_options_are_rejected_before_any_syscall() {
        let error = TunDevice::create(&TunOptions::new("sstp0", 0)).unwrap_err();
        assert!(matches!(error, TunError::InvalidQueueCount { queues: 0 }));
        let error = TunDevice::create(&TunOptions::new("sstp0", MAX_QUEUES + 1)).unwrap_err();
        assert!(matches!(error, TunError::InvalidQueueCount { queues: 257 }));
        assert_eq!(error.as_str(), "invalid_queue_count");
        let error = TunDevice::create(&TunOptions::new("bad name", 1)).unwrap_err();
        assert_eq!(error.as_str(), "invalid_name");
        assert!(error.to_string().contains("bad name"));
    }
}
