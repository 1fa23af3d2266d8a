//! `sstp-bench-workload --part NAME`: prepares one part of the gate's
//! fixed workload, runs it inside [`sstp_bench_measured`] (the only
//! function callgrind counts, see `sstp_bench::gate`), verifies it and
//! prints `part NAME units N`. Exit status 1 if the part did not do its
//! whole job, 2 on bad arguments.
//!
//! `sstp-bench-workload --part setup --phase PHASE`: the setup part's
//! sessions, with only PHASE's work inside [`sstp_bench_measured_phase`]
//! (`sstp-bench gate --phases`).

use std::process::ExitCode;

use sstp_bench::workload::{Part, Prepared, Scale, SetupPhase, SetupPhaseWork};

/// The counted region. Not inlined and not mangled, so that callgrind's
/// `--toggle-collect=sstp_bench_measured` finds it by name.
#[no_mangle]
#[inline(never)]
pub fn sstp_bench_measured(work: &mut Prepared) -> u64 {
    std::hint::black_box(work.run())
}

/// The counted region of one setup phase (`--phase`), found by callgrind
/// as [`sstp_bench_measured`] is.
#[no_mangle]
#[inline(never)]
pub fn sstp_bench_measured_phase(step: &mut dyn FnMut() -> bool) -> bool {
    std::hint::black_box(step())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, part, phase_flag, phase] = args.as_slice() {
        if flag == "--part" && part == "setup" && phase_flag == "--phase" {
            return match phase.parse::<SetupPhase>() {
                Ok(phase) => run_setup_phase(phase),
                Err(e) => {
                    eprintln!("sstp-bench-workload: {e}");
                    ExitCode::from(2)
                }
            };
        }
    }
    let part = match args.as_slice() {
        [flag, name] if flag == "--part" => match name.parse::<Part>() {
            Ok(part) => part,
            Err(e) => {
                eprintln!("sstp-bench-workload: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: sstp-bench-workload --part NAME [--phase PHASE (setup only)]");
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

/// Sets up the setup part's sessions with `phase` counted: prepared and
/// run on a thread of its own, as a part is.
fn run_setup_phase(phase: SetupPhase) -> ExitCode {
    if let Err(e) = warm_up_random() {
        eprintln!("sstp-bench-workload: {e}");
        return ExitCode::FAILURE;
    }
    let sessions = Scale::GATE.sessions;
    let outcome = std::thread::spawn(move || {
        let work = SetupPhaseWork::new(sessions);
        work.run(phase, sstp_bench_measured_phase)
    })
    .join();
    match outcome {
        Ok(up) if up == sessions => {
            println!("part setup phase {phase} units {up}");
            ExitCode::SUCCESS
        }
        Ok(up) => {
            eprintln!(
                "sstp-bench-workload: setup phase {phase}: {up} of {sessions} sessions came up"
            );
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("sstp-bench-workload: setup phase {phase} panicked");
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
