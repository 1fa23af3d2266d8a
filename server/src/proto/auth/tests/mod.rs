//! Tests across the authentication modules: shared vectors, server/client
//! pairs on a virtual clock, and no-panic properties.

mod machines;
mod proptests;
pub(crate) mod vectors;
