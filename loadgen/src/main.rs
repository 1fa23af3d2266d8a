//! `sstp-loadgen`: the SSTP load generator.

fn main() {
    println!("sstp-loadgen {}", env!("CARGO_PKG_VERSION"));
}
