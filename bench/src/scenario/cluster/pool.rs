//! The cluster's shared brain: FreeRADIUS with accounting into SQLite
//! (`radacct`) and one address pool for every node (`sqlippool` on
//! `radippool`), and the queries that read both back.
//!
//! The database is created here with the `sqlite3` shell (Debian package
//! `sqlite3`) from the package's own schemas
//! (`mods-config/sql/{main,ippool}/sqlite/schema.sql`), in WAL mode (the
//! readers here do not block FreeRADIUS's writers), and the pool's rows
//! are inserted once, already expired (free).
//!
//! The `sql` module includes the package's main queries unchanged:
//! Accounting Start inserts a `radacct` row, Stop closes it, and
//! **Accounting-On/Off close every open row of the NAS** (by
//! NAS-IP-Address: each node sends its own `radius.nas_ip_address`). The
//! `sqlippool` queries are written here rather than included, for two
//! reasons found on Debian 12's FreeRADIUS 3.2.1:
//!
//! * its SQLite `allocate_find` lacks the `AND` between its two
//!   conditions (`WHERE pool_name = '…' expiry_time < …`), a syntax error
//!   on every allocation;
//! * its `pool_key` is NAS-Port, which sstpd does not send (a VPN server
//!   has no ports): with an empty key, `allocate_existing` hands a NAS the
//!   address of another of its sessions. The key here is the
//!   Acct-Session-Id, unique per session across nodes and restarts.
//!
//! Allocation runs in `post-auth` (`BEGIN EXCLUSIVE`: one allocation at a
//! time over the whole cluster, which is what makes the pool shared
//! safely), the address goes back in Framed-IP-Address, and an accept
//! without one is turned into a reject (a full pool must not let the node
//! fall back to its local pool). Accounting Start extends the lease,
//! Stop frees the address, Accounting-On/Off free every address of the
//! NAS (`on_clear`/`off_clear`).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use sstpd::testing::freeradius::SiteExtra;

use crate::scenario::ScenarioError;

/// The pool's name in `radippool` (`Pool-Name`).
pub const POOL_NAME: &str = "cluster";

/// Where the package keeps the SQL schemas and queries.
const SQL_DIR: &str = "/etc/freeradius/3.0/mods-config/sql";

/// The lease an allocation and a Start give (seconds); a Stop or an
/// Accounting-On ends it sooner.
pub const LEASE_SECONDS: u32 = 3600;

/// The shared SQLite database.
#[derive(Debug, Clone)]
pub struct PoolDatabase {
    path: PathBuf,
}

/// A held address: the `radippool` row of a lease that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// The NAS-IP-Address of the node holding it.
    pub nas: Ipv4Addr,
}

/// The accounting rows of one NAS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountingRows {
    /// Rows with a start and no stop.
    pub open: u64,
    /// Rows closed (acctstoptime set).
    pub closed: u64,
}

impl PoolDatabase {
    /// Creates `path` with both schemas and the pool's addresses (every
    /// address of `first..=last` except `gateway`).
    pub fn create(
        path: &Path,
        first: Ipv4Addr,
        last: Ipv4Addr,
        gateway: Ipv4Addr,
    ) -> Result<PoolDatabase, ScenarioError> {
        let main = read_schema("main")?;
        let ippool = read_schema("ippool")?;
        let script = format!(
            "PRAGMA journal_mode=WAL;\n{main}\n{ippool}\n\
             WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last})\n\
             INSERT INTO radippool (id, pool_name, framedipaddress, expiry_time)\n\
             SELECT i, '{POOL_NAME}', \
             printf('%d.%d.%d.%d', (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255), \
             '2000-01-01 00:00:00' FROM n WHERE i != {gateway};\n",
            first = u32::from(first),
            last = u32::from(last),
            gateway = u32::from(gateway),
        );
        let db = PoolDatabase {
            path: path.to_owned(),
        };
        db.sql(&script)?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `script` with the `sqlite3` shell; its output, rows as
    /// `a|b|c` lines.
    fn sql(&self, script: &str) -> Result<String, ScenarioError> {
        let output = Command::new("sqlite3")
            .arg("-batch")
            .arg("-cmd")
            .arg(".timeout 5000")
            .arg(&self.path)
            .arg(script)
            .output()
            .map_err(|e| {
                ScenarioError::Setup(format!(
                    "sqlite3 (apt-get install sqlite3; scripts/test installs it): {e}"
                ))
            })?;
        if !output.status.success() {
            return Err(ScenarioError::Setup(format!(
                "sqlite3 {}: {}",
                self.path.display(),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Every lease that has not expired.
    pub fn leases(&self) -> Result<Vec<Lease>, ScenarioError> {
        let text = self.sql(&format!(
            "SELECT framedipaddress, nasipaddress FROM radippool \
             WHERE pool_name = '{POOL_NAME}' AND expiry_time > datetime('now');"
        ))?;
        text.lines()
            .map(|line| {
                let (address, nas) = line.split_once('|').unwrap_or((line, ""));
                match (address.parse(), nas.parse()) {
                    (Ok(address), Ok(nas)) => Ok(Lease { address, nas }),
                    _ => Err(ScenarioError::Setup(format!(
                        "unexpected radippool row {line:?}"
                    ))),
                }
            })
            .collect()
    }

    /// The accounting rows of the NAS at `nas`.
    pub fn accounting(&self, nas: Ipv4Addr) -> Result<AccountingRows, ScenarioError> {
        let text = self.sql(&format!(
            "SELECT count(*) FILTER (WHERE acctstoptime IS NULL), \
             count(*) FILTER (WHERE acctstoptime IS NOT NULL) \
             FROM radacct WHERE nasipaddress = '{nas}';"
        ))?;
        let (open, closed) = text.trim().split_once('|').unwrap_or(("0", "0"));
        Ok(AccountingRows {
            open: open.parse().unwrap_or(0),
            closed: closed.parse().unwrap_or(0),
        })
    }
}

fn read_schema(which: &str) -> Result<String, ScenarioError> {
    let path = format!("{SQL_DIR}/{which}/sqlite/schema.sql");
    std::fs::read_to_string(&path).map_err(|e| {
        ScenarioError::Setup(format!(
            "{path}: {e} (the Debian package freeradius-config has it)"
        ))
    })
}

/// The modules and site sections FreeRADIUS runs for the cluster with
/// its database at `db`.
pub fn site(db: &Path) -> SiteExtra {
    let db = db.display();
    let mut modules = String::new();
    let _ = write!(
        modules,
        r#"expr {{
  }}
  always reject {{
    rcode = reject
  }}
  sql {{
    dialect = "sqlite"
    driver = "rlm_sql_sqlite"
    sqlite {{
      filename = "{db}"
      busy_timeout = 10000
    }}
    radius_db = "radius"
    acct_table1 = "radacct"
    acct_table2 = "radacct"
    postauth_table = "radpostauth"
    authcheck_table = "radcheck"
    groupcheck_table = "radgroupcheck"
    authreply_table = "radreply"
    groupreply_table = "radgroupreply"
    usergroup_table = "radusergroup"
    read_groups = no
    delete_stale_sessions = yes
    pool {{
      start = 2
      min = 2
      max = 8
      spare = 4
      uses = 0
      retry_delay = 1
      lifetime = 0
      idle_timeout = 0
    }}
    client_table = "nas"
    group_attribute = "SQL-Group"
    $INCLUDE {SQL_DIR}/main/sqlite/queries.conf
  }}
  sqlippool {{
    sql_module_instance = "sql"
    dialect = "sqlite"
    pool_name = "Pool-Name"
    ippool_table = "radippool"
    lease_duration = {LEASE_SECONDS}
    attribute_name = Framed-IP-Address
    req_attribute_name = Framed-IP-Address
    pool_key = "%{{Acct-Session-Id}}"
    allocate_begin = "BEGIN EXCLUSIVE"
    allocate_commit = "COMMIT"
    allocate_existing = "SELECT framedipaddress FROM ${{ippool_table}} WHERE pool_name = '%{{control:${{pool_name}}}}' AND nasipaddress = '%{{NAS-IP-Address}}' AND pool_key = '${{pool_key}}' ORDER BY expiry_time DESC LIMIT 1"
    allocate_find = "SELECT framedipaddress FROM ${{ippool_table}} WHERE pool_name = '%{{control:${{pool_name}}}}' AND expiry_time < datetime('now') ORDER BY expiry_time LIMIT 1"
    pool_check = "SELECT id FROM ${{ippool_table}} WHERE pool_name = '%{{control:${{pool_name}}}}' LIMIT 1"
    allocate_update = "UPDATE ${{ippool_table}} SET nasipaddress = '%{{NAS-IP-Address}}', pool_key = '${{pool_key}}', callingstationid = '%{{Calling-Station-Id}}', username = '%{{User-Name}}', expiry_time = datetime(strftime('%%s', 'now') + ${{lease_duration}}, 'unixepoch') WHERE framedipaddress = '%I'"
    start_update = "UPDATE ${{ippool_table}} SET expiry_time = datetime(strftime('%%s', 'now') + ${{lease_duration}}, 'unixepoch') WHERE nasipaddress = '%{{NAS-IP-Address}}' AND pool_key = '${{pool_key}}' AND framedipaddress = '%{{${{attribute_name}}}}'"
    alive_update = "UPDATE ${{ippool_table}} SET expiry_time = datetime(strftime('%%s', 'now') + ${{lease_duration}}, 'unixepoch') WHERE nasipaddress = '%{{NAS-IP-Address}}' AND pool_key = '${{pool_key}}' AND framedipaddress = '%{{${{attribute_name}}}}'"
    stop_clear = "UPDATE ${{ippool_table}} SET expiry_time = datetime('now'), nasipaddress = '', pool_key = '' WHERE nasipaddress = '%{{NAS-IP-Address}}' AND pool_key = '${{pool_key}}' AND framedipaddress = '%{{${{attribute_name}}}}'"
    on_clear = "UPDATE ${{ippool_table}} SET expiry_time = datetime('now'), nasipaddress = '', pool_key = '' WHERE nasipaddress = '%{{NAS-IP-Address}}'"
    off_clear = "UPDATE ${{ippool_table}} SET expiry_time = datetime('now'), nasipaddress = '', pool_key = '' WHERE nasipaddress = '%{{NAS-IP-Address}}'"
  }}"#
    );
    SiteExtra {
        modules,
        authorize: format!("update control {{\n      Pool-Name := \"{POOL_NAME}\"\n    }}"),
        post_auth: "sqlippool\n    if (!&reply:Framed-IP-Address) {\n      reject\n    }".into(),
        preacct: "update request {\n      &Acct-Unique-Session-Id := \
                  \"%{md5:%{NAS-Identifier},%{Acct-Session-Id}}\"\n    }"
            .into(),
        accounting: "sql\n    sqlippool".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_created_free_without_the_gateway() {
        if Command::new("sqlite3").arg("-version").output().is_err() {
            eprintln!("skipped: sqlite3 is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = PoolDatabase::create(
            &dir.path().join("radius.db"),
            Ipv4Addr::new(10, 99, 0, 1),
            Ipv4Addr::new(10, 99, 0, 6),
            Ipv4Addr::new(10, 99, 0, 1),
        )
        .unwrap();
        assert!(db.leases().unwrap().is_empty(), "every address is free");
        let rows = db
            .sql("SELECT count(*), min(framedipaddress), max(framedipaddress) FROM radippool;")
            .unwrap();
        assert_eq!(rows.trim(), "5|10.99.0.2|10.99.0.6");
        db.sql(
            "UPDATE radippool SET nasipaddress = '10.202.0.11', \
             expiry_time = datetime('now', '+1 hour') WHERE framedipaddress = '10.99.0.3';",
        )
        .unwrap();
        assert_eq!(
            db.leases().unwrap(),
            [Lease {
                address: Ipv4Addr::new(10, 99, 0, 3),
                nas: Ipv4Addr::new(10, 202, 0, 11),
            }]
        );
        let accounting = db.accounting(Ipv4Addr::new(10, 202, 0, 11)).unwrap();
        assert_eq!(accounting, AccountingRows::default());
    }
}
