//! INTEGRATION POINT — replaced at merge by the worker runtime
//! (thread-per-core tokio-uring workers). This branch only needs the
//! signature so that `main.rs` builds; the function body below is the
//! single placeholder the task allows.

/// Runs the server until shutdown.
pub fn run(config: crate::config::Config) -> std::io::Result<()> {
    let _ = config;
    Err(std::io::Error::other("worker runtime not yet merged"))
}
