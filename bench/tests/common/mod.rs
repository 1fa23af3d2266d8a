//! What the end-to-end tests of sstp-bench share.

use std::path::{Path, PathBuf};

/// A binary built in the same profile as this test (nextest builds every
/// workspace binary for `--workspace`: sstpd and sstp-loadgen have
/// integration tests of their own).
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join(name))
        .expect("target directory of the test");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p sstpd -p sstp-loadgen`",
        path.display()
    );
    path
}
