//! The HTTPS handshake that precedes SSTP ([MS-SSTP] 3.2.4.1, 4.1): the
//! client's `SSTP_DUPLEX_POST` request and the server's `200` reply.
//!
//! Both parsers are incremental and bounded: they take arbitrary chunks and
//! report how many bytes of the last chunk belonged to the HTTP head, so the
//! SSTP bytes that follow it in the same chunk are not lost.

use std::fmt;

/// The method of the request ([MS-SSTP] 3.2.4.1).
pub const SSTP_METHOD: &str = "SSTP_DUPLEX_POST";
/// The URI path of the request ([MS-SSTP] 3.2.4.1, 4.1).
pub const SSTP_URI_PATH: &str = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/";
/// ULONGLONG_MAX, the Content-Length of both request and response
/// ([MS-SSTP] 3.2.4.1, 4.1).
pub const CONTENT_LENGTH: &str = "18446744073709551615";
/// The default bound on the size of a request or response head.
pub const DEFAULT_MAX_HEAD_LEN: usize = 8 * 1024;
/// The Server header of the spec's example response ([MS-SSTP] 4.1).
pub const DEFAULT_SERVER_HEADER: &str = "Microsoft-HTTPAPI/2.0";
/// The longest correlation ID kept for logs; longer ones are truncated.
pub const MAX_CORRELATION_ID_LEN: usize = 128;

/// The GUID inside [`SSTP_URI_PATH`], between `/sra_` and the final `/`.
const URI_GUID: &str = "{BA195980-CD49-458b-9E23-C84EE0ADCD75}";

/// What the server keeps from an accepted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SstpRequest {
    /// The Host header.
    pub host: String,
    /// The SSTPCORRELATIONID header, if sent, for logs ([MS-SSTP] 3.2.4.1:
    /// the server SHOULD use it to log troubleshooting information). Kept
    /// as sent, not checked to be a GUID: sstp-client's is not one.
    pub correlation_id: Option<String>,
}

/// Why the server refuses a request. Each maps to an HTTP status; the
/// server answers with it and closes ([MS-SSTP] 4.1: "the server fails the
/// request by sending an HTTP error code").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// Not an HTTP/1.x request head (400).
    Malformed,
    /// No Host header, or more than one ([RFC 7230] 5.4) (400).
    BadHost,
    /// Content-Length other than 18446744073709551615 (400).
    BadContentLength,
    /// No Content-Length ([MS-SSTP] 3.2.4.1 makes it mandatory) (411).
    MissingContentLength,
    /// A Transfer-Encoding header: SSTP uses Content-Length only (400).
    TransferEncoding,
    /// A URI other than the SSTP one (404).
    NotFound,
    /// A method other than SSTP_DUPLEX_POST (405).
    MethodNotAllowed,
    /// A protocol version other than HTTP/1.1 (505).
    VersionNotSupported,
    /// The request line alone exceeds the head bound (414).
    UriTooLong,
    /// The head exceeds the bound (431).
    HeadTooLarge,
    /// The head did not arrive in time (408).
    Timeout,
}

impl HttpError {
    /// The HTTP status code of the error response.
    pub fn status_code(&self) -> u16 {
        match self {
            HttpError::Malformed
            | HttpError::BadHost
            | HttpError::BadContentLength
            | HttpError::TransferEncoding => 400,
            HttpError::NotFound => 404,
            HttpError::MethodNotAllowed => 405,
            HttpError::Timeout => 408,
            HttpError::MissingContentLength => 411,
            HttpError::UriTooLong => 414,
            HttpError::HeadTooLarge => 431,
            HttpError::VersionNotSupported => 505,
        }
    }

    fn reason_phrase(&self) -> &'static str {
        match self.status_code() {
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            414 => "URI Too Long",
            431 => "Request Header Fields Too Large",
            505 => "HTTP Version Not Supported",
            _ => "Bad Request",
        }
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpError::Malformed => "malformed",
            HttpError::BadHost => "bad_host",
            HttpError::BadContentLength => "bad_content_length",
            HttpError::MissingContentLength => "missing_content_length",
            HttpError::TransferEncoding => "transfer_encoding",
            HttpError::NotFound => "not_found",
            HttpError::MethodNotAllowed => "method_not_allowed",
            HttpError::VersionNotSupported => "version_not_supported",
            HttpError::UriTooLong => "uri_too_long",
            HttpError::HeadTooLarge => "head_too_large",
            HttpError::Timeout => "timeout",
        }
    }

    /// The metric label of a request refused with this error: which
    /// refusals a server sees (scanners' `GET /`, slow clients, oversized
    /// heads) tells an operator who is knocking.
    pub fn rejection_label(&self) -> &'static str {
        match self {
            HttpError::Malformed => "http_rejected_malformed",
            HttpError::BadHost => "http_rejected_bad_host",
            HttpError::BadContentLength => "http_rejected_bad_content_length",
            HttpError::MissingContentLength => "http_rejected_missing_content_length",
            HttpError::TransferEncoding => "http_rejected_transfer_encoding",
            HttpError::NotFound => "http_rejected_not_found",
            HttpError::MethodNotAllowed => "http_rejected_method_not_allowed",
            HttpError::VersionNotSupported => "http_rejected_version_not_supported",
            HttpError::UriTooLong => "http_rejected_uri_too_long",
            HttpError::HeadTooLarge => "http_rejected_head_too_large",
            HttpError::Timeout => "http_rejected_timeout",
        }
    }

    /// Appends the error response: status line, `Content-Length: 0`,
    /// `Connection: close`, and for 405 the `Allow` header [RFC 7231] 6.5.5
    /// requires.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\nContent-Length: 0\r\nConnection: close\r\n",
                self.status_code(),
                self.reason_phrase()
            )
            .as_bytes(),
        );
        if *self == HttpError::MethodNotAllowed {
            out.extend_from_slice(b"Allow: SSTP_DUPLEX_POST\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.status_code())
    }
}

impl std::error::Error for HttpError {}

/// Why the client refuses the server's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpResponseError {
    /// Not an HTTP/1.x response head.
    Malformed,
    /// A status other than 200 ([MS-SSTP] 1.3: HTTP_STATUS_OK).
    Status(u16),
    /// A Content-Length other than 18446744073709551615.
    BadContentLength,
    /// The head exceeds the bound.
    HeadTooLarge,
    /// No reply within the timer of [MS-SSTP] 4.1 (60 s by default).
    Timeout,
}

impl HttpResponseError {
    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpResponseError::Malformed => "malformed",
            HttpResponseError::Status(_) => "status",
            HttpResponseError::BadContentLength => "bad_content_length",
            HttpResponseError::HeadTooLarge => "head_too_large",
            HttpResponseError::Timeout => "timeout",
        }
    }
}

impl fmt::Display for HttpResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpResponseError::Status(code) => write!(f, "status {code}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for HttpResponseError {}

/// Progress of an incremental parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is not complete yet; every byte given so far was taken.
    NeedMore,
    /// The head is complete. `consumed` bytes of the last chunk belonged to
    /// it; the rest of that chunk is SSTP.
    Done {
        /// The parsed head.
        message: T,
        /// How many bytes of the last chunk the head took.
        consumed: usize,
    },
}

/// Collects an HTTP head (up to and including the empty line) across
/// chunks, within a bound.
#[derive(Debug)]
struct HeadCollector {
    buf: Vec<u8>,
    max: usize,
    /// Where to resume looking for the empty line.
    scan_from: usize,
}

enum Collected {
    NeedMore,
    /// The head is `buf[..end]`; `consumed` bytes of the chunk were used.
    Complete {
        end: usize,
        consumed: usize,
    },
    /// The bound was reached; whether a whole first line had arrived.
    Overflow {
        first_line_complete: bool,
    },
}

impl HeadCollector {
    fn new(max: usize) -> Self {
        HeadCollector {
            buf: Vec::new(),
            max: max.max(1),
            scan_from: 0,
        }
    }

    fn push(&mut self, input: &[u8]) -> Collected {
        let before = self.buf.len();
        let take = input.len().min(self.max.saturating_sub(before));
        self.buf.extend_from_slice(&input[..take]);
        if let Some(end) = find_head_end(&self.buf, self.scan_from) {
            return Collected::Complete {
                end,
                consumed: end.saturating_sub(before),
            };
        }
        if self.buf.len() >= self.max {
            return Collected::Overflow {
                first_line_complete: self.buf.contains(&b'\n'),
            };
        }
        // The empty line may start in the last 2 bytes seen ("\n\r").
        self.scan_from = self.buf.len().saturating_sub(2);
        Collected::NeedMore
    }
}

/// Finds the end of the head: the byte after the empty line that ends it
/// (`\n\n` or `\n\r\n`: CRLF, and bare LF as [RFC 7230] 3.5 allows).
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let at = i + buf.get(i..)?.iter().position(|&b| b == b'\n')?;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => i = at + 1,
        }
    }
}

/// The lines of a head, without line terminators, up to the empty line.
fn head_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
}

/// A header field, name and value, value trimmed ([RFC 7230] 3.2).
/// `None` for a line that is not a valid field: obsolete line folding, no
/// colon, whitespace before the colon, or control characters in the value.
fn header_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
        return None;
    }
    let value = value.trim_ascii();
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return None;
    }
    Some((name, value))
}

/// `tchar` of [RFC 7230] 3.2.6.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Server side: parses the client's request ([MS-SSTP] 3.2.4.1, 4.1).
#[derive(Debug)]
pub struct RequestParser {
    head: HeadCollector,
}

impl RequestParser {
    /// A parser refusing heads over `max_head_len` bytes.
    pub fn new(max_head_len: usize) -> Self {
        RequestParser {
            head: HeadCollector::new(max_head_len),
        }
    }

    /// Takes the next chunk. Call again only after [`Parsed::NeedMore`].
    pub fn feed(&mut self, input: &[u8]) -> Result<Parsed<SstpRequest>, HttpError> {
        match self.head.push(input) {
            Collected::NeedMore => Ok(Parsed::NeedMore),
            Collected::Overflow {
                first_line_complete: false,
            } => Err(HttpError::UriTooLong),
            Collected::Overflow { .. } => Err(HttpError::HeadTooLarge),
            Collected::Complete { end, consumed } => Ok(Parsed::Done {
                message: parse_request(&self.head.buf[..end])?,
                consumed,
            }),
        }
    }
}

/// Checks a whole request head. The request line is checked first (version
/// 505, URI 404, method 405), then the headers.
fn parse_request(head: &[u8]) -> Result<SstpRequest, HttpError> {
    let mut lines = head_lines(head);
    let request_line = lines.next().ok_or(HttpError::Malformed)?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_char(b)) || target.is_empty() {
        return Err(HttpError::Malformed);
    }
    check_version(version)?;
    if !is_sstp_target(target) {
        return Err(HttpError::NotFound);
    }
    if method != SSTP_METHOD.as_bytes() {
        return Err(HttpError::MethodNotAllowed);
    }

    let mut host = None;
    let mut content_length = false;
    let mut correlation_id = None;
    for line in lines {
        let (name, value) = header_field(line).ok_or(HttpError::Malformed)?;
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Err(HttpError::BadHost);
            }
            host = Some(String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value != CONTENT_LENGTH.as_bytes() {
                return Err(HttpError::BadContentLength);
            }
            content_length = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        } else if name.eq_ignore_ascii_case(b"sstpcorrelationid") {
            correlation_id = Some(truncated_lossy(value, MAX_CORRELATION_ID_LEN));
        }
    }
    let host = host.ok_or(HttpError::BadHost)?;
    if !content_length {
        return Err(HttpError::MissingContentLength);
    }
    Ok(SstpRequest {
        host,
        correlation_id,
    })
}

/// [MS-SSTP] 4.1: "validates ... the HTTP version to be 1.1".
fn check_version(version: &[u8]) -> Result<(), HttpError> {
    match version {
        b"HTTP/1.1" => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HttpError::VersionNotSupported)
        }
        _ => Err(HttpError::Malformed),
    }
}

/// Whether the request target names the SSTP URI ([MS-SSTP] 3.2.4.1).
///
/// The GUID is compared without regard to case: [MS-SSTP] writes it as a
/// [MS-DTYP] 2.3.4.3 GUID string, whose hex digits are "case insensitive on
/// input" ([RFC 4122] 3); the spec itself spells it in mixed case. The rest
/// of the path is compared exactly. A query (the optional `tenantid`) is
/// ignored, as 3.2.4.1 asks of servers that do not use it; an absolute-form
/// target ([RFC 7230] 5.3.2) is reduced to its path.
fn is_sstp_target(target: &[u8]) -> bool {
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let path = match strip_prefix_ignore_case(path, b"https://")
        .or_else(|| strip_prefix_ignore_case(path, b"http://"))
    {
        Some(authority_and_path) => match authority_and_path.iter().position(|&b| b == b'/') {
            Some(slash) => &authority_and_path[slash..],
            None => return false,
        },
        None => path,
    };
    let Some(rest) = path.strip_prefix(b"/sra_") else {
        return false;
    };
    let Some(guid) = rest.strip_suffix(b"/") else {
        return false;
    };
    guid.eq_ignore_ascii_case(URI_GUID.as_bytes())
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = bytes.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

fn truncated_lossy(value: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(value).into_owned();
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Appends the server's `200` reply ([MS-SSTP] 4.1): `HTTP/1.1 200 OK`,
/// `Content-Length: 18446744073709551615`, then `Server` and `Date` when
/// given. The core has no wall clock, so `Date` is the caller's to supply;
/// without one the header is left out, as [RFC 7231] 7.1.1.2 requires of
/// servers without a clock. Values holding control characters are dropped.
pub fn write_ok_response(out: &mut Vec<u8>, server: Option<&str>, date: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: ");
    out.extend_from_slice(CONTENT_LENGTH.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in [("Server", server), ("Date", date)] {
        if let Some(value) = value.filter(|v| is_header_value(v)) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether `value` can be sent as a header value: printable ASCII and
/// spaces only (no CR/LF that would inject headers).
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// What the client puts in its request ([MS-SSTP] 3.2.4.1): the Host header
/// and the SSTPCORRELATIONID. Both are sent exactly as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHandshake {
    host: String,
    correlation_id: String,
}

/// A handshake value that cannot go into a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidHeaderValue;

impl fmt::Display for InvalidHeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("header value must be printable ASCII")
    }
}

impl std::error::Error for InvalidHeaderValue {}

impl ClientHandshake {
    /// `host` is the Host header (the server name, [MS-SSTP] 4.1);
    /// `correlation_id` the SSTPCORRELATIONID value, braces included.
    pub fn new(
        host: impl Into<String>,
        correlation_id: impl Into<String>,
    ) -> Result<Self, InvalidHeaderValue> {
        let (host, correlation_id) = (host.into(), correlation_id.into());
        if host.is_empty() || !is_header_value(&host) || !is_header_value(&correlation_id) {
            return Err(InvalidHeaderValue);
        }
        Ok(ClientHandshake {
            host,
            correlation_id,
        })
    }

    /// The Host header value.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The SSTPCORRELATIONID value.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Formats 16 random bytes as a [MS-DTYP] 2.3.4.3 curly-braced GUID
    /// string, for a fresh correlation ID per connection attempt
    /// ([MS-SSTP] 3.2.4.1).
    pub fn guid_string(bytes: [u8; 16]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        format!(
            "{{{}-{}-{}-{}-{}}}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    /// Appends the request, byte for byte as sstp-client sends it:
    /// request line, Host, Content-Length, SSTPCORRELATIONID.
    pub fn write_request(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "{SSTP_METHOD} {SSTP_URI_PATH} HTTP/1.1\r\nHost: {}\r\nContent-Length: {CONTENT_LENGTH}\r\nSSTPCORRELATIONID: {}\r\n\r\n",
                self.host, self.correlation_id
            )
            .as_bytes(),
        );
    }
}

/// Client side: parses the server's reply.
#[derive(Debug)]
pub struct ResponseParser {
    head: HeadCollector,
}

impl ResponseParser {
    /// A parser refusing heads over `max_head_len` bytes.
    pub fn new(max_head_len: usize) -> Self {
        ResponseParser {
            head: HeadCollector::new(max_head_len),
        }
    }

    /// Takes the next chunk. Call again only after [`Parsed::NeedMore`].
    pub fn feed(&mut self, input: &[u8]) -> Result<Parsed<()>, HttpResponseError> {
        match self.head.push(input) {
            Collected::NeedMore => Ok(Parsed::NeedMore),
            Collected::Overflow { .. } => Err(HttpResponseError::HeadTooLarge),
            Collected::Complete { end, consumed } => {
                parse_response(&self.head.buf[..end])?;
                Ok(Parsed::Done {
                    message: (),
                    consumed,
                })
            }
        }
    }
}

/// Checks a response head: status 200 and, when present, Content-Length
/// exactly 18446744073709551615 (what sstp-client requires too).
fn parse_response(head: &[u8]) -> Result<(), HttpResponseError> {
    let mut lines = head_lines(head);
    let status_line = lines.next().ok_or(HttpResponseError::Malformed)?;
    let rest = status_line
        .strip_prefix(b"HTTP/1.")
        .ok_or(HttpResponseError::Malformed)?;
    let code = match rest {
        [minor, b' ', a, b, c, tail @ ..]
            if minor.is_ascii_digit()
                && [a, b, c].iter().all(|d| d.is_ascii_digit())
                && tail.first().is_none_or(|&b| b == b' ') =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(HttpResponseError::Malformed),
    };
    if code != 200 {
        return Err(HttpResponseError::Status(code));
    }
    for line in lines {
        let (name, value) = header_field(line).ok_or(HttpResponseError::Malformed)?;
        if name.eq_ignore_ascii_case(b"content-length") && value != CONTENT_LENGTH.as_bytes() {
            return Err(HttpResponseError::BadContentLength);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sstp::test_vectors::SSTPC_REQUEST;

    fn parse_all(bytes: &[u8]) -> Result<Parsed<SstpRequest>, HttpError> {
        RequestParser::new(DEFAULT_MAX_HEAD_LEN).feed(bytes)
    }

    fn request_with(request_line: &str, headers: &str) -> Vec<u8> {
        format!("{request_line}\r\n{headers}\r\n").into_bytes()
    }

    const GOOD_LINE: &str =
        "SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1";
    const GOOD_HEADERS: &str = "Host: vpn.example\r\nContent-Length: 18446744073709551615\r\n";

    #[test]
    fn client_request_is_sstp_clients_bytes() {
        let handshake = ClientHandshake::new("127.0.0.1", "{6BAA1E45-9937-77B0-567472AB}").unwrap();
        let mut out = Vec::new();
        handshake.write_request(&mut out);
        assert_eq!(out, SSTPC_REQUEST);
    }

    #[test]
    fn server_accepts_sstp_clients_request_and_keeps_its_correlation_id() {
        let parsed = parse_all(SSTPC_REQUEST).unwrap();
        assert_eq!(
            parsed,
            Parsed::Done {
                message: SstpRequest {
                    host: "127.0.0.1".into(),
                    correlation_id: Some("{6BAA1E45-9937-77B0-567472AB}".into()),
                },
                consumed: SSTPC_REQUEST.len(),
            }
        );
    }

    #[test]
    fn bytes_after_the_request_are_not_consumed() {
        let mut bytes = SSTPC_REQUEST.to_vec();
        bytes.extend_from_slice(&[0x10, 0x01, 0x00, 0x0e]);
        let Ok(Parsed::Done { consumed, .. }) = parse_all(&bytes) else {
            panic!("not parsed");
        };
        assert_eq!(&bytes[consumed..], &[0x10, 0x01, 0x00, 0x0e]);
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_request() {
        let mut bytes = SSTPC_REQUEST.to_vec();
        bytes.push(0x10);
        let mut parser = RequestParser::new(DEFAULT_MAX_HEAD_LEN);
        let mut done_at = None;
        for (i, b) in bytes.iter().enumerate() {
            match parser.feed(std::slice::from_ref(b)).unwrap() {
                Parsed::NeedMore => {}
                Parsed::Done { message, consumed } => {
                    assert_eq!(message.host, "127.0.0.1");
                    assert_eq!(consumed, 1);
                    done_at = Some(i);
                    break;
                }
            }
        }
        assert_eq!(done_at, Some(SSTPC_REQUEST.len() - 1));
    }

    #[test]
    fn bare_lf_and_case_variants_are_accepted() {
        let bytes = b"SSTP_DUPLEX_POST /sra_{ba195980-cd49-458B-9e23-c84ee0adcd75}/?tenantid=x HTTP/1.1\nhOsT: h\ncontent-length:18446744073709551615\n\n";
        let Ok(Parsed::Done { message, consumed }) = parse_all(bytes) else {
            panic!("not accepted");
        };
        assert_eq!(consumed, bytes.len());
        assert_eq!(message.host, "h");
        assert_eq!(message.correlation_id, None);
    }

    #[test]
    fn absolute_form_target_is_accepted() {
        let bytes = request_with(
            "SSTP_DUPLEX_POST https://vpn.example:443/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1",
            GOOD_HEADERS,
        );
        assert!(matches!(parse_all(&bytes), Ok(Parsed::Done { .. })));
    }

    #[test]
    fn every_request_error_has_its_status() {
        let cases: Vec<(Vec<u8>, HttpError, u16)> = vec![
            (
                request_with("SSTP_DUPLEX_POST", GOOD_HEADERS),
                HttpError::Malformed,
                400,
            ),
            (
                request_with("GARBAGE LINE HERE NOW", GOOD_HEADERS),
                HttpError::Malformed,
                400,
            ),
            (
                request_with(&GOOD_LINE.replace("HTTP/1.1", "HTTX/1.1"), GOOD_HEADERS),
                HttpError::Malformed,
                400,
            ),
            (
                request_with(&GOOD_LINE.replace("HTTP/1.1", "HTTP/1.0"), GOOD_HEADERS),
                HttpError::VersionNotSupported,
                505,
            ),
            (
                request_with(&GOOD_LINE.replace("HTTP/1.1", "HTTP/2.0"), GOOD_HEADERS),
                HttpError::VersionNotSupported,
                505,
            ),
            (
                request_with("SSTP_DUPLEX_POST / HTTP/1.1", GOOD_HEADERS),
                HttpError::NotFound,
                404,
            ),
            (
                request_with(&GOOD_LINE.replace("/sra_", "/SRA_"), GOOD_HEADERS),
                HttpError::NotFound,
                404,
            ),
            (
                request_with(&GOOD_LINE.replace("}/", "}"), GOOD_HEADERS),
                HttpError::NotFound,
                404,
            ),
            (
                request_with(&GOOD_LINE.replace("SSTP_DUPLEX_POST", "POST"), GOOD_HEADERS),
                HttpError::MethodNotAllowed,
                405,
            ),
            (
                request_with(
                    &GOOD_LINE.replace("SSTP_DUPLEX_POST", "sstp_duplex_post"),
                    GOOD_HEADERS,
                ),
                HttpError::MethodNotAllowed,
                405,
            ),
            (
                request_with(GOOD_LINE, "Content-Length: 18446744073709551615\r\n"),
                HttpError::BadHost,
                400,
            ),
            (
                request_with(GOOD_LINE, &format!("{GOOD_HEADERS}Host: other\r\n")),
                HttpError::BadHost,
                400,
            ),
            (
                request_with(GOOD_LINE, "Host: h\r\nContent-Length: 0\r\n"),
                HttpError::BadContentLength,
                400,
            ),
            (
                request_with(GOOD_LINE, "Host: h\r\n"),
                HttpError::MissingContentLength,
                411,
            ),
            (
                request_with(
                    GOOD_LINE,
                    &format!("{GOOD_HEADERS}Transfer-Encoding: chunked\r\n"),
                ),
                HttpError::TransferEncoding,
                400,
            ),
            (
                request_with(GOOD_LINE, &format!("{GOOD_HEADERS} folded\r\n")),
                HttpError::Malformed,
                400,
            ),
            (
                request_with(GOOD_LINE, &format!("{GOOD_HEADERS}Bad Name: x\r\n")),
                HttpError::Malformed,
                400,
            ),
            (
                request_with(GOOD_LINE, &format!("{GOOD_HEADERS}NoColon\r\n")),
                HttpError::Malformed,
                400,
            ),
            (
                request_with(GOOD_LINE, &format!("{GOOD_HEADERS}X: a\x01b\r\n")),
                HttpError::Malformed,
                400,
            ),
        ];
        for (bytes, error, code) in cases {
            assert_eq!(
                parse_all(&bytes),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(error.status_code(), code);
        }
    }

    #[test]
    fn oversized_heads_get_414_or_431() {
        let long_line = vec![b'A'; DEFAULT_MAX_HEAD_LEN];
        assert_eq!(parse_all(&long_line), Err(HttpError::UriTooLong));
        assert_eq!(HttpError::UriTooLong.status_code(), 414);

        let mut many_headers = format!("{GOOD_LINE}\r\n").into_bytes();
        while many_headers.len() < DEFAULT_MAX_HEAD_LEN {
            many_headers.extend_from_slice(b"X-Filler: yes\r\n");
        }
        let mut parser = RequestParser::new(DEFAULT_MAX_HEAD_LEN);
        let mut result = Ok(Parsed::NeedMore);
        for chunk in many_headers.chunks(1000) {
            result = parser.feed(chunk);
            if result != Ok(Parsed::NeedMore) {
                break;
            }
        }
        assert_eq!(result, Err(HttpError::HeadTooLarge));
        assert_eq!(HttpError::HeadTooLarge.status_code(), 431);
    }

    #[test]
    fn head_exactly_at_the_bound_is_accepted() {
        let mut bytes = format!("{GOOD_LINE}\r\n{GOOD_HEADERS}").into_bytes();
        let filler = DEFAULT_MAX_HEAD_LEN - bytes.len() - "X: \r\n\r\n".len();
        bytes.extend_from_slice(format!("X: {}\r\n\r\n", "y".repeat(filler)).as_bytes());
        assert_eq!(bytes.len(), DEFAULT_MAX_HEAD_LEN);
        assert!(matches!(parse_all(&bytes), Ok(Parsed::Done { .. })));
    }

    #[test]
    fn long_correlation_id_is_truncated() {
        let bytes = request_with(
            GOOD_LINE,
            &format!("{GOOD_HEADERS}SSTPCORRELATIONID: {}\r\n", "z".repeat(500)),
        );
        let Ok(Parsed::Done { message, .. }) = parse_all(&bytes) else {
            panic!("not accepted");
        };
        assert_eq!(
            message.correlation_id.unwrap().len(),
            MAX_CORRELATION_ID_LEN
        );
    }

    #[test]
    fn error_responses_are_exact() {
        let mut out = Vec::new();
        HttpError::NotFound.write_response(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        out.clear();
        HttpError::MethodNotAllowed.write_response(&mut out);
        assert_eq!(
            out,
            &b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\nAllow: SSTP_DUPLEX_POST\r\n\r\n"[..]
        );
    }

    #[test]
    fn ok_response_follows_the_spec_example() {
        let mut out = Vec::new();
        write_ok_response(
            &mut out,
            Some(DEFAULT_SERVER_HEADER),
            Some("Thu, 09 Nov 2006 00:51:09 GMT"),
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\nDate: Thu, 09 Nov 2006 00:51:09 GMT\r\n\r\n"[..]
        );
        out.clear();
        write_ok_response(&mut out, Some("evil\r\nX: y"), None);
        assert_eq!(
            out,
            &b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"[..]
        );
    }

    fn parse_response_all(bytes: &[u8]) -> Result<Parsed<()>, HttpResponseError> {
        ResponseParser::new(DEFAULT_MAX_HEAD_LEN).feed(bytes)
    }

    #[test]
    fn client_accepts_the_servers_reply_and_keeps_following_bytes() {
        let mut bytes = Vec::new();
        write_ok_response(&mut bytes, Some(DEFAULT_SERVER_HEADER), None);
        let head_len = bytes.len();
        bytes.extend_from_slice(&[0x10, 0x01]);
        assert_eq!(
            parse_response_all(&bytes),
            Ok(Parsed::Done {
                message: (),
                consumed: head_len
            })
        );
        // No Content-Length at all is fine too.
        assert!(matches!(
            parse_response_all(b"HTTP/1.1 200 OK\r\n\r\n"),
            Ok(Parsed::Done { .. })
        ));
        assert!(matches!(
            parse_response_all(b"HTTP/1.0 200\r\n\r\n"),
            Ok(Parsed::Done { .. })
        ));
    }

    #[test]
    fn every_response_error() {
        let cases: &[(&[u8], HttpResponseError)] = &[
            (
                b"HTTP/1.1 404 Not Found\r\n\r\n",
                HttpResponseError::Status(404),
            ),
            (b"HTTP/1.1 500 Oops\r\n\r\n", HttpResponseError::Status(500)),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                HttpResponseError::BadContentLength,
            ),
            (b"HTTP/2 200 OK\r\n\r\n", HttpResponseError::Malformed),
            (b"HTTP/1.1 20 OK\r\n\r\n", HttpResponseError::Malformed),
            (b"HTTP/1.1 2000 OK\r\n\r\n", HttpResponseError::Malformed),
            (b"SSTP\r\n\r\n", HttpResponseError::Malformed),
            (
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                HttpResponseError::Malformed,
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(
                parse_response_all(bytes),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(
            ResponseParser::new(16).feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n"),
            Err(HttpResponseError::HeadTooLarge)
        );
    }

    #[test]
    fn handshake_values_with_control_characters_are_refused() {
        assert_eq!(
            ClientHandshake::new("host\r\nX: y", "{id}"),
            Err(InvalidHeaderValue)
        );
        assert_eq!(ClientHandshake::new("", "{id}"), Err(InvalidHeaderValue));
        assert_eq!(ClientHandshake::new("h", "{id}\n"), Err(InvalidHeaderValue));
    }

    #[test]
    fn guid_strings_are_curly_braced() {
        let bytes = [
            0x6b, 0xaa, 0x1e, 0x45, 0x99, 0x37, 0x77, 0xb0, 0x56, 0x74, 0x72, 0xab, 0x00, 0x11,
            0x22, 0x33,
        ];
        assert_eq!(
            ClientHandshake::guid_string(bytes),
            "{6BAA1E45-9937-77B0-5674-72AB00112233}"
        );
    }
}
