//! The process and the operating system: capabilities and resource limits.

pub mod caps;
pub mod limits;
