//! The sstpd and sstp-loadgen binaries a run measures: found next to
//! sstp-bench or in the workspace's target directory, and built in
//! release mode first when sstp-bench runs under cargo (so
//! `cargo run --release -p sstp-bench -- demo` measures the current
//! sources, whatever was built before).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::loadgen::ChildGuard;
use super::ScenarioError;

/// Overrides the sstpd binary.
pub const SSTPD_BIN_ENV: &str = "SSTPD_BIN";
/// Overrides the sstp-loadgen binary.
pub const LOADGEN_BIN_ENV: &str = "SSTP_LOADGEN_BIN";
/// Bound on building them (a first release build here takes minutes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// The two programs a scenario runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    pub sstpd: PathBuf,
    pub loadgen: PathBuf,
}

impl Binaries {
    /// Whether either is a debug build (its figures mean little).
    pub fn debug_build(&self) -> bool {
        [&self.sstpd, &self.loadgen]
            .iter()
            .any(|p| p.parent().and_then(Path::file_name) == Some("debug".as_ref()))
    }
    /// Whether sstpd carries `sstpd::testing`'s fault hooks, as its
    /// `--version` says: built in one cargo run with sstp-bench (whose use
    /// of sstpd's library turns the `testing` feature on), it is not the
    /// binary that ships. `false` when it cannot be asked.
    pub fn sstpd_has_test_hooks(&self) -> bool {
        Command::new(&self.sstpd)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout).contains(sstpd::app::cli::TEST_HOOKS_MARK)
            })
    }
}

/// The workspace this sstp-bench was built from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A binary: `$env`, else next to this executable (unless that is a
/// debug build and `allow_debug` is false), else `target/release`, else
/// (with `allow_debug`) `target/debug`.
pub fn locate_binary(name: &str, env: &str, allow_debug: bool) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
        .filter(|dir| allow_debug || dir.file_name() != Some("debug".as_ref()))
        .map(|dir| dir.join(name));
    let mut candidates: Vec<PathBuf> = beside.into_iter().collect();
    candidates.push(target_dir().join("release").join(name));
    if allow_debug {
        candidates.push(target_dir().join("debug").join(name));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn locate_both() -> Option<Binaries> {
    Some(Binaries {
        sstpd: locate_binary("sstpd", SSTPD_BIN_ENV, false)?,
        loadgen: locate_binary("sstp-loadgen", LOADGEN_BIN_ENV, false)?,
    })
}

/// The binaries to run. Given by `SSTPD_BIN` and `SSTP_LOADGEN_BIN`:
/// those, as they are. Under cargo (`cargo run -p sstp-bench`): `cargo
/// build --release -p sstpd -p sstp-loadgen` first, a second when nothing
/// changed. Otherwise the release builds that exist, built with cargo if
/// they are missing and cargo is at hand.
pub fn ensure_built(interrupt: &AtomicBool) -> Result<Binaries, ScenarioError> {
    if std::env::var_os(SSTPD_BIN_ENV).is_some() && std::env::var_os(LOADGEN_BIN_ENV).is_some() {
        let binaries = locate_both().expect("both are set");
        for path in [&binaries.sstpd, &binaries.loadgen] {
            if !path.is_file() {
                return Err(ScenarioError::Binary(path.clone()));
            }
        }
        return Ok(binaries);
    }
    let under_cargo = std::env::var_os("CARGO");
    let workspace = workspace_root();
    let manifest = workspace.join("Cargo.toml");
    match (under_cargo, locate_both()) {
        (None, Some(binaries)) => return Ok(binaries),
        (cargo, _) if manifest.is_file() => {
            let cargo = cargo.unwrap_or_else(|| "cargo".into());
            build(Path::new(&cargo), &workspace, interrupt)?;
        }
        (_, None) => {
            return Err(ScenarioError::Build(format!(
                "sstpd and sstp-loadgen release binaries not found and no workspace to build \
                 them in: build them with `cargo build --release -p sstpd -p sstp-loadgen`, or \
                 set {SSTPD_BIN_ENV} and {LOADGEN_BIN_ENV}"
            )))
        }
        (Some(_), Some(binaries)) => return Ok(binaries),
    }
    let release = target_dir().join("release");
    let binaries = Binaries {
        sstpd: release.join("sstpd"),
        loadgen: release.join("sstp-loadgen"),
    };
    for path in [&binaries.sstpd, &binaries.loadgen] {
        if !path.is_file() {
            return Err(ScenarioError::Binary(path.clone()));
        }
    }
    Ok(binaries)
}

fn build(cargo: &Path, workspace: &Path, interrupt: &AtomicBool) -> Result<(), ScenarioError> {
    print!("build: cargo build --release -p sstpd -p sstp-loadgen ...");
    let _ = std::io::stdout().flush();
    let started = Instant::now();
    let child = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "sstpd",
            "-p",
            "sstp-loadgen",
        ])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| ScenarioError::Build(format!("cannot run {}: {e}", cargo.display())))?;
    let mut child = ChildGuard::new(child);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if interrupt.load(Ordering::Acquire) {
            println!();
            child.stop(Duration::from_secs(5))?;
            return Err(ScenarioError::Interrupted);
        }
        if started.elapsed() > BUILD_TIMEOUT {
            println!();
            child.stop(Duration::from_secs(5))?;
            return Err(ScenarioError::Build("the build took too long".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        println!();
        return Err(ScenarioError::Build(format!(
            "cargo build failed ({status})"
        )));
    }
    println!(" done ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sstpd_with_test_hooks_is_told_by_its_version() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fake = |name: &str, version: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\necho 'sstpd {version}'\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            Binaries {
                sstpd: path,
                loadgen: "/nonexistent/sstp-loadgen".into(),
            }
        };
        let hooked = format!("0.1.0 {}", sstpd::app::cli::TEST_HOOKS_MARK);
        assert!(fake("hooked", &hooked).sstpd_has_test_hooks());
        assert!(!fake("shipped", "0.1.0").sstpd_has_test_hooks());
        let missing = Binaries {
            sstpd: dir.path().join("missing"),
            loadgen: "/nonexistent/sstp-loadgen".into(),
        };
        assert!(!missing.sstpd_has_test_hooks());
    }

    #[test]
    fn debug_builds_are_recognized_by_their_directory() {
        let release = Binaries {
            sstpd: "/w/target/release/sstpd".into(),
            loadgen: "/w/target/release/sstp-loadgen".into(),
        };
        assert!(!release.debug_build());
        let mixed = Binaries {
            loadgen: "/w/target/debug/sstp-loadgen".into(),
            ..release
        };
        assert!(mixed.debug_build());
    }

    #[test]
    fn the_workspace_is_the_bench_crates_parent() {
        assert!(workspace_root().join("bench/Cargo.toml").is_file());
        assert!(workspace_root().join("server/Cargo.toml").is_file());
    }
}
