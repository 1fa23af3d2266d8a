//! The `sstpd` binary.

fn main() {
    println!("sstpd {}", env!("CARGO_PKG_VERSION"));
}
