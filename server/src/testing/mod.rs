//! Test and benchmark support (feature `testing`): not part of the shipped
//! server.
//!
//! * [`netns`]: network namespaces for end-to-end tests, benchmarks and the
//!   demo.

pub mod netns;
