//! `sstp-bench-workload --part NAME`: prepares one part of the gate's
//! fixed workload, runs it inside [`sstp_bench_measured`] (the only
//! function callgrind counts, see `sstp_bench::gate`), verifies it and
//! prints `part NAME units N`. Exit status 1 if the part did not do its
//! whole job, 2 on bad arguments.

use std::process::ExitCode;

use sstp_bench::workload::{Part, Prepared, Scale};

/// The counted region. Not inlined and not mangled, so that callgrind's
/// `--toggle-collect=sstp_bench_measured` finds it by name.
#[no_mangle]
#[inline(never)]
pub fn sstp_bench_measured(work: &mut Prepared) -> u64 {
    std::hint::black_box(work.run())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let part = match args.as_slice() {
        [flag, name] if flag == "--part" => match name.parse::<Part>() {
            Ok(part) => part,
            Err(e) => {
                eprintln!("sstp-bench-workload: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: sstp-bench-workload --part NAME");
            return ExitCode::from(2);
        }
    };
    // aws-lc seeds its random generator from CPU jitter the first time it
    // is used: a timing-dependent amount of work with heap allocations
    // that differ from run to run. Do it here, then prepare and run the
    // part on a thread of its own, whose malloc arena starts empty and so
    // holds the same allocations at the same places on every run.
    if let Err(e) = warm_up_random() {
        eprintln!("sstp-bench-workload: {e}");
        return ExitCode::FAILURE;
    }
    let outcome = std::thread::spawn(move || {
        let scale = Scale::GATE;
        let mut work = Prepared::new(part, &scale).map_err(|e| format!("preparing {part}: {e}"))?;
        let done = sstp_bench_measured(std::hint::black_box(&mut work));
        work.verify(done, part, &scale)?;
        Ok::<u64, String>(done)
    })
    .join();
    match outcome {
        Ok(Ok(done)) => {
            println!("part {part} units {done}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("sstp-bench-workload: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("sstp-bench-workload: part {part} panicked");
            ExitCode::FAILURE
        }
    }
}

/// Draws from aws-lc's generator once (through rustls' provider, as the
/// handshake would).
fn warm_up_random() -> Result<(), String> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut bytes = [0u8; 32];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "aws-lc's random generator failed".to_string())
}
