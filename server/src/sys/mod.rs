//! The process and the operating system: capabilities, resource limits and
//! memory.

pub mod caps;
pub mod limits;
pub mod memory;
