//! Local users: pppd's chap-secrets file plus the configuration's inline
//! `[[users.local]]` entries, served to the authenticator through
//! [`PasswordStore`].
//!
//! # The chap-secrets format (as pppd reads it, see pppd(8) "AUTHENTICATION")
//!
//! One entry per line: `client server secret [address ...]`.
//!
//! * Words are separated by blanks. A word may be quoted with `"` or `'`
//!   (quotes may start mid-word: `pass" "word` is `pass word`), and a
//!   backslash escapes the next character (`\\`, `\"`, `\#`, ... are that
//!   character; `\s` is a space, `\t` a tab, `\n` a newline, `\r` a carriage
//!   return, `\ooo` octal, `\xhh` hex).
//! * `#` at the start of a word starts a comment that runs to the end of the
//!   line; inside a word (`pa#ss`) it is an ordinary character.
//! * `client` is a user name or `*` (any user).
//! * `server` is `*` or a server name; a line applies to sstpd when it is `*`
//!   or equals `users.server_name` (default `sstpd`). Other lines belong to
//!   other services sharing the file and are skipped (only split into words;
//!   their secret and address columns may use pppd features sstpd lacks).
//! * `address` is `*` or `-` (no fixed address: one comes from the pool),
//!   or one IPv4 address the user always gets. pppd's richer address forms
//!   (subnets, `!` exclusions, host names, several addresses, options after
//!   `--`) are rejected with an error rather than half-understood.
//!   pppd reads a lone `-` as "no address allowed"; sstpd gives every
//!   authenticated user an address, so `-` means the same as `*` here.
//!
//! # Which line wins
//!
//! pppd's rule (`scan_authfile`): among the lines that match a user, a line
//! naming the client beats one with client `*`, and at equal client rank a
//! line naming this server beats one with server `*`; among equally specific
//! lines **the first one wins** (a later duplicate never replaces an earlier
//! one). sstpd applies the same rule. Inline `[[users.local]]` entries beat
//! every line of the file.
//!
//! Errors carry the 1-based line number. Deviations from pppd: pppd skips
//! lines it cannot use silently; sstpd refuses the whole file, so a typo
//! never locks a user out unnoticed. Secrets read from files (`@/path`) and
//! empty secrets are rejected.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::UsersSection;
use crate::proto::auth::{LocalUser, PasswordStore};

/// A syntax or content error in a chap-secrets file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChapSecretsErrorKind {
    /// A quote opened on this line is not closed on it.
    UnterminatedQuote,
    /// A backslash ends the line (line continuation is not supported).
    TrailingBackslash,
    /// Fewer than three words: client, server and secret are required.
    MissingField(&'static str),
    /// The client column is an empty string.
    EmptyClient,
    /// The secret is an empty string.
    EmptySecret,
    /// `@/path` (secret read from a file) is not supported.
    IndirectSecret,
    /// An address column sstpd does not understand.
    UnsupportedAddress(String),
    /// An IPv4 address that cannot be a client address.
    BadAddress(Ipv4Addr),
    /// More than one address for one user.
    SeveralAddresses,
    /// Options after `--` are not supported.
    Options,
}

impl ChapSecretsErrorKind {
    /// Short snake_case name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChapSecretsErrorKind::UnterminatedQuote => "unterminated_quote",
            ChapSecretsErrorKind::TrailingBackslash => "trailing_backslash",
            ChapSecretsErrorKind::MissingField(_) => "missing_field",
            ChapSecretsErrorKind::EmptyClient => "empty_client",
            ChapSecretsErrorKind::EmptySecret => "empty_secret",
            ChapSecretsErrorKind::IndirectSecret => "indirect_secret",
            ChapSecretsErrorKind::UnsupportedAddress(_) => "unsupported_address",
            ChapSecretsErrorKind::BadAddress(_) => "bad_address",
            ChapSecretsErrorKind::SeveralAddresses => "several_addresses",
            ChapSecretsErrorKind::Options => "options",
        }
    }
}

impl fmt::Display for ChapSecretsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChapSecretsErrorKind::UnterminatedQuote => f.write_str("unterminated quote"),
            ChapSecretsErrorKind::TrailingBackslash => f.write_str(
                "backslash at the end of the line (continuation lines are not supported)",
            ),
            ChapSecretsErrorKind::MissingField(field) => write!(f, "missing the {field} column"),
            ChapSecretsErrorKind::EmptyClient => f.write_str("empty client name"),
            ChapSecretsErrorKind::EmptySecret => f.write_str("empty secret"),
            ChapSecretsErrorKind::IndirectSecret => {
                f.write_str("secrets read from files (@/path) are not supported")
            }
            ChapSecretsErrorKind::UnsupportedAddress(word) => write!(
                f,
                "address {word:?} is not supported: use one IPv4 address, '*' or '-'"
            ),
            ChapSecretsErrorKind::BadAddress(addr) => {
                write!(f, "{addr} cannot be a client address")
            }
            ChapSecretsErrorKind::SeveralAddresses => {
                f.write_str("more than one address: sstpd takes one fixed address per user")
            }
            ChapSecretsErrorKind::Options => f.write_str("options after '--' are not supported"),
        }
    }
}

/// A chap-secrets error with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChapSecretsError {
    pub line: usize,
    pub kind: ChapSecretsErrorKind,
}

impl fmt::Display for ChapSecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for ChapSecretsError {}

/// Loading the users failed; the previous table (if any) stays in force.
#[derive(Debug)]
#[non_exhaustive]
pub enum UsersError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Syntax {
        path: PathBuf,
        error: ChapSecretsError,
    },
}

impl UsersError {
    pub fn as_str(&self) -> &'static str {
        match self {
            UsersError::Read { .. } => "read",
            UsersError::Syntax { .. } => "syntax",
        }
    }
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsersError::Read { path, source } => {
                write!(
                    f,
                    "users.chap_secrets: cannot read {}: {source}",
                    path.display()
                )
            }
            UsersError::Syntax { path, error } => {
                write!(f, "users.chap_secrets: {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for UsersError {}

/// How specific a matching line is, pppd's `NONWILD_CLIENT`/`NONWILD_SERVER`
/// flags; inline users rank above every file line.
type Rank = u8;
const RANK_NAMED_CLIENT: Rank = 2;
const RANK_NAMED_SERVER: Rank = 1;
const RANK_INLINE: Rank = 4;

#[derive(Clone, Debug)]
struct Entry {
    user: LocalUser,
    rank: Rank,
}

/// A parsed set of users, immutable once built.
#[derive(Clone, Debug, Default)]
pub struct UserTable {
    named: HashMap<String, Entry>,
    /// The best line with client `*`, which accepts any user name.
    any_client: Option<Entry>,
    /// Lines that matched but lost to an earlier or more specific line.
    shadowed: usize,
    /// Lines for other servers.
    other_server: usize,
}

impl UserTable {
    /// Parses chap-secrets text; lines apply when their server column is
    /// `*` or `server_name`.
    pub fn parse_chap_secrets(text: &str, server_name: &str) -> Result<Self, ChapSecretsError> {
        let mut table = UserTable::default();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |kind| ChapSecretsError {
                line: line_no,
                kind,
            };
            let words = split_words(line).map_err(err)?;
            let mut words = words.into_iter();
            let Some(client) = words.next() else {
                continue; // blank or comment
            };
            let server = words
                .next()
                .ok_or(err(ChapSecretsErrorKind::MissingField("server")))?;
            let secret = words
                .next()
                .ok_or(err(ChapSecretsErrorKind::MissingField("secret")))?;
            // Lines for other daemons sharing the file may use pppd features
            // sstpd does not (subnets, @/path secrets): skip them unread.
            let server_wild = server == "*";
            if !server_wild && server != server_name {
                table.other_server += 1;
                continue;
            }
            if client.is_empty() {
                return Err(err(ChapSecretsErrorKind::EmptyClient));
            }
            if secret.is_empty() {
                return Err(err(ChapSecretsErrorKind::EmptySecret));
            }
            if secret.starts_with("@/") {
                return Err(err(ChapSecretsErrorKind::IndirectSecret));
            }
            let framed_ipv4 = parse_addresses(words).map_err(err)?;

            let client_wild = client == "*";
            let mut rank = 0;
            if !client_wild {
                rank |= RANK_NAMED_CLIENT;
            }
            if !server_wild {
                rank |= RANK_NAMED_SERVER;
            }
            let entry = Entry {
                user: LocalUser {
                    password: secret.into_bytes(),
                    framed_ipv4,
                },
                rank,
            };
            if client_wild {
                table.insert_any_client(entry);
            } else {
                table.insert(client, entry);
            }
        }
        Ok(table)
    }

    /// Keeps the existing entry unless the new one is strictly more specific
    /// (pppd: `if (got_flag <= best_flag) continue;`).
    fn insert(&mut self, name: String, entry: Entry) {
        match self.named.get(&name) {
            Some(existing) if existing.rank >= entry.rank => self.shadowed += 1,
            Some(_) => {
                self.shadowed += 1;
                self.named.insert(name, entry);
            }
            None => {
                self.named.insert(name, entry);
            }
        }
    }

    fn insert_any_client(&mut self, entry: Entry) {
        match &self.any_client {
            Some(existing) if existing.rank >= entry.rank => self.shadowed += 1,
            Some(_) => {
                self.shadowed += 1;
                self.any_client = Some(entry);
            }
            None => self.any_client = Some(entry),
        }
    }

    /// Adds the configuration's inline users, which beat the file.
    fn add_inline(&mut self, users: &UsersSection) {
        for user in &users.local {
            self.insert(
                user.name.clone(),
                Entry {
                    user: LocalUser {
                        password: user.password.0.clone().into_bytes(),
                        framed_ipv4: user.ip,
                    },
                    rank: RANK_INLINE,
                },
            );
        }
    }

    /// The user's secret and fixed address, by pppd's matching rule.
    pub fn get(&self, username: &str) -> Option<&LocalUser> {
        self.named
            .get(username)
            .or(self.any_client.as_ref())
            .map(|e| &e.user)
    }

    /// Number of named users.
    pub fn len(&self) -> usize {
        self.named.len()
    }

    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.any_client.is_none()
    }

    /// A `*` client line is present: any user name is accepted with its
    /// secret.
    pub fn has_any_client(&self) -> bool {
        self.any_client.is_some()
    }

    /// Matching lines that lost to an earlier or more specific line.
    pub fn shadowed_lines(&self) -> usize {
        self.shadowed
    }

    /// Lines skipped because they name another server.
    pub fn other_server_lines(&self) -> usize {
        self.other_server
    }
}

/// Splits one line into words (see the module documentation).
fn split_words(line: &str) -> Result<Vec<String>, ChapSecretsErrorKind> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some(_) => {}
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(unescape(&mut chars)?),
                (q, Some(open)) if q == open => quote = None,
                (_, Some(_)) => word.push(c),
                ('"' | '\'', None) => quote = Some(c),
                (c, None) if c.is_whitespace() => break,
                (c, None) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(ChapSecretsErrorKind::UnterminatedQuote);
        }
        words.push(word);
    }
}

/// Decodes the escape after a backslash.
fn unescape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<char, ChapSecretsErrorKind> {
    let c = chars
        .next()
        .ok_or(ChapSecretsErrorKind::TrailingBackslash)?;
    Ok(match c {
        's' => ' ',
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        '0'..='7' => {
            let mut value = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        value = value * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            // At most 0o777; keep it a byte like pppd does.
            char::from((value & 0xff) as u8)
        }
        'x' => {
            let mut value = 0;
            let mut digits = 0;
            while digits < 2 {
                match chars.peek().and_then(|d| d.to_digit(16)) {
                    Some(d) => {
                        value = value * 16 + d;
                        chars.next();
                        digits += 1;
                    }
                    None => break,
                }
            }
            if digits == 0 {
                'x'
            } else {
                char::from(value as u8)
            }
        }
        other => other,
    })
}

/// The address column: nothing, `*`, `-` or one IPv4 address, optionally
/// followed by a bare `--`.
fn parse_addresses(
    words: impl Iterator<Item = String>,
) -> Result<Option<Ipv4Addr>, ChapSecretsErrorKind> {
    let mut fixed = None;
    let mut seen_address = false;
    let mut words = words.peekable();
    while let Some(word) = words.next() {
        if word == "--" {
            if words.peek().is_some() {
                return Err(ChapSecretsErrorKind::Options);
            }
            break;
        }
        if seen_address {
            return Err(ChapSecretsErrorKind::SeveralAddresses);
        }
        seen_address = true;
        if word == "*" || word == "-" {
            continue;
        }
        let addr: Ipv4Addr = word
            .parse()
            .map_err(|_| ChapSecretsErrorKind::UnsupportedAddress(word.clone()))?;
        if addr.is_unspecified()
            || addr.is_loopback()
            || addr.is_multicast()
            || addr.is_broadcast()
            || addr.octets()[0] >= 240
        {
            return Err(ChapSecretsErrorKind::BadAddress(addr));
        }
        fixed = Some(addr);
    }
    Ok(fixed)
}

/// What a (re)load found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSummary {
    /// Named users in the table (file and inline together).
    pub users: usize,
    /// A `*` client line is in force.
    pub any_client: bool,
    /// File lines that lost to an earlier or more specific line.
    pub shadowed_lines: usize,
    /// File lines for other servers.
    pub other_server_lines: usize,
    /// The file is readable or writable by group or others (pppd warns too).
    pub loose_permissions: bool,
}

/// The live user table: read on every session setup, replaced atomically by
/// [`LocalUsers::reload`] (e.g. on SIGHUP) without disturbing lookups.
#[derive(Debug)]
pub struct LocalUsers {
    /// The `[users]` section the table was last built from.
    config: std::sync::Mutex<UsersSection>,
    table: ArcSwap<UserTable>,
}

impl LocalUsers {
    /// Builds the table from the configuration, reading the chap-secrets
    /// file if one is set.
    pub fn load(config: &UsersSection) -> Result<(Self, LoadSummary), UsersError> {
        let (table, summary) = build_table(config)?;
        Ok((
            LocalUsers {
                config: std::sync::Mutex::new(config.clone()),
                table: ArcSwap::from_pointee(table),
            },
            summary,
        ))
    }

    /// Re-reads the chap-secrets file and swaps the table in one step. On
    /// error the current table stays in force.
    pub fn reload(&self) -> Result<LoadSummary, UsersError> {
        let config = self.config().clone();
        self.reload_from(&config)
    }

    /// Rebuilds the table from a new `[users]` section (the configuration
    /// file re-read: inline users and the chap-secrets path may have
    /// changed) and swaps it in. On error the current table and section
    /// stay in force.
    pub fn reload_from(&self, config: &UsersSection) -> Result<LoadSummary, UsersError> {
        let (table, summary) = build_table(config)?;
        let mut current = self.config();
        self.table.store(Arc::new(table));
        *current = config.clone();
        Ok(summary)
    }

    fn config(&self) -> std::sync::MutexGuard<'_, UsersSection> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current table (a cheap snapshot).
    pub fn snapshot(&self) -> Arc<UserTable> {
        self.table.load_full()
    }
}

impl PasswordStore for LocalUsers {
    fn lookup(&self, username: &str) -> Option<LocalUser> {
        self.table.load().get(username).cloned()
    }
}

impl PasswordStore for UserTable {
    fn lookup(&self, username: &str) -> Option<LocalUser> {
        self.get(username).cloned()
    }
}

fn build_table(config: &UsersSection) -> Result<(UserTable, LoadSummary), UsersError> {
    let mut loose_permissions = false;
    let mut table = match &config.chap_secrets {
        Some(path) => {
            let text = read_secrets(path)?;
            loose_permissions = has_loose_permissions(path);
            UserTable::parse_chap_secrets(&text, &config.server_name).map_err(|error| {
                UsersError::Syntax {
                    path: path.clone(),
                    error,
                }
            })?
        }
        None => UserTable::default(),
    };
    table.add_inline(config);
    let summary = LoadSummary {
        users: table.len(),
        any_client: table.has_any_client(),
        shadowed_lines: table.shadowed_lines(),
        other_server_lines: table.other_server_lines(),
        loose_permissions,
    };
    Ok((table, summary))
}

fn read_secrets(path: &Path) -> Result<String, UsersError> {
    let bytes = std::fs::read(path).map_err(|source| UsersError::Read {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| UsersError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
    })
}

fn has_loose_permissions(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InlineUser, Secret};

    fn parse(text: &str) -> UserTable {
        UserTable::parse_chap_secrets(text, "sstpd").expect("valid chap-secrets")
    }

    fn parse_err(text: &str) -> ChapSecretsError {
        UserTable::parse_chap_secrets(text, "sstpd").expect_err("invalid chap-secrets")
    }

    fn password(table: &UserTable, name: &str) -> Option<Vec<u8>> {
        table.get(name).map(|u| u.password.clone())
    }

    #[test]
    fn plain_lines_comments_and_blank_lines() {
        let table = parse(
            "# Secrets for authentication using CHAP\n\
             # client\tserver\tsecret\t\tIP addresses\n\
             \n\
             alice\t*\tapple\t*\n   \t\n\
             bob sstpd banana 10.99.0.50 # fixed address\n\
             carol * cherry -\n\
             dave * date\n",
        );
        assert_eq!(table.len(), 4);
        assert_eq!(password(&table, "alice").as_deref(), Some(&b"apple"[..]));
        assert_eq!(table.get("alice").unwrap().framed_ipv4, None);
        assert_eq!(
            table.get("bob").unwrap().framed_ipv4,
            Some(Ipv4Addr::new(10, 99, 0, 50))
        );
        assert_eq!(table.get("carol").unwrap().framed_ipv4, None);
        assert_eq!(password(&table, "dave").as_deref(), Some(&b"date"[..]));
        assert_eq!(table.get("eve"), None);
        assert!(!table.has_any_client());
    }

    #[test]
    fn quoting_and_escapes() {
        let table = parse(
            "\"John Smith\" * \"pass word\" *\n\
             'single q' * 'it\"s' *\n\
             mid * pa\"ss wo\"rd\n\
             esc * a\\sb\\\\c\\\"d\\#e\n\
             oct * \\101\\x42c\n\
             hash * pa#ss # a comment\n\
             empty_quote_secret_ok * \"x\"\"\"\n",
        );
        assert_eq!(
            password(&table, "John Smith").as_deref(),
            Some(&b"pass word"[..])
        );
        assert_eq!(password(&table, "single q").as_deref(), Some(&b"it\"s"[..]));
        assert_eq!(password(&table, "mid").as_deref(), Some(&b"pass word"[..]));
        assert_eq!(
            password(&table, "esc").as_deref(),
            Some(&b"a b\\c\"d#e"[..])
        );
        assert_eq!(password(&table, "oct").as_deref(), Some(&b"ABc"[..]));
        assert_eq!(password(&table, "hash").as_deref(), Some(&b"pa#ss"[..]));
        assert_eq!(
            password(&table, "empty_quote_secret_ok").as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn server_column_selects_lines() {
        let table = parse(
            "alice pptpd for-pptp\n\
             bob l2tpd for-l2tp\n\
             bob sstpd for-sstp\n",
        );
        assert_eq!(table.get("alice"), None);
        assert_eq!(password(&table, "bob").as_deref(), Some(&b"for-sstp"[..]));
        assert_eq!(table.other_server_lines(), 2);
        let custom = UserTable::parse_chap_secrets("alice vpn1 x\n", "vpn1").unwrap();
        assert_eq!(password(&custom, "alice").as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn duplicates_follow_pppd_first_most_specific_wins() {
        // Equal rank: the first line wins.
        let table = parse("alice * first\nalice * second\n");
        assert_eq!(password(&table, "alice").as_deref(), Some(&b"first"[..]));
        assert_eq!(table.shadowed_lines(), 1);
        // A named server beats `*`, whatever the order.
        let table = parse("alice * wild\nalice sstpd named\nalice * later\n");
        assert_eq!(password(&table, "alice").as_deref(), Some(&b"named"[..]));
        assert_eq!(table.shadowed_lines(), 2);
        let table = parse("alice sstpd named\nalice * wild\n");
        assert_eq!(password(&table, "alice").as_deref(), Some(&b"named"[..]));
    }

    #[test]
    fn wildcard_client_is_a_fallback() {
        let table = parse("* * anyone\nalice * apple\n");
        assert!(table.has_any_client());
        assert_eq!(password(&table, "alice").as_deref(), Some(&b"apple"[..]));
        assert_eq!(password(&table, "whoever").as_deref(), Some(&b"anyone"[..]));
        // A named server beats `*` among wildcard-client lines too.
        let table = parse("* * wild\n* sstpd named\n");
        assert_eq!(password(&table, "x").as_deref(), Some(&b"named"[..]));
    }

    #[test]
    fn address_column_forms() {
        let table = parse("a * s 10.1.2.3 --\nb * s *\n");
        assert_eq!(
            table.get("a").unwrap().framed_ipv4,
            Some(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(table.get("b").unwrap().framed_ipv4, None);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize, ChapSecretsErrorKind)] = &[
            (
                "ok * s\nbad \"open * s\n",
                2,
                ChapSecretsErrorKind::UnterminatedQuote,
            ),
            (
                "\n\nalice * s\\",
                3,
                ChapSecretsErrorKind::TrailingBackslash,
            ),
            ("alice\n", 1, ChapSecretsErrorKind::MissingField("server")),
            (
                "# c\nalice *\n",
                2,
                ChapSecretsErrorKind::MissingField("secret"),
            ),
            (
                "alice * s\nalice * # x\n",
                2,
                ChapSecretsErrorKind::MissingField("secret"),
            ),
            ("\"\" * s\n", 1, ChapSecretsErrorKind::EmptyClient),
            ("alice * \"\"\n", 1, ChapSecretsErrorKind::EmptySecret),
            (
                "alice * @/etc/secret\n",
                1,
                ChapSecretsErrorKind::IndirectSecret,
            ),
            (
                "alice * s 10.0.0.0/24\n",
                1,
                ChapSecretsErrorKind::UnsupportedAddress("10.0.0.0/24".into()),
            ),
            (
                "alice * s !10.0.0.1\n",
                1,
                ChapSecretsErrorKind::UnsupportedAddress("!10.0.0.1".into()),
            ),
            (
                "alice * s 127.0.0.5\n",
                1,
                ChapSecretsErrorKind::BadAddress(Ipv4Addr::new(127, 0, 0, 5)),
            ),
            (
                "alice * s 224.0.0.1\n",
                1,
                ChapSecretsErrorKind::BadAddress(Ipv4Addr::new(224, 0, 0, 1)),
            ),
            (
                "alice * s 10.0.0.1 10.0.0.2\n",
                1,
                ChapSecretsErrorKind::SeveralAddresses,
            ),
            (
                "alice * s * -- mtu 1400\n",
                1,
                ChapSecretsErrorKind::Options,
            ),
        ];
        for (text, line, kind) in cases {
            let err = parse_err(text);
            assert_eq!((err.line, &err.kind), (*line, kind), "input {text:?}");
        }
        assert_eq!(
            parse_err("\nalice * s 10.0.0.0/24").to_string(),
            "line 2: address \"10.0.0.0/24\" is not supported: use one IPv4 address, '*' or '-'"
        );
    }

    #[test]
    fn lines_for_other_servers_are_only_tokenised() {
        // pppd features sstpd does not support are fine on other daemons' lines.
        let table = parse(
            "dave pptpd @/etc/ppp/dave.secret 10.0.0.0/24 !10.0.0.1
             erin l2tpd s 10.0.0.1 10.0.0.2 -- mtu 1400
             alice * a
",
        );
        assert_eq!(table.other_server_lines(), 2);
        assert_eq!(table.len(), 1);
        // But a line that cannot even be split into words is an error
        // wherever it points.
        assert_eq!(parse_err("alice pptpd \"x\n").line, 1);
        assert_eq!(
            parse_err("alice\n").kind,
            ChapSecretsErrorKind::MissingField("server")
        );
    }

    fn users_config(path: Option<PathBuf>, inline: &[(&str, &str)]) -> UsersSection {
        UsersSection {
            chap_secrets: path,
            local: inline
                .iter()
                .map(|(n, p)| InlineUser {
                    name: (*n).into(),
                    password: Secret((*p).into()),
                    ip: None,
                })
                .collect(),
            ..UsersSection::default()
        }
    }

    #[test]
    fn load_merges_inline_users_and_reload_swaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chap-secrets");
        std::fs::write(&path, "alice * v1\nbob * bob1 10.99.0.9\n").unwrap();
        let config = users_config(Some(path.clone()), &[("bob", "inline"), ("carol", "c")]);
        let (users, summary) = LocalUsers::load(&config).unwrap();
        assert_eq!(summary.users, 3);
        assert_eq!(summary.shadowed_lines, 1);
        assert_eq!(users.lookup("alice").unwrap().password, b"v1");
        let bob = users.lookup("bob").unwrap();
        assert_eq!(bob.password, b"inline");
        assert_eq!(bob.framed_ipv4, None);

        let before = users.snapshot();
        std::fs::write(&path, "alice * v2\n").unwrap();
        let summary = users.reload().unwrap();
        assert_eq!(summary.users, 3); // alice + inline bob and carol
        assert_eq!(users.lookup("alice").unwrap().password, b"v2");
        // A snapshot taken before the reload still sees the old table.
        assert_eq!(before.get("alice").unwrap().password, b"v1");

        // A broken file keeps the previous table.
        std::fs::write(&path, "alice * \"v3\n").unwrap();
        match users.reload() {
            Err(UsersError::Syntax { error, .. }) => assert_eq!(error.line, 1),
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert_eq!(users.lookup("alice").unwrap().password, b"v2");

        std::fs::remove_file(&path).unwrap();
        let err = users.reload().unwrap_err();
        assert_eq!(err.as_str(), "read");
        assert!(err
            .to_string()
            .starts_with("users.chap_secrets: cannot read"));
    }

    #[test]
    fn reload_from_a_new_section_replaces_inline_users() {
        let config = users_config(None, &[("alice", "a1"), ("bob", "b1")]);
        let (users, _) = LocalUsers::load(&config).unwrap();
        let changed = users_config(None, &[("alice", "a2"), ("carol", "c1")]);
        let summary = users.reload_from(&changed).unwrap();
        assert_eq!(summary.users, 2);
        assert_eq!(users.lookup("alice").unwrap().password, b"a2");
        assert!(users.lookup("bob").is_none(), "bob was removed");
        assert_eq!(users.lookup("carol").unwrap().password, b"c1");
        // A plain reload now rebuilds from the new section.
        users.reload().unwrap();
        assert!(users.lookup("carol").is_some());
        // A section naming a file that cannot be read changes nothing.
        let broken = users_config(Some("/nonexistent/chap-secrets".into()), &[]);
        assert!(users.reload_from(&broken).is_err());
        users.reload().unwrap();
        assert!(users.lookup("carol").is_some());
    }

    #[test]
    fn loose_permissions_are_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chap-secrets");
        std::fs::write(&path, "alice * a\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = users_config(Some(path.clone()), &[]);
        assert!(!LocalUsers::load(&config).unwrap().1.loose_permissions);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(LocalUsers::load(&config).unwrap().1.loose_permissions);
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC*") {
            let _ = UserTable::parse_chap_secrets(&text, "sstpd");
        }

        #[test]
        fn quoted_words_round_trip(name in "[a-zA-Z0-9 #*@!.-]{1,20}", secret in "[a-zA-Z0-9 #\\\\\"']{1,20}") {
            let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
            let line = format!("{} * {}\n", quote(&name), quote(&secret));
            let table = UserTable::parse_chap_secrets(&line, "sstpd").unwrap();
            proptest::prop_assert_eq!(table.get(&name).map(|u| u.password.clone()), Some(secret.into_bytes()));
        }
    }

    /// The example configuration's chap-secrets file, as the docs describe it.
    #[test]
    fn example_chap_secrets_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sstpd.toml");
        let config = crate::config::Config::load(&path).unwrap();
        let (users, summary) = crate::aaa::local::LocalUsers::load(&config.users).unwrap();
        assert_eq!(summary.users, 3);
        assert_eq!(summary.other_server_lines, 1);
        assert_eq!(
            users.lookup("alice").unwrap().password,
            b"correct horse battery staple"
        );
        assert_eq!(
            users.lookup("bob").unwrap().framed_ipv4,
            Some(Ipv4Addr::new(10, 99, 0, 20))
        );
        assert_eq!(users.lookup("Carol Smith").unwrap().password, b"pa ss#word");
        assert!(users.lookup("dave").is_none());
    }
}
