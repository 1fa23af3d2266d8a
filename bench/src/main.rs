//! `sstp-bench`: benchmarks with same-run references and a regression gate.

fn main() {
    println!("sstp-bench {}", env!("CARGO_PKG_VERSION"));
}
