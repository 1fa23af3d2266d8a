//! `sstp-bench`: one-command benchmarks and regression checks for sstpd.
//!
//! * [`gate`]: the instruction-count regression gate (callgrind) over the
//!   fixed in-memory [`workload`].
//! * [`reference`](mod@reference): bare-TLS references measured in the same run as the
//!   figures they stand beside.
//! * [`results`]: the versioned results file; [`report`] renders it as
//!   Markdown with SVG charts; [`compare`] judges two of them.
//! * [`scenario`]: sstpd in a network namespace, its CPU and memory, the
//!   scenarios that drive it with sstp-loadgen, and the demo.

pub mod compare;
pub mod gate;
pub mod profile;
pub mod reference;
pub mod report;
pub mod results;
pub mod scenario;
pub mod table;
pub mod units;
pub mod workload;
