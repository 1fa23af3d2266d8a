//! The accounting spool: every accounting record is on disk before it is
//! first sent, and counts as delivered only once a server acknowledged
//! it, so a record survives servers that do not answer and sstpd
//! restarting.
//!
//! # On disk (`<state_dir>/radius-accounting/`)
//!
//! * One file per batch of records (`<seq>.acct`, TOML, each record with
//!   its id): the RADIUS thread takes every record waiting and writes them
//!   together, so a setup storm costs one `fsync` of a file and one of the
//!   directory per batch, not per record (on this project's VM one synced
//!   file costs about 2 ms: per record that would cap accounting at a few
//!   hundred records a second). The file is written under a temporary
//!   name, synced, renamed into place and the directory synced before any
//!   record of it is sent.
//! * `acked.log`: the id of each acknowledged record, appended as the
//!   answers come, not synced (a process crash keeps it, the page cache
//!   does; only a power failure can lose its tail, and then those records
//!   are sent once more: a duplicate, never a loss). A batch file goes when
//!   every record in it is acknowledged.
//!
//! At start the records of the batch files not in `acked.log` are the ones
//! to send again; they are rewritten into one batch file and the rest
//! (old batches, the log) removed. Files that do not parse are renamed
//! `*.bad` and left for the operator. The spool holds at most `max`
//! unacknowledged records: beyond, [`Spool::store_batch`] leaves the rest
//! out and the caller sends them without a copy on disk (counted).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::accounting::AcctRecord;

/// The spool's directory under the state directory.
pub const SPOOL_DIR: &str = "radius-accounting";
const EXTENSION: &str = "acct";
const ACKED: &str = "acked.log";

/// Names one spooled record (unique across restarts of one spool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpoolId(u64);

/// What [`Spool::open`] found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Records an earlier run did not get acknowledged, oldest first: to
    /// be sent again.
    pub records: Vec<(SpoolId, AcctRecord)>,
    /// Files that did not parse (renamed `*.bad`).
    pub unreadable: usize,
}

/// A batch file's contents.
#[derive(Serialize, Deserialize)]
struct BatchFile {
    record: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    id: u64,
    #[serde(flatten)]
    record: AcctRecord,
}

/// The spool directory, its bound, and which records each batch file
/// still waits for.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max: usize,
    /// The next record id and batch number.
    next_id: u64,
    next_batch: u64,
    /// Unacknowledged records: their batch.
    pending: HashMap<SpoolId, u64>,
    /// Batch files: how many of their records are unacknowledged.
    batches: HashMap<u64, usize>,
    acked: File,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, holding at most `max`
    /// unacknowledged records, and returns what an earlier run left to
    /// send.
    pub fn open(dir: &Path, max: usize) -> io::Result<(Spool, Recovered)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let acked_path = dir.join(ACKED);
        let acked: HashSet<u64> = match fs::read_to_string(&acked_path) {
            Ok(text) => text
                .lines()
                .filter_map(|l| u64::from_str_radix(l.trim(), 16).ok())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e),
        };
        let mut recovered = Recovered::default();
        let mut old_files = Vec::new();
        let mut max_batch = None;
        let mut max_id = None;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                // Never renamed into place: none of it was sent.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(batch) = name
                .strip_suffix(&format!(".{EXTENSION}"))
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            else {
                continue;
            };
            let parsed = fs::read_to_string(&path)
                .ok()
                .and_then(|text| toml::from_str::<BatchFile>(&text).ok());
            match parsed {
                Some(file) => {
                    max_batch = max_batch.max(Some(batch));
                    for Entry { id, record } in file.record {
                        max_id = max_id.max(Some(id));
                        if !acked.contains(&id) {
                            recovered.records.push((SpoolId(id), record));
                        }
                    }
                    old_files.push(path);
                }
                None => {
                    recovered.unreadable += 1;
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        recovered.records.sort_by_key(|(id, _)| *id);
        let mut spool = Spool {
            dir: dir.to_owned(),
            max,
            next_id: max_id.map_or(0, |id| id + 1),
            next_batch: max_batch.map_or(0, |b| b + 1),
            pending: HashMap::new(),
            batches: HashMap::new(),
            acked: Self::open_acked(&acked_path, false)?,
        };
        // One batch of what is left, then the old files and the log go.
        if !recovered.records.is_empty() {
            let entries: Vec<(SpoolId, &AcctRecord)> =
                recovered.records.iter().map(|(id, r)| (*id, r)).collect();
            spool.write_batch(&entries)?;
        }
        for path in old_files {
            fs::remove_file(path)?;
        }
        spool.sync()?;
        // Only now: a crash before this replays acknowledged records once
        // more (duplicates), never loses one.
        spool.acked = Self::open_acked(&acked_path, true)?;
        Ok((spool, recovered))
    }

    fn open_acked(path: &Path, truncate: bool) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(!truncate)
            .write(true)
            .truncate(truncate)
            .mode(0o600)
            .open(path)
    }

    /// Records not yet acknowledged.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every record was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn batch_path(&self, batch: u64) -> PathBuf {
        self.dir.join(format!("{batch:016x}.{EXTENSION}"))
    }

    /// Writes `entries` as one synced batch file (the directory is synced
    /// by [`Spool::sync`]).
    fn write_batch(&mut self, entries: &[(SpoolId, &AcctRecord)]) -> io::Result<()> {
        let file = BatchFile {
            record: entries
                .iter()
                .map(|(id, record)| Entry {
                    id: id.0,
                    record: (*record).clone(),
                })
                .collect(),
        };
        let text = toml::to_string(&file).map_err(io::Error::other)?;
        let batch = self.next_batch;
        let path = self.batch_path(batch);
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
            return Err(e);
        }
        self.next_batch += 1;
        for (id, _) in entries {
            self.pending.insert(*id, batch);
        }
        self.batches.insert(batch, entries.len());
        Ok(())
    }

    /// Spools as many of `records` as the bound allows, in one synced
    /// file, and syncs the directory: durable when this returns. Returns
    /// each record's id, `None` for those beyond the bound.
    pub fn store_batch(&mut self, records: &[AcctRecord]) -> io::Result<Vec<Option<SpoolId>>> {
        let room = self
            .max
            .saturating_sub(self.pending.len())
            .min(records.len());
        let entries: Vec<(SpoolId, &AcctRecord)> = records[..room]
            .iter()
            .enumerate()
            .map(|(i, record)| (SpoolId(self.next_id + i as u64), record))
            .collect();
        if !entries.is_empty() {
            self.write_batch(&entries)?;
            self.next_id += entries.len() as u64;
            self.sync()?;
        }
        let mut ids: Vec<Option<SpoolId>> = entries.iter().map(|(id, _)| Some(*id)).collect();
        ids.resize(records.len(), None);
        Ok(ids)
    }

    /// Syncs the directory (the renames into it).
    fn sync(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Marks a record acknowledged; its batch file goes when it was the
    /// last one the file waited for.
    pub fn acknowledge(&mut self, id: SpoolId) -> io::Result<()> {
        let Some(batch) = self.pending.remove(&id) else {
            return Ok(());
        };
        writeln!(self.acked, "{:016x}", id.0)?;
        let left = self.batches.get_mut(&batch).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            self.batches.remove(&batch);
            fs::remove_file(self.batch_path(batch))?;
            if self.batches.is_empty() {
                // Nothing on disk waits: the log starts afresh.
                self.acked = Self::open_acked(&self.dir.join(ACKED), true)?;
            }
        }
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

    fn files(dir: &Path, extension: &str) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == extension)
            })
            .count()
    }

    #[test]
    fn unacknowledged_records_survive_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPOOL_DIR);
        let (mut spool, recovered) = Spool::open(&path, 10).unwrap();
        assert!(recovered.records.is_empty() && spool.is_empty());
        let first: Vec<SpoolId> = spool
            .store_batch(&[record(0), record(1)])
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        let second: Vec<SpoolId> = spool
            .store_batch(&[record(2), record(3)])
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(files(&path, "acct"), 2, "one file per batch");
        spool.acknowledge(first[1]).unwrap();
        spool.acknowledge(second[0]).unwrap();
        spool.acknowledge(second[1]).unwrap();
        assert_eq!(files(&path, "acct"), 1, "a fully acknowledged batch goes");
        assert_eq!(spool.len(), 1);
        drop(spool);

        // A half-written batch of a crash, and a damaged one.
        fs::write(path.join("00000000000000ff.tmp"), "record = ").unwrap();
        fs::write(path.join("0000000000000100.acct"), "not toml [").unwrap();
        let (mut spool, recovered) = Spool::open(&path, 10).unwrap();
        let times: Vec<u64> = recovered
            .records
            .iter()
            .map(|(_, r)| r.event_time)
            .collect();
        assert_eq!(times, [0], "only the unacknowledged record");
        assert_eq!(recovered.unreadable, 1);
        assert!(path.join("0000000000000100.bad").exists());
        assert!(!path.join("00000000000000ff.tmp").exists());
        assert_eq!(files(&path, "acct"), 1, "rewritten as one batch");
        assert_eq!(spool.len(), 1);
        // New ids come after everything found; acknowledging the
        // recovered record empties the spool.
        let next = spool.store_batch(&[record(9)]).unwrap()[0].unwrap();
        assert!(next > recovered.records[0].0);
        spool.acknowledge(recovered.records[0].0).unwrap();
        spool.acknowledge(next).unwrap();
        assert!(spool.is_empty());
        assert_eq!(files(&path, "acct"), 0);
        drop(spool);
        let (_, recovered) = Spool::open(&path, 10).unwrap();
        assert!(recovered.records.is_empty());
    }

    #[test]
    fn a_full_spool_takes_what_fits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = Spool::open(dir.path(), 3).unwrap();
        let ids = spool
            .store_batch(&[record(1), record(2), record(3), record(4)])
            .unwrap();
        assert_eq!(ids.iter().filter(|id| id.is_some()).count(), 3);
        assert_eq!(ids[3], None);
        spool.acknowledge(ids[0].unwrap()).unwrap();
        assert_eq!(spool.store_batch(&[record(5), record(6)]).unwrap()[1], None);
    }
}
