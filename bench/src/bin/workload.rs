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
    let scale = Scale::GATE;
    let mut work = match Prepared::new(part, &scale) {
        Ok(work) => work,
        Err(e) => {
            eprintln!("sstp-bench-workload: preparing {part}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = sstp_bench_measured(std::hint::black_box(&mut work));
    if let Err(e) = work.verify(done, part, &scale) {
        eprintln!("sstp-bench-workload: {e}");
        return ExitCode::FAILURE;
    }
    println!("part {part} units {done}");
    ExitCode::SUCCESS
}
