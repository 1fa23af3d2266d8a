//! A real FreeRADIUS 3.2 (Debian 12's `freeradius` 3.2.1) for the tests
//! of sstpd's RADIUS client, and `radclient` (`freeradius-utils`) to talk
//! to RADIUS servers and to sstpd's Dynamic Authorization listener.
//!
//! # The instance
//!
//! [`FreeRadius::start`] writes a configuration of its own into a fresh
//! directory under the system temp dir and runs `freeradius -X -d DIR`
//! (or `-f -l stdout` with [`FreeRadiusConfig::debug`] off) in the
//! foreground, its output going to `DIR/radiusd.log` ([`FreeRadius::log`]).
//! It is ready when that log says `Ready to process requests` (10 s at
//! most, [`FreeRadiusConfig::start_timeout`]); the child's pid is kept and
//! dropping the [`FreeRadius`] kills it (SIGKILL: it holds nothing a test
//! needs, the detail file is written before each Accounting-Response) and
//! removes the directory. A test process that is itself killed takes the
//! server with it: nextest runs each test in a process group of its own
//! and signals the whole group on timeout, and FreeRADIUS in the
//! foreground stays in it.
//!
//! The configuration is generated, not the package's `/etc/freeradius/3.0`
//! edited: that one listens on `*:1812`/`*:1813` plus an `inner-tunnel`
//! on 127.0.0.1:18120 and proxy sockets, so two instances collide; it
//! loads 28 modules (EAP with its certificates among them), and its
//! `detail` writes one file per client and day. A copy of it took 66-84 ms
//! to come up on the 2-core machine, the generated one 17-21 ms (`-X`,
//! until the "Ready" line; 22-33 ms through [`FreeRadius::start`] while
//! the machine was busy). From the package come the dictionaries
//! (`/usr/share/freeradius`), the modules (`/usr/lib/freeradius`) with
//! their built-in defaults, and the `access_reject` filter's contents.
//!
//! * Listeners: [`FreeRadiusConfig::address`] (127.0.0.1), auth and acct
//!   ports; port 0 picks free ones on the host (tests run in parallel; a
//!   port taken between the pick and FreeRADIUS's bind is retried with new
//!   ones) and means 1812/1813 in a namespace ([`FreeRadius::start_in`]).
//!   Status-Server is on (RFC 5997).
//! * Clients: the loopback ones (127.0.0.0/8 and ::1) with
//!   [`FreeRadiusConfig::secret`] (`testing123`), and
//!   [`FreeRadiusConfig::clients`]; each with
//!   `require_message_authenticator` as configured.
//! * Users: the `files` module, its file generated from
//!   [`FreeRadiusConfig::users`]: `"name" Cleartext-Password := "..."`
//!   (plus `Auth-Type := Reject` for [`RadiusUser::reject`]), then the
//!   reply items. Unknown users and wrong passwords are rejected.
//! * Authentication (`authorize`: chap, mschap, files, pap): PAP, CHAP-MD5
//!   and MS-CHAPv2 against the cleartext password. An Access-Reject keeps
//!   only Reply-Message, MS-CHAP-Error, EAP-Message, Message-Authenticator
//!   and Proxy-State (an `attr_filter` like the stock `access_reject`; without
//!   it the `files` reply items leak into rejects). `reject_delay` is 0, so
//!   rejects are as fast as accepts.
//! * Accounting: every Accounting-Request is written to one detail file,
//!   `DIR/detail` ([`FreeRadius::detail_records`]), then answered.
//! * EAP: [`FreeRadiusConfig::eap`] loads the `eap` module running
//!   EAP-MSCHAPv2; [`FreeRadiusConfig::eap_tls`] runs EAP-TLS, checking
//!   client certificates ([`EapTlsCertificates::generate`]);
//!   [`FreeRadiusConfig::peap`] runs PEAPv0, with
//!   certificates the test generates ([`PeapCertificates::generate`]) and
//!   phase 2 EAP-MSCHAPv2 in an `inner-tunnel` virtual server.
//! * More: [`FreeRadiusConfig::site`] adds modules and section entries in
//!   FreeRADIUS's own syntax ([`SiteExtra`]), e.g. `sql` and `sqlippool`
//!   for sstp-bench's cluster (a shared address pool and accounting in
//!   SQLite).
//! * Post-auth: [`FreeRadiusConfig::post_auth_reply`] sets (`:=`) reply
//!   items on every Access-Accept after authentication, replacing what
//!   `mschap` put there (a wrong MS-MPPE-Send-Key, to prove a NAS refuses
//!   the crypto binding it yields).
//!
//! # What FreeRADIUS 3.2.1 does
//!
//! Each fact is proven by the test of `server/tests/freeradius.rs` named
//! after it; the Message-Authenticator ones on the raw datagrams, checked
//! by the test's own RFC 2865/3579 code.
//!
//! * **Message-Authenticator in Access replies: never, by itself.**
//!   Access-Accept and Access-Reject carry none even when the
//!   Access-Request had one, and neither does the Access-Accept that
//!   answers Status-Server (test `stock_replies_carry_no_message_authenticator`).
//!   It can be made to: `update reply { Message-Authenticator := 0x00 }`
//!   makes the encoder put in the right HMAC-MD5 (RFC 3579 3.2: over the
//!   reply with the request's authenticator in the header). With
//!   [`FreeRadiusConfig::message_authenticator_in_replies`] on (the
//!   default) this configuration does that first thing in `authorize` (so
//!   it is the Accept's first attribute), in the Status-Server section, in
//!   `Post-Auth-Type REJECT` and in `accounting` (test
//!   `replies_carry_a_valid_message_authenticator_when_configured`). Off,
//!   the instance answers as stock 3.2.1 does: a client that insists on
//!   Message-Authenticator must refuse every one of its answers.
//! * **Accounting-Response: no Message-Authenticator, by itself** (test
//!   `stock_replies_carry_no_message_authenticator`), so a client that
//!   demands one on every response cannot use a stock FreeRADIUS 3.2.1 for
//!   accounting. Made to carry one, FreeRADIUS computes it over the
//!   response with **16 zero octets** in the authenticator field, not the
//!   request's authenticator (the test checks both and only the zero one
//!   verifies); the Response Authenticator is RFC 2866's as usual.
//! * **`require_message_authenticator = yes`** (per client, on by default
//!   here): an Access-Request without one is dropped silently (no answer;
//!   `-X` logs "Packet does not contain required Message-Authenticator
//!   attribute"); Accounting-Requests are answered with or without one
//!   (test `require_message_authenticator_drops_access_requests_without_one`).
//! * **MS-CHAPv2** (MS-CHAP-Challenge + MS-CHAP2-Response, a
//!   Cleartext-Password user): Access-Accept with, after the user's reply
//!   items, MS-CHAP2-Success (the ident, then `S=` and 40 upper-case hex
//!   digits, RFC 2759 5), MS-MPPE-Recv-Key and MS-MPPE-Send-Key (RFC 2548
//!   2.4.2/2.4.3, salt-encrypted with the secret and the request
//!   authenticator; decrypted, RFC 3079 3.4's 128-bit keys in the server's
//!   view: Send-Key is the server's MasterSendKey),
//!   MS-MPPE-Encryption-Policy = Encryption-Allowed (1) and
//!   MS-MPPE-Encryption-Types = RC4-40or128-bit-Allowed (6). A wrong
//!   password: Access-Reject with MS-CHAP-Error `<ident>E=691 R=1 C=... V=3
//!   M=Authentication rejected` and no keys (test
//!   `mschapv2_accept_carries_success_and_mppe_keys`).
//! * **The detail file**: per record a header line (the time, `%t`), then
//!   one `\tName = value` line per attribute in the request's order
//!   (strings quoted, enumerations by name: `Acct-Status-Type = Start`,
//!   `Interim-Update`, `Stop`; `Acct-Terminate-Cause = User-Request`), the
//!   request's Message-Authenticator if it had one, and FreeRADIUS's own
//!   `Timestamp = <unix time>`; a blank line ends the record. The record
//!   is complete before the Accounting-Response leaves: it is in the file
//!   when the client has its answer, no waiting needed (test
//!   `accounting_start_and_stop_reach_the_detail_file`).
//! * **radclient as a Dynamic Authorization Client** (RFC 5176) sends
//!   CoA-Request and Disconnect-Request to any port with the Request
//!   Authenticator of RFC 5176 2.3 (MD5 over the packet with a zero
//!   authenticator, then the secret) and, when asked, a Message-Authenticator
//!   computed over the request with a zero authenticator. It takes an
//!   ACK/NAK whose Message-Authenticator is computed with the *request's*
//!   authenticator in the header, and drops one computed over zeros
//!   ("Reply verification failed: ... invalid Message-Authenticator"):
//!   note this is the other way round from its own Accounting-Response
//!   (test `radclient_sends_coa_and_disconnect_requests`).
//!
//! Needs the Debian packages `freeradius` and `freeradius-utils`
//! (scripts/test installs them and leaves no daemon running);
//! [`FreeRadius::start_in`] needs root, like every namespace.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The shared secret of the loopback clients, as in the package's
/// `clients.conf`.
pub const DEFAULT_SECRET: &str = "testing123";

/// The line FreeRADIUS logs once its listeners are open.
const READY_LINE: &str = "Ready to process requests";

/// How often a start is retried when a picked port was taken meanwhile.
const PORT_ATTEMPTS: u32 = 5;

/// How often the log and the detail file are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// What went wrong with FreeRADIUS or radclient.
#[derive(Debug)]
#[non_exhaustive]
pub enum FreeRadiusError {
    /// A program is not installed (`apt-get install <package>`).
    NotInstalled {
        /// The program looked for.
        program: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A user, attribute or secret cannot be written into the
    /// configuration (a line break, a bad attribute name).
    InvalidConfig(String),
    /// Writing the configuration or reading a file failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        error: io::Error,
    },
    /// Starting a process failed.
    Spawn(io::Error),
    /// FreeRADIUS exited before it was ready.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log.
        log: String,
    },
    /// FreeRADIUS was not ready within the start timeout.
    StartTimeout {
        /// Its log so far.
        log: String,
    },
    /// The records a test waited for did not appear in time.
    RecordsTimeout {
        /// The records there were at the deadline.
        records: Vec<AccountingRecord>,
    },
    /// radclient did not send a request (bad attributes, bad target).
    RadclientFailed {
        /// Its exit status.
        status: ExitStatus,
        /// What it printed.
        output: String,
    },
}

impl FreeRadiusError {
    /// A short snake_case name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            FreeRadiusError::NotInstalled { .. } => "not_installed",
            FreeRadiusError::InvalidConfig(_) => "invalid_config",
            FreeRadiusError::Io { .. } => "io",
            FreeRadiusError::Spawn(_) => "spawn_failed",
            FreeRadiusError::Exited { .. } => "exited",
            FreeRadiusError::StartTimeout { .. } => "start_timeout",
            FreeRadiusError::RecordsTimeout { .. } => "records_timeout",
            FreeRadiusError::RadclientFailed { .. } => "radclient_failed",
        }
    }
}

impl fmt::Display for FreeRadiusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeRadiusError::NotInstalled { program, package } => write!(
                f,
                "`{program}` is not installed: `apt-get install {package}` (scripts/test installs it)"
            ),
            FreeRadiusError::InvalidConfig(why) => write!(f, "invalid FreeRADIUS setup: {why}"),
            FreeRadiusError::Io { what, error } => write!(f, "{what}: {error}"),
            FreeRadiusError::Spawn(e) => write!(f, "cannot start the process: {e}"),
            FreeRadiusError::Exited { status, log } => {
                write!(f, "freeradius exited ({status}) before it was ready:\n{log}")
            }
            FreeRadiusError::StartTimeout { log } => {
                write!(f, "freeradius was not ready in time:\n{log}")
            }
            FreeRadiusError::RecordsTimeout { records } => write!(
                f,
                "the expected accounting records did not appear; the detail file has: {records:#?}"
            ),
            FreeRadiusError::RadclientFailed { status, output } => {
                write!(f, "radclient sent nothing ({status}):\n{output}")
            }
        }
    }
}

impl std::error::Error for FreeRadiusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FreeRadiusError::Io { error, .. } | FreeRadiusError::Spawn(error) => Some(error),
            _ => None,
        }
    }
}

fn io_error(what: &'static str) -> impl FnOnce(io::Error) -> FreeRadiusError {
    move |error| FreeRadiusError::Io { what, error }
}

/// A user of the `files` module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusUser {
    /// The User-Name.
    pub name: String,
    /// The password (`Cleartext-Password`), for PAP, CHAP and MS-CHAPv2.
    pub password: String,
    /// Reply items, name and value in FreeRADIUS's syntax, e.g.
    /// `("Framed-IP-Address", "10.1.2.3")`, `("Session-Timeout", "5")`,
    /// `("Class", "\"gold\"")`,
    /// `("Framed-Route", "\"192.0.2.0/24 0.0.0.0 1\"")`,
    /// `("MS-Primary-DNS-Server", "10.0.0.53")`.
    pub reply: Vec<(String, String)>,
    /// Reject this user whatever the password (`Auth-Type := Reject`).
    pub reject: bool,
}

impl RadiusUser {
    /// A user accepted with `password` and no reply items.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> RadiusUser {
        RadiusUser {
            name: name.into(),
            password: password.into(),
            reply: Vec::new(),
            reject: false,
        }
    }

    /// Adds a reply item (`value` in FreeRADIUS's syntax); an attribute
    /// added again is added to the reply (`+=`), not dropped.
    pub fn with_reply(mut self, name: impl Into<String>, value: impl Into<String>) -> RadiusUser {
        self.reply.push((name.into(), value.into()));
        self
    }

    /// This user is rejected whatever the password.
    pub fn rejected(mut self) -> RadiusUser {
        self.reject = true;
        self
    }
}

/// A RADIUS client (NAS) FreeRADIUS answers: requests from `address` /
/// `prefix_len` with `secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusClient {
    /// The network requests come from.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The shared secret.
    pub secret: String,
}

/// How to set up a [`FreeRadius`].
#[derive(Debug, Clone)]
pub struct FreeRadiusConfig {
    /// The users (the `files` module).
    pub users: Vec<RadiusUser>,
    /// The loopback clients' secret ([`DEFAULT_SECRET`]).
    pub secret: String,
    /// The address both listeners bind (127.0.0.1).
    pub address: IpAddr,
    /// Authentication port; 0: a free one on the host, 1812 in a namespace.
    pub auth_port: u16,
    /// Accounting port; 0: a free one on the host, 1813 in a namespace.
    pub acct_port: u16,
    /// Put a Message-Authenticator into every reply: Access-Accept,
    /// Access-Reject, Accounting-Response and the Status-Server answer
    /// (true). Off, the replies are stock FreeRADIUS 3.2.1's: none has one.
    pub message_authenticator_in_replies: bool,
    /// Drop Access-Requests without a Message-Authenticator
    /// (`require_message_authenticator = yes` on every client; true).
    pub require_message_authenticator: bool,
    /// More clients than the loopback ones, e.g. another namespace's
    /// address on a veth.
    pub clients: Vec<RadiusClient>,
    /// Run with `-X` (full debug log of every packet; single-threaded):
    /// true. Off: `-f`, a thread pool and only the info log, for load.
    pub debug: bool,
    /// How long [`FreeRadius::start`] waits for it to be ready (10 s).
    pub start_timeout: Duration,
    /// Reply items set (`:=`, replacing) in `post-auth` on every
    /// Access-Accept, after `mschap` has added its own: e.g.
    /// `("MS-MPPE-Send-Key", "0x00…")` replaces the key FreeRADIUS derived,
    /// to play a server with a wrong key. Name and value in FreeRADIUS's
    /// syntax, as [`RadiusUser::reply`]; none by default.
    pub post_auth_reply: Vec<(String, String)>,
    /// Load the `eap` module (`default_eap_type = mschapv2`) into the
    /// site: EAP in Access-Requests is answered with Access-Challenges and
    /// the users' passwords run EAP-MSCHAPv2 (false).
    pub eap: bool,
    /// PEAP: the `eap` module (loaded whatever [`Self::eap`] says) gets
    /// `default_eap_type = peap` with these certificates in `tls-config
    /// tls-common` (TLS 1.2 only, no session cache), and PEAP's phase 2
    /// runs EAP-MSCHAPv2 in an `inner-tunnel` virtual server (`mschap`,
    /// `eap`, `files`: the same users). None by default.
    pub peap: Option<PeapCertificates>,
    /// EAP-TLS: the `eap` module (loaded whatever [`Self::eap`] says) gets
    /// a `tls` method with these certificates in `tls-config tls-common`
    /// (TLS 1.2 only, no session cache), checking the client certificate
    /// as a deployment would: signed by the CA (`ca_file`), issued by it
    /// (`check_cert_issuer`) and naming the EAP identity
    /// (`check_cert_cn = %{User-Name}`). `default_eap_type = tls`; with
    /// [`Self::peap`] too, these certificates serve both and a PEAP peer
    /// Naks its way to PEAP. None by default.
    pub eap_tls: Option<EapTlsCertificates>,
    /// More modules and site sections, in FreeRADIUS's syntax (none by
    /// default): e.g. `sql` and `sqlippool` for a shared address pool.
    pub site: SiteExtra,
}

/// The certificates of FreeRADIUS's PEAP server, PEM: a CA and a server
/// certificate it signed. The tests generate them ([`Self::generate`])
/// rather than running the package's `/etc/freeradius/3.0/certs/bootstrap`
/// (OpenSSL and `make`, seconds on the 2-core machine; the same shape:
/// a CA and a server certificate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeapCertificates {
    /// The CA's certificate: what a client verifies the server against.
    pub ca_pem: String,
    /// The server's certificate.
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
}

#[cfg(feature = "runtime")]
impl PeapCertificates {
    /// A fresh ECDSA P-256 CA and a server certificate for `server_name`
    /// (subjectAltName and CN), signed by it, for TLS server use.
    pub fn generate(server_name: &str) -> Result<Self, rcgen::Error> {
        Self::generate_with_issuer(server_name, "sstpd test PEAP CA").map(|(pki, _)| pki)
    }

    /// [`Self::generate`] with the CA named `ca_name`, also giving the
    /// CA's issuer for signing more certificates.
    fn generate_with_issuer(
        server_name: &str,
        ca_name: &str,
    ) -> Result<(Self, rcgen::Issuer<'static, rcgen::KeyPair>), rcgen::Error> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![server_name.to_owned()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, server_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer)?;
        let pki = PeapCertificates {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok((pki, issuer))
    }
}

/// The certificates of an EAP-TLS deployment, PEM: the CA, the RADIUS
/// server's certificate and a client certificate, both signed by the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EapTlsCertificates {
    /// The CA and the server's certificate and key.
    pub server: PeapCertificates,
    /// The client's certificate (CN: the identity it logs in with).
    pub client_cert_pem: String,
    /// The client's private key (PKCS#8).
    pub client_key_pem: String,
}

/// The CN of the CA [`EapTlsCertificates::generate`] makes; FreeRADIUS's
/// `check_cert_issuer` names it.
pub const EAP_TLS_CA_NAME: &str = "sstpd test EAP-TLS CA";

#[cfg(feature = "runtime")]
impl EapTlsCertificates {
    /// A fresh ECDSA P-256 CA named [`EAP_TLS_CA_NAME`], a server
    /// certificate for `server_name` and a client certificate for
    /// `client_name` (CN, extended key usage clientAuth), both signed by
    /// it. Two calls make two CAs of the same name: a client certificate
    /// of one is refused by a server trusting the other.
    pub fn generate(server_name: &str, client_name: &str) -> Result<Self, rcgen::Error> {
        let (server, issuer) =
            PeapCertificates::generate_with_issuer(server_name, EAP_TLS_CA_NAME)?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, client_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        Ok(EapTlsCertificates {
            server,
            client_cert_pem: cert.pem(),
            client_key_pem: key.serialize_pem(),
        })
    }
}

/// Configuration added to the generated instance, in FreeRADIUS's own
/// syntax: module definitions, and what runs in each section of the one
/// site, after what the instance runs there itself (in `authorize`,
/// `post-auth` and `accounting`) or alone (`preacct`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteExtra {
    /// Module definitions inside `modules { }`.
    pub modules: String,
    /// At the end of `authorize`.
    pub authorize: String,
    /// At the end of `post-auth` (for an Access-Accept).
    pub post_auth: String,
    /// `preacct`.
    pub preacct: String,
    /// In `accounting`, after the detail file.
    pub accounting: String,
}

impl Default for FreeRadiusConfig {
    fn default() -> Self {
        FreeRadiusConfig {
            users: Vec::new(),
            secret: DEFAULT_SECRET.to_owned(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            auth_port: 0,
            acct_port: 0,
            message_authenticator_in_replies: true,
            require_message_authenticator: true,
            clients: Vec::new(),
            debug: true,
            start_timeout: Duration::from_secs(10),
            post_auth_reply: Vec::new(),
            eap: false,
            peap: None,
            eap_tls: None,
            site: SiteExtra::default(),
        }
    }
}

/// One record of the detail file: the header line and the attributes in
/// the order written, values without their quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingRecord {
    /// The header line (the time the record was written).
    pub header: String,
    /// `(name, value)`, e.g. `("Acct-Status-Type", "Start")`,
    /// `("User-Name", "alice")`.
    pub attributes: Vec<(String, String)>,
}

impl AccountingRecord {
    /// The first value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }

    /// `Acct-Status-Type`: `Start`, `Stop`, `Interim-Update`, ...
    pub fn status_type(&self) -> Option<&str> {
        self.get("Acct-Status-Type")
    }
}

fn find_attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A running FreeRADIUS with its own directory; see the module doc.
#[derive(Debug)]
pub struct FreeRadius {
    dir: PathBuf,
    program: PathBuf,
    netns: Option<String>,
    debug: bool,
    start_timeout: Duration,
    auth: SocketAddr,
    acct: SocketAddr,
    child: Option<Child>,
}

impl FreeRadius {
    /// Starts an instance on the host (listening on `config.address`) and
    /// waits until it is ready.
    pub fn start(config: &FreeRadiusConfig) -> Result<FreeRadius, FreeRadiusError> {
        FreeRadius::launch(config, None)
    }

    /// Starts an instance inside `ns` (`ip netns exec`; ports 0 mean
    /// 1812/1813) and waits until it is ready. Drop it before `ns`.
    #[cfg(feature = "runtime")]
    pub fn start_in(
        ns: &crate::testing::netns::NetNs,
        config: &FreeRadiusConfig,
    ) -> Result<FreeRadius, FreeRadiusError> {
        FreeRadius::launch(config, Some(ns.name().to_owned()))
    }

    fn launch(
        config: &FreeRadiusConfig,
        netns: Option<String>,
    ) -> Result<FreeRadius, FreeRadiusError> {
        let users = render_users(&config.users)?;
        let program = find_program("freeradius", "freeradius")?;
        let dir = create_dir()?;
        let mut server = FreeRadius {
            dir,
            program,
            netns,
            debug: config.debug,
            start_timeout: config.start_timeout,
            auth: SocketAddr::new(config.address, config.auth_port),
            acct: SocketAddr::new(config.address, config.acct_port),
            child: None,
        };
        server.write_file("users", &users)?;
        server.write_file("acct_users", "")?;
        server.write_file("access_reject", ACCESS_REJECT_FILTER)?;
        let tls_certificates = config
            .eap_tls
            .as_ref()
            .map(|certificates| &certificates.server)
            .or(config.peap.as_ref());
        if let Some(certificates) = tls_certificates {
            server.write_file("eap-ca.pem", &certificates.ca_pem)?;
            server.write_file("eap-server.pem", &certificates.cert_pem)?;
            server.write_file("eap-server.key", &certificates.key_pem)?;
        }
        let picking = server.netns.is_none() && (config.auth_port == 0 || config.acct_port == 0);
        let mut attempt = 1;
        loop {
            let (auth_port, acct_port) = server.ports(config)?;
            server.auth.set_port(auth_port);
            server.acct.set_port(acct_port);
            let conf = render_radiusd_conf(config, &server.dir, auth_port, acct_port)?;
            server.write_file("radiusd.conf", &conf)?;
            match server.spawn_and_wait() {
                // A picked port was taken between the pick and the bind.
                Err(FreeRadiusError::Exited { log, .. })
                    if picking
                        && attempt < PORT_ATTEMPTS
                        && log.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                outcome => return outcome.map(|()| server),
            }
        }
    }

    /// The ports to use: the configured ones, free ones picked on the host
    /// for 0, or the standard ones in a namespace.
    fn ports(&self, config: &FreeRadiusConfig) -> Result<(u16, u16), FreeRadiusError> {
        if self.netns.is_some() {
            let pick = |port, default| if port == 0 { default } else { port };
            return Ok((pick(config.auth_port, 1812), pick(config.acct_port, 1813)));
        }
        // Both sockets are held until both ports are known, so they
        // differ; a configured port is used as it is (a taken one makes
        // FreeRADIUS exit with "Address already in use").
        let what = "picking a free UDP port";
        let pick = |port: u16| -> Result<(u16, Option<UdpSocket>), FreeRadiusError> {
            if port != 0 {
                return Ok((port, None));
            }
            let socket =
                UdpSocket::bind(SocketAddr::new(config.address, 0)).map_err(io_error(what))?;
            let port = socket.local_addr().map_err(io_error(what))?.port();
            Ok((port, Some(socket)))
        };
        let (auth, _auth_socket) = pick(config.auth_port)?;
        let (acct, _acct_socket) = pick(config.acct_port)?;
        Ok((auth, acct))
    }

    fn write_file(&self, name: &str, contents: &str) -> Result<(), FreeRadiusError> {
        fs::write(self.dir.join(name), contents).map_err(io_error("writing the configuration"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("radiusd.log")
    }

    /// The detail file accounting requests are written to.
    pub fn detail_path(&self) -> PathBuf {
        self.dir.join("detail")
    }

    /// The instance's directory (configuration, log, detail file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn_and_wait(&mut self) -> Result<(), FreeRadiusError> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error("opening the log"))?;
        let start_offset = log.metadata().map_err(io_error("opening the log"))?.len();
        let stderr = log.try_clone().map_err(io_error("opening the log"))?;
        let mut command = match &self.netns {
            None => Command::new(&self.program),
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]).arg(&self.program);
                command
            }
        };
        if self.debug {
            command.arg("-X");
        } else {
            command.args(["-f", "-l", "stdout"]);
        }
        command
            .arg("-d")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        self.child = Some(command.spawn().map_err(FreeRadiusError::Spawn)?);
        let deadline = Instant::now() + self.start_timeout;
        loop {
            let text = read_from(&log_path, start_offset)?;
            if text.contains(READY_LINE) {
                return Ok(());
            }
            let child = self.child.as_mut().expect("spawned above");
            if let Some(status) = child
                .try_wait()
                .map_err(io_error("waiting for freeradius"))?
            {
                self.child = None;
                let log = read_from(&log_path, start_offset)?;
                return Err(FreeRadiusError::Exited { status, log });
            }
            if Instant::now() >= deadline {
                self.stop();
                let log = read_from(&log_path, start_offset)?;
                return Err(FreeRadiusError::StartTimeout { log });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Where Access-Requests (and Status-Server) go.
    pub fn auth_addr(&self) -> SocketAddr {
        self.auth
    }

    /// Where Accounting-Requests go.
    pub fn acct_addr(&self) -> SocketAddr {
        self.acct
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (if running) and reaps it; the directory stays, so
    /// [`restart`](Self::restart) brings it back on the same ports with the
    /// same detail file.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error here means it has already exited; wait reaps it.
            let _ = child.kill();
            if let Err(error) = child.wait() {
                tracing::warn!(pid = child.id(), %error, "reaping freeradius failed");
            }
        }
    }

    /// Stops the server if it runs and starts it again, same configuration
    /// and ports, waiting until it is ready.
    pub fn restart(&mut self) -> Result<(), FreeRadiusError> {
        self.stop();
        self.spawn_and_wait()
    }

    /// The records of the detail file so far (complete ones: a record
    /// being written is left for the next call).
    pub fn detail_records(&self) -> Vec<AccountingRecord> {
        match fs::read_to_string(self.detail_path()) {
            Ok(text) => parse_detail(&text),
            Err(_) => Vec::new(),
        }
    }

    /// Polls the detail file until `done` holds for its records (at most
    /// `timeout`) and returns them.
    pub fn wait_for_records(
        &self,
        mut done: impl FnMut(&[AccountingRecord]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<AccountingRecord>, FreeRadiusError> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.detail_records();
            if done(&records) {
                return Ok(records);
            }
            if Instant::now() >= deadline {
                return Err(FreeRadiusError::RecordsTimeout { records });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Everything the server has logged (`-X`: every packet in and out),
    /// across restarts; print it when a test fails.
    pub fn log(&self) -> String {
        read_from(&self.log_path(), 0).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "removing the FreeRADIUS directory failed");
        }
    }
}

/// The file's text from byte `offset` on.
fn read_from(path: &Path, offset: u64) -> Result<String, FreeRadiusError> {
    let mut file = File::open(path).map_err(io_error("reading the log"))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(io_error("reading the log"))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io_error("reading the log"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A fresh `sstpd-freeradius-<pid>-<n>` under the temp dir (a stale one
/// of a crashed run with the same pid is replaced).
fn create_dir() -> Result<PathBuf, FreeRadiusError> {
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sstpd-freeradius-{}-{n}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_error("removing a stale directory"))?;
    }
    fs::create_dir(&dir).map_err(io_error("creating the FreeRADIUS directory"))?;
    Ok(dir)
}

/// `program` in `PATH` or in the sbin directories a non-login shell lacks.
fn find_program(program: &'static str, package: &'static str) -> Result<PathBuf, FreeRadiusError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(FreeRadiusError::NotInstalled { program, package })
}

/// What an Access-Reject may keep, as the package's
/// `mods-config/attr_filter/access_reject`.
const ACCESS_REJECT_FILTER: &str = "DEFAULT\n\
    \tEAP-Message =* ANY,\n\
    \tMessage-Authenticator =* ANY,\n\
    \tReply-Message =* ANY,\n\
    \tMS-CHAP-Error =* ANY,\n\
    \tProxy-State =* ANY\n";

/// A string in double quotes, FreeRADIUS-escaped; refuses line breaks.
fn quoted(what: &str, text: &str) -> Result<String, FreeRadiusError> {
    if text.chars().any(char::is_control) {
        return Err(FreeRadiusError::InvalidConfig(format!(
            "{what} {text:?} has a control character"
        )));
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The `files` module's users file.
fn render_users(users: &[RadiusUser]) -> Result<String, FreeRadiusError> {
    let mut out = String::new();
    for user in users {
        out.push_str(&quoted("user name", &user.name)?);
        out.push_str(" Cleartext-Password := ");
        out.push_str(&quoted("password", &user.password)?);
        if user.reject {
            out.push_str(", Auth-Type := Reject");
        }
        out.push('\n');
        for (index, (name, value)) in user.reply.iter().enumerate() {
            if !valid_item(name, value) {
                return Err(FreeRadiusError::InvalidConfig(format!(
                    "reply item {name:?} = {value:?} of {:?}",
                    user.name
                )));
            }
            let comma = if index + 1 < user.reply.len() {
                ","
            } else {
                ""
            };
            // `=` adds an attribute only if the reply has none of that
            // name yet: a repeated one (Framed-Route, Class) needs `+=`.
            let op = if user.reply[..index].iter().any(|(n, _)| n == name) {
                "+="
            } else {
                "="
            };
            out.push_str(&format!("\t{name} {op} {value}{comma}\n"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// Whether `name = value` can be written as an attribute item: a
/// dictionary-style name, a value without line breaks.
fn valid_item(name: &str, value: &str) -> bool {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    name_ok && !value.is_empty() && !value.chars().any(char::is_control)
}

/// `update reply { ... }` setting [`FreeRadiusConfig::post_auth_reply`],
/// or nothing.
fn render_post_auth_reply(items: &[(String, String)]) -> Result<String, FreeRadiusError> {
    if items.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from("update reply {\n");
    for (name, value) in items {
        if !valid_item(name, value) {
            return Err(FreeRadiusError::InvalidConfig(format!(
                "post-auth reply item {name:?} = {value:?}"
            )));
        }
        out.push_str(&format!("      {name} := {value}\n"));
    }
    out.push_str("    }");
    Ok(out)
}

/// `ipaddr = ...` or `ipv6addr = ...` for `address`.
fn ip_item(address: IpAddr, prefix_len: Option<u8>) -> String {
    let key = if address.is_ipv4() {
        "ipaddr"
    } else {
        "ipv6addr"
    };
    match prefix_len {
        Some(len) => format!("{key} = {address}/{len}"),
        None => format!("{key} = {address}"),
    }
}

/// radiusd.conf: the server, its clients, modules and the one site.
fn render_radiusd_conf(
    config: &FreeRadiusConfig,
    dir: &Path,
    auth_port: u16,
    acct_port: u16,
) -> Result<String, FreeRadiusError> {
    let dir = dir.display();
    let require = if config.require_message_authenticator {
        "yes"
    } else {
        "no"
    };
    let loopback = [
        (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
        (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
    ]
    .map(|(address, prefix_len)| RadiusClient {
        address,
        prefix_len,
        secret: config.secret.clone(),
    });
    let mut clients = String::new();
    for (index, client) in loopback.iter().chain(&config.clients).enumerate() {
        clients.push_str(&format!(
            "client c{index} {{\n  {}\n  secret = {}\n  require_message_authenticator = {require}\n}}\n",
            ip_item(client.address, Some(client.prefix_len)),
            quoted("secret", &client.secret)?,
        ));
    }
    let sign = if config.message_authenticator_in_replies {
        "update reply {\n        Message-Authenticator := 0x00\n      }"
    } else {
        ""
    };
    let listen = ip_item(config.address, None);
    let post_auth_reply = render_post_auth_reply(&config.post_auth_reply)?;
    // The eap module returns "updated" while a conversation goes on, so
    // `files` still finds the password for its mschapv2 method (which
    // runs the site's Auth-Type MS-CHAP).
    let tls_methods = config.peap.is_some() || config.eap_tls.is_some();
    let (eap_module, eap_authorize, eap_authenticate) = if tls_methods {
        let default_eap_type = if config.eap_tls.is_some() {
            "tls"
        } else {
            "peap"
        };
        let client_checks = if config.eap_tls.is_some() {
            format!(
                "check_cert_issuer = \"/CN={EAP_TLS_CA_NAME}\"\n      \
                 check_cert_cn = %{{User-Name}}\n      "
            )
        } else {
            String::new()
        };
        let peap = if config.peap.is_some() {
            "peap {\n      tls = tls-common\n      default_eap_type = mschapv2\n      \
             virtual_server = \"inner-tunnel\"\n      copy_request_to_tunnel = no\n      \
             use_tunneled_reply = no\n    }\n    "
        } else {
            ""
        };
        let tls = if config.eap_tls.is_some() {
            "tls {\n      tls = tls-common\n    }\n  "
        } else {
            ""
        };
        (
            format!(
                "eap {{\n    default_eap_type = {default_eap_type}\n    timer_expire = 60\n    \
                 max_sessions = 4096\n    mschapv2 {{\n      send_error = no\n    }}\n    \
                 tls-config tls-common {{\n      private_key_file = {dir}/eap-server.key\n      \
                 certificate_file = {dir}/eap-server.pem\n      ca_file = {dir}/eap-ca.pem\n      \
                 {client_checks}\
                 tls_min_version = \"1.2\"\n      tls_max_version = \"1.2\"\n      \
                 fragment_size = 1024\n      cipher_list = \"DEFAULT\"\n      \
                 ecdh_curve = \"prime256v1\"\n      cache {{\n        enable = no\n      }}\n    }}\n    \
                 {peap}{tls}}}"
            ),
            "eap {\n      ok = return\n    }",
            "Auth-Type EAP {\n      eap\n    }",
        )
    } else if config.eap {
        (
            "eap {\n    default_eap_type = mschapv2\n    timer_expire = 60\n    \
             max_sessions = 4096\n    mschapv2 {\n      send_error = no\n    }\n  }"
                .to_owned(),
            "eap {\n      ok = return\n    }",
            "Auth-Type EAP {\n      eap\n    }",
        )
    } else {
        (String::new(), "", "")
    };
    // PEAP's phase 2: the inner EAP-MSCHAPv2 against the same users.
    let inner_tunnel = if config.peap.is_some() {
        "server inner-tunnel {\n  authorize {\n    mschap\n    eap {\n      ok = return\n    }\n    \
         files\n  }\n  authenticate {\n    Auth-Type MS-CHAP {\n      mschap\n    }\n    \
         eap\n  }\n  post-auth {\n    ok\n  }\n}"
    } else {
        ""
    };
    let site = &config.site;
    let (extra_modules, extra_authorize, extra_post_auth, extra_preacct, extra_accounting) = (
        &site.modules,
        &site.authorize,
        &site.post_auth,
        &site.preacct,
        &site.accounting,
    );
    Ok(format!(
        r#"# Generated by sstpd::testing::freeradius.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
libdir = /usr/lib/freeradius
raddbdir = {dir}
confdir = {dir}
modconfdir = {dir}
logdir = {dir}
radacctdir = {dir}
run_dir = {dir}
db_dir = {dir}
pidfile = {dir}/radiusd.pid
name = freeradius
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
log {{
  destination = files
  file = {dir}/radiusd.log
  auth = yes
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}}
thread pool {{
  start_servers = 2
  max_servers = 8
  min_spare_servers = 1
  max_spare_servers = 4
  max_requests_per_server = 0
}}
{clients}
modules {{
  pap {{
  }}
  chap {{
  }}
  mschap {{
  }}
  files {{
    filename = {dir}/users
    acctusersfile = {dir}/acct_users
  }}
  attr_filter access_reject {{
    key = "%{{User-Name}}"
    filename = {dir}/access_reject
  }}
  detail {{
    filename = {dir}/detail
    escape_filenames = no
    permissions = 0600
    header = "%t"
  }}
  always ok {{
    rcode = ok
  }}
  {eap_module}
  {extra_modules}
}}
server default {{
  listen {{
    type = auth
    {listen}
    port = {auth_port}
  }}
  listen {{
    type = acct
    {listen}
    port = {acct_port}
  }}
  authorize {{
    Autz-Type Status-Server {{
      {sign}
      ok
    }}
    {sign}
    chap
    mschap
    {eap_authorize}
    files
    pap
    {extra_authorize}
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
    Auth-Type CHAP {{
      chap
    }}
    Auth-Type MS-CHAP {{
      mschap
    }}
    {eap_authenticate}
  }}
  post-auth {{
    {post_auth_reply}
    {extra_post_auth}
    Post-Auth-Type REJECT {{
      access_reject
      {sign}
    }}
  }}
  preacct {{
    {extra_preacct}
  }}
  accounting {{
    detail
    {extra_accounting}
    {sign}
    ok
  }}
}}
{inner_tunnel}
"#
    ))
}

/// The complete records of a detail file.
fn parse_detail(text: &str) -> Vec<AccountingRecord> {
    let mut records = Vec::new();
    let mut current: Option<AccountingRecord> = None;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            // A line still being written: the record is not complete.
            break;
        }
        let line = line.trim_end_matches('\n');
        if line.trim().is_empty() {
            records.extend(current.take());
        } else if line.starts_with(['\t', ' ']) {
            if let (Some(record), Some(pair)) = (current.as_mut(), parse_pair(line)) {
                record.attributes.push(pair);
            }
        } else {
            // A header without the blank line before it: keep what was
            // complete, start anew.
            current = Some(AccountingRecord {
                header: line.to_owned(),
                attributes: Vec::new(),
            });
        }
    }
    records
}

/// `\tName = value` → (name, value without quotes).
fn parse_pair(line: &str) -> Option<(String, String)> {
    let (name, value) = line.trim().split_once(" = ")?;
    Some((name.to_owned(), unquote(value)))
}

/// A value as FreeRADIUS prints it, without the quotes of a string.
fn unquote(value: &str) -> String {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The packet radclient sends ([`radclient`]'s `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RadclientKind {
    /// Access-Request.
    Auth,
    /// Accounting-Request.
    Acct,
    /// Status-Server (RFC 5997).
    Status,
    /// CoA-Request (RFC 5176).
    Coa,
    /// Disconnect-Request (RFC 5176).
    Disconnect,
}

impl RadclientKind {
    /// radclient's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RadclientKind::Auth => "auth",
            RadclientKind::Acct => "acct",
            RadclientKind::Status => "status",
            RadclientKind::Coa => "coa",
            RadclientKind::Disconnect => "disconnect",
        }
    }
}

/// How [`radclient_with`] runs radclient.
#[derive(Debug, Clone)]
pub struct RadclientOptions {
    /// Add `Message-Authenticator` (radclient computes it; true).
    pub message_authenticator: bool,
    /// How long radclient waits for an answer per try (2 s).
    pub timeout: Duration,
    /// How many times it sends (1: no retransmission).
    pub tries: u32,
    /// Run it inside this `ip netns` namespace (e.g.
    /// `NetNs::name()`), to reach a server on that namespace's loopback.
    pub netns: Option<String>,
}

impl Default for RadclientOptions {
    fn default() -> Self {
        RadclientOptions {
            message_authenticator: true,
            timeout: Duration::from_secs(2),
            tries: 1,
            netns: None,
        }
    }
}

/// What radclient got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadclientOutput {
    /// The answer's code name (`Access-Accept`, `Disconnect-ACK`, ...);
    /// `None`: no (valid) answer came.
    pub code: Option<String>,
    /// The answer's attributes as radclient decodes them (encrypted ones
    /// such as MS-MPPE-Send-Key decrypted), values without quotes.
    pub attributes: Vec<(String, String)>,
    /// Everything radclient printed (`-x`), for failure messages.
    pub output: String,
}

impl RadclientOutput {
    /// The first value of attribute `name` in the answer.
    pub fn get(&self, name: &str) -> Option<&str> {
        find_attribute(&self.attributes, name)
    }
}

/// Sends one request with radclient (Message-Authenticator added, one try,
/// 2 s): `attributes` as `(name, value)` in FreeRADIUS's syntax (quote
/// strings with spaces or commas). See [`radclient_with`].
pub fn radclient(
    target: SocketAddr,
    kind: RadclientKind,
    secret: &str,
    attributes: &[(&str, &str)],
) -> Result<RadclientOutput, FreeRadiusError> {
    radclient_with(
        target,
        kind,
        secret,
        attributes,
        &RadclientOptions::default(),
    )
}

/// Runs `radclient -x` once: sends the request to `target`, waits for the
/// answer and returns it. No answer is `Ok` with `code: None`; an error
/// means radclient sent nothing.
pub fn radclient_with(
    target: SocketAddr,
    kind: RadclientKind,
    secret: &str,
    attributes: &[(&str, &str)],
    options: &RadclientOptions,
) -> Result<RadclientOutput, FreeRadiusError> {
    let program = find_program("radclient", "freeradius-utils")?;
    let mut items: Vec<String> = attributes
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    if options.message_authenticator {
        items.push("Message-Authenticator = 0x00".to_owned());
    }
    let input = items.join(", ");
    if input.chars().any(char::is_control) {
        return Err(FreeRadiusError::InvalidConfig(format!(
            "radclient attributes {input:?} have a control character"
        )));
    }
    let mut command = match &options.netns {
        None => Command::new(&program),
        Some(name) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", name]).arg(&program);
            command
        }
    };
    command
        .arg("-x")
        .args(["-r", &options.tries.max(1).to_string()])
        .args(["-t", &format!("{:.3}", options.timeout.as_secs_f64())])
        .arg(target.to_string())
        .arg(kind.as_str())
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(FreeRadiusError::Spawn)?;
    let mut stdin = child.stdin.take().expect("piped above");
    let written = stdin.write_all(format!("{input}\n").as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(io_error("waiting for radclient"))?;
    written.map_err(io_error("writing to radclient"))?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_radclient_output(&output).ok_or(FreeRadiusError::RadclientFailed {
        status: out.status,
        output,
    })
}

/// radclient `-x` output → the answer; `None` if nothing was sent.
fn parse_radclient_output(output: &str) -> Option<RadclientOutput> {
    let mut lines = output.lines();
    lines.clone().find(|line| line.starts_with("Sent "))?;
    let mut code = None;
    let mut attributes = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_owned);
            attributes = lines
                .by_ref()
                .take_while(|l| l.starts_with(['\t', ' ']))
                .filter_map(parse_pair)
                .collect();
            break;
        }
    }
    Some(RadclientOutput {
        code,
        attributes,
        output: output.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_quotes_names_and_lists_reply_items() {
        let users = [
            RadiusUser::new("alice", "pa\"ss\\word")
                .with_reply("Framed-IP-Address", "10.1.2.3")
                .with_reply("Class", "\"gold\"")
                .with_reply("Class", "\"silver\""),
            RadiusUser::new("bob smith", "x").rejected(),
        ];
        assert_eq!(
            render_users(&users).unwrap(),
            "\"alice\" Cleartext-Password := \"pa\\\"ss\\\\word\"\n\
             \tFramed-IP-Address = 10.1.2.3,\n\
             \tClass = \"gold\",\n\
             \tClass += \"silver\"\n\n\
             \"bob smith\" Cleartext-Password := \"x\", Auth-Type := Reject\n\n"
        );
    }

    #[test]
    fn users_file_refuses_line_breaks_and_bad_names() {
        let bad = [
            RadiusUser::new("a\nb", "x"),
            RadiusUser::new("a", "x\n"),
            RadiusUser::new("a", "x").with_reply("Class", "\"a\nDEFAULT\""),
            RadiusUser::new("a", "x").with_reply("Bad Name", "1"),
            RadiusUser::new("a", "x").with_reply("Class", ""),
        ];
        for user in bad {
            let error = render_users(&[user]).unwrap_err();
            assert_eq!(error.as_str(), "invalid_config");
        }
    }

    #[test]
    fn detail_parser_keeps_complete_records_only() {
        let text = "Fri Dec  4 21:02:11 2026\n\
            \tUser-Name = \"alice \\\"a\\\"\"\n\
            \tAcct-Status-Type = Start\n\
            \tTimestamp = 1796418131\n\
            \n\
            Fri Dec  4 21:02:12 2026\n\
            \tAcct-Status-Type = Stop\n\
            \n\
            Fri Dec  4 21:02:13 2026\n\
            \tAcct-Status-Type = Interim-Update\n";
        let records = parse_detail(text);
        assert_eq!(records.len(), 2, "the third has no end yet");
        assert_eq!(records[0].header, "Fri Dec  4 21:02:11 2026");
        assert_eq!(records[0].get("User-Name"), Some("alice \"a\""));
        assert_eq!(records[0].status_type(), Some("Start"));
        assert_eq!(records[0].get("Timestamp"), Some("1796418131"));
        assert_eq!(records[1].status_type(), Some("Stop"));
        // A line cut in the middle of a write ends the parse there.
        assert_eq!(parse_detail("h\n\tA = 1\n\n h2\n\tB = \"x").len(), 1);
    }

    #[test]
    fn radclient_output_gives_code_and_reply_attributes() {
        let output = "Sent Access-Request Id 3 from 0.0.0.0:39026 to 127.0.0.1:21812 length 45\n\
            \tUser-Name = \"alice\"\n\
            \tUser-Password = \"alice-secret\"\n\
            Received Access-Accept Id 3 from 127.0.0.1:21812 to 127.0.0.1:39026 length 74\n\
            \tFramed-IP-Address = 10.1.2.3\n\
            \tFramed-Route = \"192.0.2.0/24 0.0.0.0 1\"\n\
            (0) -: Expected Access-Accept got Access-Reject\n";
        let parsed = parse_radclient_output(output).unwrap();
        assert_eq!(parsed.code.as_deref(), Some("Access-Accept"));
        assert_eq!(
            parsed.attributes,
            [
                ("Framed-IP-Address".to_owned(), "10.1.2.3".to_owned()),
                (
                    "Framed-Route".to_owned(),
                    "192.0.2.0/24 0.0.0.0 1".to_owned()
                ),
            ]
        );
        let silent = "Sent Access-Request Id 7 from 0.0.0.0:1 to 127.0.0.1:2 length 45\n\
            \tUser-Name = \"alice\"\n\
            (0) No reply from server for ID 7 socket 3\n";
        let parsed = parse_radclient_output(silent).unwrap();
        assert_eq!(parsed.code, None);
        assert!(parsed.attributes.is_empty());
        assert_eq!(
            parsed.get("User-Name"),
            None,
            "request attributes are not the reply's"
        );
        assert!(parse_radclient_output("radclient: Failed parsing input\n").is_none());
    }

    #[test]
    fn config_signs_replies_only_when_asked() {
        let dir = Path::new("/tmp/x");
        let mut config = FreeRadiusConfig::default();
        let signed = render_radiusd_conf(&config, dir, 1, 2).unwrap();
        assert_eq!(signed.matches("Message-Authenticator := 0x00").count(), 4);
        assert!(signed.contains("require_message_authenticator = yes"));
        config.message_authenticator_in_replies = false;
        config.require_message_authenticator = false;
        config.clients.push(RadiusClient {
            address: "10.9.0.0".parse().unwrap(),
            prefix_len: 24,
            secret: "s".into(),
        });
        let stock = render_radiusd_conf(&config, dir, 1, 2).unwrap();
        assert!(!stock.contains("Message-Authenticator :="));
        assert!(!stock.contains("require_message_authenticator = yes"));
        assert!(stock.contains("ipaddr = 10.9.0.0/24\n  secret = \"s\""));
        assert!(stock.contains("ipv6addr = ::1/128"));
    }

    #[test]
    fn eap_tls_checks_the_client_certificates_issuer_and_name() {
        let dir = Path::new("/tmp/x");
        let certificates = EapTlsCertificates {
            server: PeapCertificates {
                ca_pem: String::new(),
                cert_pem: String::new(),
                key_pem: String::new(),
            },
            client_cert_pem: String::new(),
            client_key_pem: String::new(),
        };
        let config = FreeRadiusConfig {
            eap_tls: Some(certificates),
            ..Default::default()
        };
        let conf = render_radiusd_conf(&config, dir, 1, 2).unwrap();
        assert!(conf.contains("default_eap_type = tls"), "{conf}");
        assert!(conf.contains("check_cert_issuer = \"/CN=sstpd test EAP-TLS CA\""));
        assert!(conf.contains("check_cert_cn = %{User-Name}"));
        assert!(conf.contains("tls {\n      tls = tls-common\n    }"));
        assert!(!conf.contains("peap {"));
        assert!(!conf.contains("server inner-tunnel"));
    }

    #[test]
    fn post_auth_reply_items_replace_after_authentication() {
        let dir = Path::new("/tmp/x");
        let mut config = FreeRadiusConfig::default();
        let plain = render_radiusd_conf(&config, dir, 1, 2).unwrap();
        assert!(!plain.contains("update reply {\n      MS-MPPE"), "{plain}");
        config.post_auth_reply =
            vec![("MS-MPPE-Send-Key".into(), format!("0x{}", "11".repeat(16)))];
        let conf = render_radiusd_conf(&config, dir, 1, 2).unwrap();
        let post_auth = conf.split("post-auth {").nth(1).unwrap();
        let update = post_auth.find("MS-MPPE-Send-Key := 0x1111").unwrap();
        let reject = post_auth.find("Post-Auth-Type REJECT").unwrap();
        assert!(
            update < reject,
            "set for accepts, before the reject section:\n{conf}"
        );
        config.post_auth_reply = vec![("MS-MPPE-Send-Key".into(), "0x11\n}".into())];
        assert!(matches!(
            render_radiusd_conf(&config, dir, 1, 2),
            Err(FreeRadiusError::InvalidConfig(_))
        ));
    }
}
