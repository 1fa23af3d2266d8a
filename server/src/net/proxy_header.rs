//! The PROXY protocol header a load balancer sends before the client's
//! bytes (HAProxy's "The PROXY protocol", versions 1 and 2): read on the
//! accepted socket before TLS, bounded in size and time, and exactly (not
//! one byte of the TLS ClientHello behind it is consumed, so the handshake
//! and a kernel TLS hand-over see the stream as the client sent it).
//!
//! The bytes are parsed by the `ppp` crate; this module only frames them
//! ([`next_need`]: how many bytes the header has, from what has arrived)
//! and decides what the parsed header means for the connection
//! ([`interpret`]).
//!
//! * Version 2 (spec 2.2): a 16-byte fixed part whose last two bytes give
//!   the length of the rest; read exactly. The rest is bounded by
//!   [`V2_MAX_LEN`] (addresses and a few TLVs), longer is refused.
//! * Version 1 (spec 2.1): one text line of at most 107 bytes ending in
//!   CRLF. What has arrived is peeked (`MSG_PEEK`, without waiting) and
//!   only the bytes up to the CRLF are taken; when nothing is there yet, a
//!   one-byte read waits for it (the line is not complete, so the byte is
//!   the header's).
//!
//! The LOCAL command (v2, a health check) and the UNKNOWN/UNSPEC families
//! carry no client address: the spec says to use the connection's own
//! addresses, so such a connection continues under the load balancer's
//! address ([`ProxiedPeer::Local`], [`ProxiedPeer::Unknown`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use ppp::{v1, v2};
use tokio_uring::net::TcpStream;

use crate::config::ProxyProtocol;
use crate::metrics::Event;

/// The v2 signature (spec 2.2).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 fixed part: signature, version/command, family/protocol, length.
const V2_FIXED_LEN: usize = 16;
/// Longest v2 header accepted, fixed part included: the largest address
/// block (two AF_UNIX paths, 216 bytes) plus 296 bytes of TLVs. HAProxy's
/// `send-proxy-v2` sends 12 (IPv4) or 36 (IPv6) bytes of addresses and no
/// TLVs unless configured to.
pub const V2_MAX_LEN: usize = 528;
/// Longest v1 line, CRLF included (spec 2.1: 107 bytes).
pub const V1_MAX_LEN: usize = 107;
/// The shortest header of either version: `PROXY UNKNOWN\r\n`. Reading
/// this much first never takes a byte past a header.
const MIN_LEN: usize = 15;

/// What a valid header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxiedPeer {
    /// The client's address and port (PROXY command, TCP over IPv4/IPv6).
    Client(SocketAddr),
    /// v2 LOCAL command: the load balancer's own connection (a health
    /// check); its address is the peer.
    Local,
    /// v1 UNKNOWN, or v2 with the UNSPEC or AF_UNIX family: no usable
    /// client address; the load balancer's address is the peer.
    Unknown,
}

/// Why a connection's header was refused. The connection is closed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The whole header did not arrive within the listener's
    /// `proxy_header_timeout` (or the pre-auth window).
    Timeout,
    /// The peer closed before the header was complete.
    Closed,
    /// Reading the socket failed.
    Io(io::Error),
    /// The first bytes are neither header's signature (a client talking
    /// TLS straight to a PROXY listener, say).
    NotProxy,
    /// The other version than the listener takes.
    WrongVersion,
    /// Longer than [`V1_MAX_LEN`] / [`V2_MAX_LEN`].
    Oversized,
    /// The signature is right, the rest is not (the parser's reason).
    Malformed(String),
    /// A PROXY command for a datagram (UDP) connection.
    NotStream,
}

impl ProxyHeaderError {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProxyHeaderError::Timeout => "proxy_header_timeout",
            ProxyHeaderError::Closed => "proxy_header_closed",
            ProxyHeaderError::Io(_) => "proxy_header_io_error",
            ProxyHeaderError::NotProxy => "proxy_header_missing",
            ProxyHeaderError::WrongVersion => "proxy_header_wrong_version",
            ProxyHeaderError::Oversized => "proxy_header_oversized",
            ProxyHeaderError::Malformed(_) => "proxy_header_malformed",
            ProxyHeaderError::NotStream => "proxy_header_not_stream",
        }
    }
}

impl std::fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyHeaderError::Io(e) => write!(f, "{}: {e}", self.as_str()),
            ProxyHeaderError::Malformed(why) => write!(f, "{}: {why}", self.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for ProxyHeaderError {}

impl From<&ProxyHeaderError> for Event {
    fn from(e: &ProxyHeaderError) -> Event {
        match e {
            ProxyHeaderError::Timeout => Event::ProxyHeaderTimeout,
            ProxyHeaderError::Closed => Event::ProxyHeaderClosed,
            ProxyHeaderError::Io(_) => Event::ProxyHeaderIoError,
            ProxyHeaderError::NotProxy => Event::ProxyHeaderMissing,
            ProxyHeaderError::WrongVersion => Event::ProxyHeaderWrongVersion,
            ProxyHeaderError::Oversized => Event::ProxyHeaderOversized,
            ProxyHeaderError::Malformed(_) => Event::ProxyHeaderMalformed,
            ProxyHeaderError::NotStream => Event::ProxyHeaderNotStream,
        }
    }
}

impl From<ProxiedPeer> for Event {
    fn from(peer: ProxiedPeer) -> Event {
        match peer {
            ProxiedPeer::Client(_) => Event::ProxyHeaderAccepted,
            ProxiedPeer::Local => Event::ProxyHeaderLocal,
            ProxiedPeer::Unknown => Event::ProxyHeaderUnknown,
        }
    }
}

/// What the header needs beyond the bytes `buf` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `buf` must hold this many bytes in all (read exactly).
    Total(usize),
    /// A v1 line: the bytes up to and including the next CRLF.
    Line,
    /// `buf` is the whole header.
    Complete,
}

fn is_v2(buf: &[u8]) -> bool {
    buf.len() >= V2_SIGNATURE.len() && buf[..V2_SIGNATURE.len()] == V2_SIGNATURE[..]
}

/// Frames the header: from the bytes received so far (all of them the
/// header's: this module never reads past its end), what is still needed,
/// or why it cannot be a header `mode` accepts.
pub fn next_need(buf: &[u8], mode: ProxyProtocol) -> Result<Need, ProxyHeaderError> {
    if buf.len() < MIN_LEN {
        return Ok(Need::Total(MIN_LEN));
    }
    if is_v2(buf) {
        if mode == ProxyProtocol::V1 {
            return Err(ProxyHeaderError::WrongVersion);
        }
        if buf.len() < V2_FIXED_LEN {
            return Ok(Need::Total(V2_FIXED_LEN));
        }
        let total = V2_FIXED_LEN + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if total > V2_MAX_LEN {
            return Err(ProxyHeaderError::Oversized);
        }
        return Ok(if buf.len() < total {
            Need::Total(total)
        } else {
            Need::Complete
        });
    }
    if buf.starts_with(b"PROXY ") {
        if mode == ProxyProtocol::V2 {
            return Err(ProxyHeaderError::WrongVersion);
        }
        if buf.ends_with(b"\r\n") {
            return Ok(Need::Complete);
        }
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyHeaderError::Oversized);
        }
        return Ok(Need::Line);
    }
    Err(ProxyHeaderError::NotProxy)
}

/// How many of `peeked` (bytes that follow `buf`) belong to a v1 line:
/// up to its CRLF, or all of them when the line does not end there.
pub fn line_bytes(buf: &[u8], peeked: &[u8]) -> usize {
    if buf.last() == Some(&b'\r') && peeked.first() == Some(&b'\n') {
        return 1;
    }
    peeked
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(peeked.len(), |i| i + 2)
}

/// Parses a complete header (as [`next_need`] framed it) and says what it
/// means for the connection. An IPv4-mapped IPv6 source (a balancer
/// listening on a dual-stack socket) is given as the IPv4 address.
pub fn interpret(header: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    interpret_raw(header).map(|peer| match peer {
        ProxiedPeer::Client(a) => {
            ProxiedPeer::Client(SocketAddr::new(a.ip().to_canonical(), a.port()))
        }
        other => other,
    })
}

fn interpret_raw(header: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    let malformed = |e: &dyn std::fmt::Display| ProxyHeaderError::Malformed(e.to_string());
    if is_v2(header) {
        let h = v2::Header::try_from(header).map_err(|e| malformed(&e))?;
        if h.command == v2::Command::Local {
            return Ok(ProxiedPeer::Local);
        }
        let stream = h.protocol != v2::Protocol::Datagram;
        return match h.addresses {
            v2::Addresses::IPv4(a) if stream => Ok(ProxiedPeer::Client(SocketAddr::from((
                a.source_address,
                a.source_port,
            )))),
            v2::Addresses::IPv6(a) if stream => Ok(ProxiedPeer::Client(SocketAddr::from((
                a.source_address,
                a.source_port,
            )))),
            v2::Addresses::IPv4(_) | v2::Addresses::IPv6(_) => Err(ProxyHeaderError::NotStream),
            v2::Addresses::Unspecified | v2::Addresses::Unix(_) => Ok(ProxiedPeer::Unknown),
        };
    }
    let h = v1::Header::try_from(header).map_err(|e| malformed(&e))?;
    Ok(match h.addresses {
        v1::Addresses::Tcp4(a) => {
            ProxiedPeer::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        v1::Addresses::Tcp6(a) => {
            ProxiedPeer::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        v1::Addresses::Unknown => ProxiedPeer::Unknown,
    })
}

/// Reads and interprets the header on a freshly accepted connection
/// within `timeout`. On a timeout the socket is shut down (the abandoned
/// read would otherwise hold it open).
pub async fn read_header(
    tcp: &TcpStream,
    mode: ProxyProtocol,
    timeout: Duration,
) -> Result<ProxiedPeer, ProxyHeaderError> {
    match tokio::time::timeout(timeout, read_inner(tcp, mode)).await {
        Ok(result) => result,
        Err(_) => {
            let _ = tcp.shutdown(std::net::Shutdown::Both);
            Err(ProxyHeaderError::Timeout)
        }
    }
}

async fn read_inner(tcp: &TcpStream, mode: ProxyProtocol) -> Result<ProxiedPeer, ProxyHeaderError> {
    let mut buf = Vec::with_capacity(64);
    loop {
        match next_need(&buf, mode)? {
            Need::Complete => return interpret(&buf),
            Need::Total(total) => read_to(tcp, &mut buf, total).await?,
            Need::Line => {
                if take_line_bytes(tcp, &mut buf)? == 0 {
                    // Nothing waiting: wait for one byte, which is the
                    // line's (it has not ended yet).
                    let next = buf.len() + 1;
                    read_to(tcp, &mut buf, next).await?;
                }
            }
        }
    }
}

/// Reads until `buf` holds `total` bytes, never more.
async fn read_to(tcp: &TcpStream, buf: &mut Vec<u8>, total: usize) -> Result<(), ProxyHeaderError> {
    while buf.len() < total {
        let chunk = Vec::with_capacity(total - buf.len());
        let (res, chunk) = tcp.read(chunk).await;
        match res.map_err(ProxyHeaderError::Io)? {
            0 => return Err(ProxyHeaderError::Closed),
            _ => buf.extend_from_slice(&chunk),
        }
    }
    Ok(())
}

/// Takes, without waiting, the bytes of the v1 line that have arrived (up
/// to its CRLF); the number taken (0: none waiting).
fn take_line_bytes(tcp: &TcpStream, buf: &mut Vec<u8>) -> Result<usize, ProxyHeaderError> {
    let fd = tcp.as_raw_fd();
    let mut peeked = [0u8; V1_MAX_LEN];
    let room = V1_MAX_LEN - buf.len();
    // SAFETY: a live socket and a buffer of at least `room` bytes.
    let n = unsafe {
        libc::recv(
            fd,
            peeked.as_mut_ptr().cast(),
            room,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(ProxyHeaderError::Io(e)),
        };
    }
    if n == 0 {
        return Err(ProxyHeaderError::Closed);
    }
    let take = line_bytes(buf, &peeked[..n as usize]);
    // SAFETY: as above; these bytes are already queued, so this does not
    // wait.
    let got = unsafe { libc::recv(fd, peeked.as_mut_ptr().cast(), take, libc::MSG_DONTWAIT) };
    if got < 0 {
        return Err(ProxyHeaderError::Io(io::Error::last_os_error()));
    }
    buf.extend_from_slice(&peeked[..got as usize]);
    Ok(got as usize)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    use ProxyProtocol::{Any, V1, V2};

    /// Frames `bytes` as they would arrive and parses the header; the
    /// bytes consumed must be the header's exactly.
    fn run(bytes: &[u8], mode: ProxyProtocol) -> Result<(ProxiedPeer, usize), ProxyHeaderError> {
        let mut buf = Vec::new();
        loop {
            match next_need(&buf, mode)? {
                Need::Complete => return interpret(&buf).map(|p| (p, buf.len())),
                Need::Total(total) => {
                    if bytes.len() < total {
                        return Err(ProxyHeaderError::Closed);
                    }
                    buf = bytes[..total].to_vec();
                }
                Need::Line => {
                    let rest = &bytes[buf.len()..];
                    if rest.is_empty() {
                        return Err(ProxyHeaderError::Closed);
                    }
                    // Arrives one or three bytes at a time.
                    let peeked = &rest[..rest.len().min(if buf.len() % 2 == 0 { 3 } else { 1 })];
                    let n = line_bytes(&buf, peeked);
                    buf.extend_from_slice(&peeked[..n]);
                }
            }
        }
    }

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(
            &u16::try_from(addresses.len() + tlvs.len())
                .unwrap()
                .to_be_bytes(),
        );
        h.extend_from_slice(addresses);
        h.extend_from_slice(tlvs);
        h
    }

    fn v2_ipv4() -> Vec<u8> {
        let mut a = vec![192, 0, 2, 7, 10, 0, 0, 1];
        a.extend_from_slice(&50123u16.to_be_bytes());
        a.extend_from_slice(&443u16.to_be_bytes());
        v2(1, 0x11, &a, &[])
    }

    const CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];

    #[test]
    fn v1_tcp4_tcp6_and_unknown_consume_exactly_the_line() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 50123 443\r\n";
        let mut stream = line.to_vec();
        stream.extend_from_slice(CLIENT_HELLO);
        for mode in [V1, Any] {
            let (peer, used) = run(&stream, mode).unwrap();
            assert_eq!(
                peer,
                ProxiedPeer::Client(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 50123)))
            );
            assert_eq!(used, line.len());
        }
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n";
        let (peer, used) = run(&[&line[..], CLIENT_HELLO].concat(), V1).unwrap();
        assert_eq!(
            peer,
            ProxiedPeer::Client(SocketAddr::from((
                "2001:db8::7".parse::<Ipv6Addr>().unwrap(),
                4000
            )))
        );
        assert_eq!(used, line.len());
        // A dual-stack balancer's IPv4 client, as IPv4.
        let line = b"PROXY TCP6 ::ffff:192.0.2.7 ::ffff:10.0.0.1 4000 443\r\n";
        assert_eq!(
            run(line, V1).unwrap().0,
            ProxiedPeer::Client(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 4000)))
        );
        let (peer, used) = run(&[&b"PROXY UNKNOWN\r\n"[..], CLIENT_HELLO].concat(), Any).unwrap();
        assert_eq!((peer, used), (ProxiedPeer::Unknown, 15));
        // UNKNOWN may carry anything up to the CRLF (spec 2.1).
        let line = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(run(line, V1).unwrap(), (ProxiedPeer::Unknown, line.len()));
    }

    #[test]
    fn v2_proxy_local_and_unspecified() {
        let header = v2_ipv4();
        let stream = [&header[..], CLIENT_HELLO].concat();
        for mode in [V2, Any] {
            assert_eq!(
                run(&stream, mode).unwrap(),
                (
                    ProxiedPeer::Client(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 50123))),
                    header.len()
                )
            );
        }
        // IPv6 with a TLV (NOOP) behind the addresses.
        let mut a = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        a.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        a.extend_from_slice(&[0x0f, 0xa0, 0x01, 0xbb]);
        let header = v2(1, 0x21, &a, &[0x04, 0x00, 0x01, 0x00]);
        assert_eq!(
            run(&[&header[..], CLIENT_HELLO].concat(), V2).unwrap(),
            (
                ProxiedPeer::Client(SocketAddr::from((
                    "2001:db8::7".parse::<Ipv6Addr>().unwrap(),
                    4000
                ))),
                header.len()
            )
        );
        // LOCAL (a health check) carries no address.
        let header = v2(0, 0x00, &[], &[]);
        assert_eq!(run(&header, V2).unwrap(), (ProxiedPeer::Local, 16));
        // LOCAL with addresses: they are ignored.
        let mut local = v2_ipv4();
        local[12] = 0x20;
        assert_eq!(run(&local, Any).unwrap().0, ProxiedPeer::Local);
        // PROXY with the UNSPEC family, or AF_UNIX: no usable address.
        assert_eq!(
            run(&v2(1, 0x00, &[], &[]), V2).unwrap().0,
            ProxiedPeer::Unknown
        );
        assert_eq!(
            run(&v2(1, 0x31, &[0; 216], &[]), V2).unwrap().0,
            ProxiedPeer::Unknown
        );
    }

    #[test]
    fn truncated_headers_wait_for_more_and_close_is_reported() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 50123 443\r\n";
        for cut in 0..line.len() {
            assert!(
                matches!(run(&line[..cut], V1), Err(ProxyHeaderError::Closed)),
                "cut at {cut}"
            );
        }
        let header = v2_ipv4();
        for cut in 0..header.len() {
            assert!(
                matches!(run(&header[..cut], V2), Err(ProxyHeaderError::Closed)),
                "cut at {cut}"
            );
        }
        // Framing asks for exactly the missing bytes.
        assert_eq!(next_need(&header[..10], V2).unwrap(), Need::Total(15));
        assert_eq!(next_need(&header[..15], V2).unwrap(), Need::Total(16));
        assert_eq!(next_need(&header[..16], V2).unwrap(), Need::Total(28));
        assert_eq!(next_need(&line[..20], V1).unwrap(), Need::Line);
    }

    #[test]
    fn oversized_headers_are_refused_before_they_are_read() {
        // v1: 107 bytes without a CRLF.
        let mut line = b"PROXY TCP4 ".to_vec();
        line.resize(V1_MAX_LEN + 20, b'1');
        assert!(matches!(run(&line, V1), Err(ProxyHeaderError::Oversized)));
        // The longest valid line is accepted.
        let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), V1_MAX_LEN);
        assert_eq!(
            run(longest, V1).unwrap(),
            (ProxiedPeer::Unknown, V1_MAX_LEN)
        );
        let tcp6 = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert!(matches!(run(tcp6, V1).unwrap().0, ProxiedPeer::Client(_)));
        // v2: the length field alone says it, without reading the body.
        let mut header = v2(1, 0x11, &[0; 12], &[]);
        header[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        assert!(matches!(
            next_need(&header[..16], V2),
            Err(ProxyHeaderError::Oversized)
        ));
        let tlvs = vec![0u8; V2_MAX_LEN - V2_FIXED_LEN - 12 + 1];
        assert!(matches!(
            run(&v2(1, 0x11, &[0; 12], &tlvs), V2),
            Err(ProxyHeaderError::Oversized)
        ));
    }

    #[test]
    fn wrong_version_missing_and_malformed_headers_are_refused() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 50123 443\r\n";
        assert!(matches!(run(line, V2), Err(ProxyHeaderError::WrongVersion)));
        assert!(matches!(
            run(&v2_ipv4(), V1),
            Err(ProxyHeaderError::WrongVersion)
        ));
        // A client talking TLS straight to the listener.
        let hello = [CLIENT_HELLO, &[0u8; 20][..]].concat();
        assert!(matches!(run(&hello, Any), Err(ProxyHeaderError::NotProxy)));
        assert!(matches!(
            run(b"GET / HTTP/1.1\r\n\r\n", Any),
            Err(ProxyHeaderError::NotProxy)
        ));
        // Signature right, contents not.
        for bad in [
            &b"PROXY TCP4 192.0.2.999 10.0.0.1 50123 443\r\n"[..],
            b"PROXY TCP5 192.0.2.7 10.0.0.1 50123 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 50123\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 70000 443\r\n",
            b"PROXY TCP4 192.0.2.7  10.0.0.1 50123 443\r\n",
            b"PROXY TCP4 \xff\xfe\r\n",
        ] {
            assert!(
                matches!(run(bad, Any), Err(ProxyHeaderError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                run(bad, Any)
            );
        }
        // v2: wrong version nibble, unknown command, address block too
        // short for its family.
        let mut bad_version = v2_ipv4();
        bad_version[12] = 0x11;
        let mut bad_command = v2_ipv4();
        bad_command[12] = 0x2f;
        let short = v2(1, 0x11, &[0; 4], &[]);
        for bad in [bad_version, bad_command, short] {
            assert!(
                matches!(run(&bad, V2), Err(ProxyHeaderError::Malformed(_))),
                "{bad:02x?}"
            );
        }
        // PROXY over UDP is not a TCP client.
        let mut udp = v2_ipv4();
        udp[13] = 0x12;
        assert!(matches!(run(&udp, V2), Err(ProxyHeaderError::NotStream)));
    }

    /// Over a real socket: the header arrives in pieces (so the v1 line is
    /// peeked, taken and waited for in turns), and the bytes behind it are
    /// left for TLS, untouched.
    fn over_socket(
        pieces: &'static [&'static [u8]],
        mode: ProxyProtocol,
        timeout: Duration,
    ) -> (Result<ProxiedPeer, ProxyHeaderError>, Vec<u8>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (done, wait_done) = std::sync::mpsc::channel::<()>();
        let sender = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            for piece in pieces {
                s.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(30));
            }
            // Held open until the reader is done.
            let _ = wait_done.recv_timeout(timeout + Duration::from_secs(1));
        });
        let (accepted, _) = listener.accept().unwrap();
        let out = tokio_uring::start(async move {
            let tcp = TcpStream::from_std(accepted);
            let result = read_header(&tcp, mode, timeout).await;
            let mut rest = Vec::new();
            if result.is_ok() {
                let (n, buf) = tcp.read(Vec::with_capacity(64)).await;
                rest = buf[..n.unwrap()].to_vec();
            }
            (result, rest)
        });
        let _ = done.send(());
        sender.join().unwrap();
        out
    }

    #[test]
    fn a_header_in_pieces_over_a_socket_leaves_the_client_hello_alone() {
        let (peer, rest) = over_socket(
            &[
                b"PROXY TCP4 192.0.2.7",
                b" 10.0.0.1 50123 443\r",
                b"\n\x16\x03\x01HELLO",
            ],
            Any,
            Duration::from_secs(5),
        );
        assert_eq!(
            peer.unwrap(),
            ProxiedPeer::Client(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 50123)))
        );
        assert_eq!(rest, b"\x16\x03\x01HELLO");
        // v2 and the ClientHello in one segment.
        let (peer, rest) = over_socket(
            &[b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x07\x0a\x00\x00\x01\xc3\xcb\x01\xbb\x16\x03\x01"],
            V2,
            Duration::from_secs(5),
        );
        assert_eq!(
            peer.unwrap(),
            ProxiedPeer::Client(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 50123)))
        );
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[test]
    fn a_header_that_stops_coming_times_out() {
        let started = std::time::Instant::now();
        let (result, _) = over_socket(&[b"PROXY TCP4 192.0"], V1, Duration::from_millis(300));
        assert!(
            matches!(result, Err(ProxyHeaderError::Timeout)),
            "{result:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn every_error_has_a_counter_and_a_label() {
        for e in [
            ProxyHeaderError::Timeout,
            ProxyHeaderError::Closed,
            ProxyHeaderError::Io(io::Error::other("x")),
            ProxyHeaderError::NotProxy,
            ProxyHeaderError::WrongVersion,
            ProxyHeaderError::Oversized,
            ProxyHeaderError::Malformed(String::new()),
            ProxyHeaderError::NotStream,
        ] {
            assert_eq!(Event::from(&e).label(), e.as_str());
        }
    }
}
