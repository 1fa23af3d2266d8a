//! The accounting spool: every accounting record is on disk before it is
//! first sent, and leaves the disk only when a server acknowledged it, so
//! a record survives servers that do not answer and sstpd restarting.
//!
//! One file per record in `<state_dir>/radius-accounting/`, named by a
//! sequence number (replayed in that order), holding the record as TOML.
//! A record is written to a temporary file, synced, and renamed into place;
//! the directory is synced once per batch ([`Spool::sync`]) before any of
//! the batch is sent, so a record a server may have seen is one a power
//! failure cannot take back. The spool holds at most `max` records:
//! beyond, [`Spool::store`] refuses and the caller sends the record
//! without a copy on disk (counted). Files that do not parse are renamed
//! `*.bad` and left for the operator.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::accounting::AcctRecord;

/// The spool's directory under the state directory.
pub const SPOOL_DIR: &str = "radius-accounting";
const EXTENSION: &str = "acct";

/// Names one spooled record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpoolId(u64);

/// Why a record could not be spooled.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpoolError {
    /// `max` records are spooled already.
    Full,
    /// The file could not be written.
    Io(io::Error),
}

impl SpoolError {
    pub fn as_str(&self) -> &'static str {
        match self {
            SpoolError::Full => "full",
            SpoolError::Io(_) => "io",
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full => f.write_str("accounting spool full"),
            SpoolError::Io(e) => write!(f, "accounting spool: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Records left by an earlier run, oldest first: to be sent again.
    pub records: Vec<(SpoolId, AcctRecord)>,
    /// Files that did not parse (renamed `*.bad`).
    pub unreadable: usize,
}

/// The spool directory and its bound.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max: usize,
    next: u64,
    len: usize,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, holding at most `max` records,
    /// and returns what an earlier run left in it.
    pub fn open(dir: &Path, max: usize) -> io::Result<(Spool, Recovered)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut found = Vec::new();
        let mut recovered = Recovered::default();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                // Never renamed into place: never sent.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(&format!(".{EXTENSION}"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            let parsed = fs::read_to_string(&path)
                .ok()
                .and_then(|text| toml::from_str::<AcctRecord>(&text).ok());
            match parsed {
                Some(record) => found.push((SpoolId(seq), record)),
                None => {
                    recovered.unreadable += 1;
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        found.sort_by_key(|(id, _)| *id);
        let next = found.last().map_or(0, |(id, _)| id.0 + 1);
        let spool = Spool {
            dir: dir.to_owned(),
            max,
            next,
            len: found.len(),
        };
        recovered.records = found;
        Ok((spool, recovered))
    }

    /// Records on disk.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn path(&self, id: SpoolId) -> PathBuf {
        self.dir.join(format!("{:016x}.{EXTENSION}", id.0))
    }

    /// Writes `record` to its own synced file. Durable once
    /// [`Spool::sync`] has run after it.
    pub fn store(&mut self, record: &AcctRecord) -> Result<SpoolId, SpoolError> {
        if self.len >= self.max {
            return Err(SpoolError::Full);
        }
        let text = toml::to_string(record).map_err(|e| SpoolError::Io(io::Error::other(e)))?;
        let id = SpoolId(self.next);
        let path = self.path(id);
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(SpoolError::Io(e));
        }
        self.next += 1;
        self.len += 1;
        Ok(id)
    }

    /// Makes the renames since the last call durable (syncs the
    /// directory).
    pub fn sync(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Forgets an acknowledged record.
    pub fn remove(&mut self, id: SpoolId) -> io::Result<()> {
        fs::remove_file(self.path(id))?;
        self.len = self.len.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aaa::radius::accounting::AcctKind;

    fn record(n: u64) -> AcctRecord {
        let mut record = AcctRecord::nas(AcctKind::Start, n);
        record.session_id = format!("s{n}");
        record.user = "alice".into();
        record
    }

    #[test]
    fn records_survive_a_restart_in_order_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPOOL_DIR);
        let (mut spool, recovered) = Spool::open(&path, 10).unwrap();
        assert!(recovered.records.is_empty() && spool.is_empty());
        let ids: Vec<SpoolId> = (0..4).map(|n| spool.store(&record(n)).unwrap()).collect();
        spool.sync().unwrap();
        spool.remove(ids[1]).unwrap();
        assert_eq!(spool.len(), 3);
        drop(spool);

        // A half-written record of a crash, and a damaged one.
        fs::write(path.join("00000000000000ff.tmp"), "kind = ").unwrap();
        fs::write(path.join("0000000000000100.acct"), "not toml [").unwrap();
        let (mut spool, recovered) = Spool::open(&path, 10).unwrap();
        let users: Vec<u64> = recovered
            .records
            .iter()
            .map(|(_, r)| r.event_time)
            .collect();
        assert_eq!(users, [0, 2, 3], "oldest first, the removed one gone");
        assert_eq!(recovered.unreadable, 1);
        assert!(path.join("0000000000000100.bad").exists());
        assert!(!path.join("00000000000000ff.tmp").exists());
        assert_eq!(spool.len(), 3);
        // New records come after everything found.
        let next = spool.store(&record(9)).unwrap();
        assert!(next > recovered.records.last().unwrap().0);
    }

    #[test]
    fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), 2).unwrap();
        let first = spool.store(&record(1)).unwrap();
        spool.store(&record(2)).unwrap();
        assert!(matches!(spool.store(&record(3)), Err(SpoolError::Full)));
        spool.remove(first).unwrap();
        spool.store(&record(3)).unwrap();
    }
}
