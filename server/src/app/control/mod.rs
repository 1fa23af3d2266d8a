//! The control socket and `sstpctl` (`[control] socket`): list and end
//! sessions, read the counters, reload, show the configuration.
//!
//! * [`protocol`]: the requests and answers (JSON, one request per
//!   connection), shared with the `sstpctl` binary;
//! * `server`: the `sstpd-control` thread serving them.

pub mod protocol;
pub(crate) mod server;
