//! The process and the operating system: capabilities, resource limits,
//! memory, and the flags of io_uring rings.

pub mod caps;
pub mod limits;
pub mod memory;
pub mod uring;
