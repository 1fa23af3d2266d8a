//! The instruction-count regression gate.
//!
//! Each part of the fixed workload ([`crate::workload`]) runs in its own
//! process under `valgrind --tool=callgrind`, which counts the
//! instructions executed inside one function only:
//! `--collect-atstart=no --toggle-collect=sstp_bench_measured`. That
//! function (in the `sstp-bench-workload` binary) is the counted region;
//! process start, input generation, certificate generation and the TLS
//! handshake happen outside it and are not counted. The totals are
//! compared with `bench/gate-baseline.json`.
//!
//! Why instructions and not time: this machine is shared, and a time
//! measured on it moves by tens of percent with the neighbours' load. An
//! instruction count of the same binary on the same inputs does not move
//! at all (see docs/benchmarking.md for the repeatability runs).
//!
//! What could still make counts differ between runs, and how it is pinned:
//!
//! * Randomness: seeds are fixed; the workload's authenticator avoids
//!   `HashMap` (per-process random keys); nothing counted depends on time
//!   except through the protocol core's virtual clock.
//! * CPU feature dispatch: valgrind presents a fixed, synthetic CPU to the
//!   program; aws-lc is further pinned with `OPENSSL_ia32cap` to its
//!   AES-NI + PCLMULQDQ code (no AVX), which every x86-64 CI host has, so
//!   the TLS parts do not switch implementation between hosts.
//! * Environment and addresses: the workload runs with an empty
//!   environment plus the pins, and without address-space randomization
//!   (`setarch -R`), so stack and heap alignments are the same each run.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::workload::{Part, Scale, SetupPhase};

/// The function whose instructions are counted.
pub const TOGGLE_FUNCTION: &str = "sstp_bench_measured";
/// The function whose instructions are counted for one setup phase
/// (`--phases`, [`SetupPhase`]).
pub const PHASE_TOGGLE_FUNCTION: &str = "sstp_bench_measured_phase";
/// `schema` of the baseline file.
pub const BASELINE_SCHEMA: &str = "sstp-bench/gate-baseline";
pub const BASELINE_SCHEMA_VERSION: u32 = 1;

/// Default relative tolerance, in percent, written into a new baseline.
///
/// Repeated runs give identical counts (docs/benchmarking.md), so any
/// tolerance above zero is only for changes that are not regressions: a
/// refactoring that moves inlining decisions, a dependency's patch
/// release. 2% lets those through while a real cost added to the data
/// path (one extra copy of a 346-byte packet is about 3% of the `data`
/// part) fails.
pub const DEFAULT_TOLERANCE_PERCENT: f64 = 2.0;

/// The environment the workload runs with (besides `PATH`): pins of CPU
/// feature dispatch that would otherwise depend on the host.
///
/// `OPENSSL_ia32cap`: the first value is ANDed with the inverse into
/// CPUID.1 (EDX:ECX), clearing ECX bit 28 (AVX); the second clears every
/// CPUID.7 bit (AVX2, BMI, ADX, SHA, VAES, VPCLMULQDQ, AVX-512). aws-lc
/// then uses AES-NI with PCLMULQDQ GHASH.
///
/// `GLIBC_TUNABLES`: glibc picks its `memcpy`, `memset`, `strlen`… by CPU
/// features at load time; masking AVX, AVX-512, ERMS/FSRM and
/// Fast_Unaligned_Copy selects the SSSE3 variants everywhere.
pub const PINNED_ENV: &[(&str, &str)] = &[
    ("OPENSSL_ia32cap", "~0x1000000000000000:~0xffffffffffffffff"),
    (
        "GLIBC_TUNABLES",
        "glibc.cpu.hwcaps=-AVX_Fast_Unaligned_Load,-AVX2,-AVX,-ERMS,-FSRM,\
         -AVX512F,-AVX512VL,-AVX512BW,-BMI2,-Fast_Unaligned_Copy",
    ),
    ("LC_ALL", "C"),
];

/// How the workload is named on its command line. The gate runs it from
/// its own directory under this fixed name: `std::env::args` allocates
/// argv before the counted region, and a longer path (another checkout
/// directory) would leave the heap in a different state and move
/// malloc's counts.
const WORKLOAD_ARGV0: &str = "./sstp-bench-workload";

/// Why the gate could not run or judge.
#[derive(Debug)]
#[non_exhaustive]
pub enum GateError {
    Io(std::io::Error),
    /// valgrind or the workload could not be started.
    Spawn {
        program: String,
        error: std::io::Error,
    },
    /// The workload failed (its stderr tail is included).
    Workload {
        part: String,
        detail: String,
    },
    /// callgrind's output could not be understood.
    Parse(String),
    Baseline(String),
}

impl GateError {
    pub fn as_str(&self) -> &'static str {
        match self {
            GateError::Io(_) => "io",
            GateError::Spawn { .. } => "spawn",
            GateError::Workload { .. } => "workload",
            GateError::Parse(_) => "parse",
            GateError::Baseline(_) => "baseline",
        }
    }
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::Io(e) => write!(f, "{e}"),
            GateError::Spawn { program, error } => write!(f, "cannot run {program}: {error}"),
            GateError::Workload { part, detail } => write!(f, "part {part} failed:\n{detail}"),
            GateError::Parse(e) => write!(f, "callgrind output: {e}"),
            GateError::Baseline(e) => write!(f, "baseline: {e}"),
        }
    }
}

impl std::error::Error for GateError {}

impl From<std::io::Error> for GateError {
    fn from(e: std::io::Error) -> Self {
        GateError::Io(e)
    }
}

/// The `Ir` total of a callgrind output file: the `totals:` line (or, in
/// older files, `summary:`), at the position of `Ir` in `events:`.
pub fn parse_callgrind_totals(text: &str) -> Result<u64, GateError> {
    let mut events: Option<Vec<&str>> = None;
    let mut totals: Option<&str> = None;
    let mut summary: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("events:") {
            events = Some(rest.split_whitespace().collect());
        } else if let Some(rest) = line.strip_prefix("totals:") {
            totals = Some(rest);
        } else if let Some(rest) = line.strip_prefix("summary:") {
            summary = Some(rest);
        }
    }
    let events = events.ok_or_else(|| GateError::Parse("no `events:` line".into()))?;
    let index = events
        .iter()
        .position(|e| *e == "Ir")
        .ok_or_else(|| GateError::Parse(format!("no Ir event among {events:?}")))?;
    let line = totals
        .or(summary)
        .ok_or_else(|| GateError::Parse("no `totals:` or `summary:` line".into()))?;
    let field = line
        .split_whitespace()
        .nth(index)
        .ok_or_else(|| GateError::Parse(format!("totals line {line:?} has no Ir field")))?;
    field
        .parse()
        .map_err(|_| GateError::Parse(format!("Ir total {field:?} is not a number")))
}

/// One part's measured count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartCount {
    pub instructions: u64,
    pub units: u64,
    pub unit: String,
}

impl PartCount {
    pub fn per_unit(&self) -> f64 {
        if self.units == 0 {
            0.0
        } else {
            self.instructions as f64 / self.units as f64
        }
    }
}

/// What the counts were measured with. A baseline from a different
/// toolchain or valgrind can differ for reasons that are not the code's;
/// the gate says so next to its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateEnvironment {
    pub rustc: String,
    pub valgrind: String,
    pub arch: String,
    pub cpu_model: String,
}

impl GateEnvironment {
    pub fn current() -> GateEnvironment {
        let version = |program: &str, arg: &str| {
            Command::new(program)
                .arg(arg)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| "unknown".into())
        };
        let machine = crate::results::Machine::current();
        GateEnvironment {
            rustc: version("rustc", "-V"),
            valgrind: version("valgrind", "--version"),
            arch: machine.arch,
            cpu_model: machine.cpu_model,
        }
    }

    /// The fields that differ from `other`, as `name: ours vs theirs`.
    /// The CPU model is left out: valgrind shows every host the same
    /// synthetic CPU, and dispatch is pinned.
    pub fn differences(&self, baseline: &GateEnvironment) -> Vec<String> {
        let mut out = Vec::new();
        for (name, now, then) in [
            ("rustc", &self.rustc, &baseline.rustc),
            ("valgrind", &self.valgrind, &baseline.valgrind),
            ("arch", &self.arch, &baseline.arch),
        ] {
            if now != then {
                out.push(format!("{name}: {now} (baseline: {then})"));
            }
        }
        out
    }
}

/// `bench/gate-baseline.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema: String,
    pub schema_version: u32,
    /// Allowed relative increase per part, in percent.
    pub tolerance_percent: f64,
    pub environment: GateEnvironment,
    pub parts: BTreeMap<String, PartCount>,
}

impl Baseline {
    pub fn new(environment: GateEnvironment, parts: BTreeMap<String, PartCount>) -> Baseline {
        Baseline {
            schema: BASELINE_SCHEMA.into(),
            schema_version: BASELINE_SCHEMA_VERSION,
            tolerance_percent: DEFAULT_TOLERANCE_PERCENT,
            environment,
            parts,
        }
    }

    pub fn from_json(text: &str) -> Result<Baseline, GateError> {
        let baseline: Baseline =
            serde_json::from_str(text).map_err(|e| GateError::Baseline(e.to_string()))?;
        if baseline.schema != BASELINE_SCHEMA {
            return Err(GateError::Baseline(format!(
                "schema {:?} is not {BASELINE_SCHEMA:?}",
                baseline.schema
            )));
        }
        if baseline.schema_version > BASELINE_SCHEMA_VERSION {
            return Err(GateError::Baseline(format!(
                "schema_version {} is newer than this sstp-bench reads",
                baseline.schema_version
            )));
        }
        if !(0.0..=100.0).contains(&baseline.tolerance_percent) {
            return Err(GateError::Baseline(format!(
                "tolerance_percent {} is outside 0..=100",
                baseline.tolerance_percent
            )));
        }
        Ok(baseline)
    }

    pub fn load(path: &Path) -> Result<Baseline, GateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GateError::Baseline(format!("{}: {e}", path.display())))?;
        Baseline::from_json(&text)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("baseline serializes");
        text.push('\n');
        text
    }
}

/// The baseline `--update-baseline` writes: `previous` with the measured
/// parts replaced, keeping its tolerance and the parts not measured this
/// time; and one line per count that moved, for the terminal and the
/// commit message.
pub fn updated_baseline(
    previous: Option<&Baseline>,
    environment: GateEnvironment,
    measured: &BTreeMap<String, PartCount>,
) -> (Baseline, Vec<String>) {
    let mut parts = previous.map(|b| b.parts.clone()).unwrap_or_default();
    let mut changes = Vec::new();
    for (name, count) in measured {
        match parts.get(name).map(|c| c.instructions) {
            Some(old) if old == count.instructions => {}
            Some(old) => changes.push(format!(
                "{name}: {} -> {} Ir ({:+.2}%)",
                thousands(old),
                thousands(count.instructions),
                relative_percent(old, count.instructions)
            )),
            None => changes.push(format!("{name}: new, {} Ir", thousands(count.instructions))),
        }
        parts.insert(name.clone(), count.clone());
    }
    let mut baseline = Baseline::new(environment, parts);
    if let Some(previous) = previous {
        baseline.tolerance_percent = previous.tolerance_percent;
    }
    (baseline, changes)
}

/// How one part compares with the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance.
    Ok,
    /// More instructions than the baseline allows: fails the gate.
    Regressed,
    /// Fewer, by more than the tolerance: passes; lower the baseline so
    /// the gain is kept.
    Improved,
    /// Not in the baseline: passes; add it with --update-baseline.
    New,
    /// In the baseline but not measured: fails the gate.
    Missing,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::New => "new",
            Verdict::Missing => "MISSING",
        }
    }

    pub fn fails(self) -> bool {
        matches!(self, Verdict::Regressed | Verdict::Missing)
    }
}

/// One row of the gate's table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub part: String,
    pub unit: String,
    pub baseline: Option<u64>,
    pub now: Option<u64>,
    pub now_per_unit: Option<f64>,
    pub delta_percent: Option<f64>,
    pub verdict: Verdict,
}

/// Compares measured counts with the baseline at `tolerance_percent`.
/// Rows follow the baseline's order, then new parts.
pub fn compare(
    baseline: &BTreeMap<String, PartCount>,
    measured: &BTreeMap<String, PartCount>,
    tolerance_percent: f64,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (part, base) in baseline {
        let now = measured.get(part);
        let delta = now.map(|n| relative_percent(base.instructions, n.instructions));
        let verdict = match delta {
            None => Verdict::Missing,
            Some(d) if d > tolerance_percent => Verdict::Regressed,
            Some(d) if d < -tolerance_percent => Verdict::Improved,
            Some(_) => Verdict::Ok,
        };
        rows.push(Row {
            part: part.clone(),
            unit: base.unit.clone(),
            baseline: Some(base.instructions),
            now: now.map(|n| n.instructions),
            now_per_unit: now.map(PartCount::per_unit),
            delta_percent: delta,
            verdict,
        });
    }
    for (part, now) in measured {
        if !baseline.contains_key(part) {
            rows.push(Row {
                part: part.clone(),
                unit: now.unit.clone(),
                baseline: None,
                now: Some(now.instructions),
                now_per_unit: Some(now.per_unit()),
                delta_percent: None,
                verdict: Verdict::New,
            });
        }
    }
    rows
}

/// (now - base) / base in percent; a zero base counts any increase as
/// +100%.
fn relative_percent(base: u64, now: u64) -> f64 {
    if base == 0 {
        if now == 0 {
            0.0
        } else {
            100.0
        }
    } else {
        (now as f64 - base as f64) / base as f64 * 100.0
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table the gate prints.
pub fn render_table(rows: &[Row], tolerance_percent: f64) -> String {
    let mut lines = vec![vec![
        "part".to_string(),
        "baseline Ir".into(),
        "now Ir".into(),
        "delta".into(),
        "Ir per unit".into(),
        "verdict".into(),
    ]];
    for row in rows {
        lines.push(vec![
            row.part.clone(),
            row.baseline.map_or("-".into(), thousands),
            row.now.map_or("-".into(), thousands),
            row.delta_percent
                .map_or("-".into(), |d| format!("{d:+.2}%")),
            row.now_per_unit
                .map_or("-".into(), |v| format!("{v:.1}/{}", row.unit)),
            row.verdict.as_str().into(),
        ]);
    }
    let mut out = crate::table::render(&lines, |i| (1..=4).contains(&i));
    let _ = writeln!(out, "tolerance: ±{tolerance_percent}% per part");
    out
}

/// Runs workload parts under callgrind.
#[derive(Clone, Debug)]
pub struct Runner {
    /// The `sstp-bench-workload` binary (built in release mode).
    pub workload: PathBuf,
    /// Where the callgrind output files go.
    pub out_dir: PathBuf,
    /// Run through `setarch -R` (no address randomization) when available.
    pub no_aslr: bool,
}

impl Runner {
    /// A runner for the workload binary next to the running executable.
    pub fn beside_current_exe(out_dir: PathBuf) -> Result<Runner, GateError> {
        let exe = std::env::current_exe()?;
        let workload = exe.with_file_name("sstp-bench-workload");
        if !workload.exists() {
            return Err(GateError::Workload {
                part: "-".into(),
                detail: format!(
                    "{} not found: build it with `cargo build --release -p sstp-bench`",
                    workload.display()
                ),
            });
        }
        Ok(Runner {
            workload,
            out_dir,
            no_aslr: setarch_works(),
        })
    }

    /// The command that counts `part`.
    pub fn command(&self, part: Part) -> Command {
        let out_file = self.out_file(part.as_str());
        self.callgrind(TOGGLE_FUNCTION, &out_file, &["--part", part.as_str()])
    }

    /// The command that counts one phase of the setup part.
    pub fn phase_command(&self, phase: SetupPhase) -> Command {
        let out_file = self.out_file(&Self::phase_name(phase));
        let args = ["--part", "setup", "--phase", phase.as_str()];
        self.callgrind(PHASE_TOGGLE_FUNCTION, &out_file, &args)
    }

    /// The workload run with `workload_args` under callgrind, counting
    /// inside `toggle` only, in the pinned environment.
    fn callgrind(&self, toggle: &str, out_file: &Path, workload_args: &[&str]) -> Command {
        let mut args: Vec<String> = Vec::new();
        let mut program = "valgrind".to_string();
        if self.no_aslr {
            program = "setarch".into();
            args.extend([
                std::env::consts::ARCH.into(),
                "-R".into(),
                "valgrind".into(),
            ]);
        }
        args.extend([
            "--tool=callgrind".into(),
            "--collect-atstart=no".into(),
            format!("--toggle-collect={toggle}"),
            format!("--callgrind-out-file={}", out_file.display()),
            WORKLOAD_ARGV0.into(),
        ]);
        args.extend(workload_args.iter().map(|a| a.to_string()));
        let mut command = Command::new(program);
        command.args(args).env_clear();
        if let Some(dir) = self.workload.parent() {
            command.current_dir(dir);
        }
        command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (key, value) in PINNED_ENV {
            command.env(key, value);
        }
        command
    }

    /// Counts one part.
    pub fn run_part(&self, part: Part) -> Result<PartCount, GateError> {
        let instructions = self.count(self.command(part), part.as_str())?;
        if instructions == 0 {
            return Err(GateError::Parse(format!(
                "no instruction was counted for {part}: is {TOGGLE_FUNCTION} still in the \
                 workload binary (not inlined, not renamed)?"
            )));
        }
        Ok(PartCount {
            instructions,
            units: part.units(&Scale::GATE),
            unit: part.unit().into(),
        })
    }

    /// Counts one phase of the setup part: the instructions of all its
    /// sessions in that phase (zero for a phase none of them goes through).
    pub fn run_setup_phase(&self, phase: SetupPhase) -> Result<u64, GateError> {
        self.count(self.phase_command(phase), &Self::phase_name(phase))
    }

    /// Where callgrind writes the counts of `name` (a part, or
    /// [`Runner::phase_name`]).
    fn out_file(&self, name: &str) -> PathBuf {
        self.out_dir.join(format!("callgrind.{name}.out"))
    }

    /// The name of a setup phase's count, in its file and its errors.
    fn phase_name(phase: SetupPhase) -> String {
        format!("setup.{phase}")
    }

    /// Runs `command`, which counts `name`, and reads the total of its
    /// callgrind output.
    fn count(&self, mut command: Command, name: &str) -> Result<u64, GateError> {
        std::fs::create_dir_all(&self.out_dir)?;
        let program = format!("{:?}", command.get_program());
        let output = command
            .output()
            .map_err(|error| GateError::Spawn { program, error })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(GateError::Workload {
                part: name.into(),
                detail: format!("{}\n{}", output.status, tail.join("\n")),
            });
        }
        parse_callgrind_totals(&std::fs::read_to_string(self.out_file(name))?)
    }
}

/// The setup part's instructions split by phase ([`SetupPhase`]), as
/// `sstp-bench gate --phases` prints them: per session, with each phase's
/// share of their sum and the part's own count beside it (the phases
/// drive the pair one packet at a time, a little more work than the part's
/// whole flights).
pub fn render_phases(phases: &[(SetupPhase, u64)], setup_part: Option<u64>) -> String {
    let sessions = Scale::GATE.sessions.max(1);
    let sum: u64 = phases.iter().map(|(_, n)| n).sum();
    let mut lines = vec![vec![
        "phase".to_string(),
        "what".into(),
        "Ir per session".into(),
        "share".into(),
    ]];
    for (phase, n) in phases {
        lines.push(vec![
            phase.as_str().into(),
            phase.description().into(),
            thousands(n / sessions),
            format!("{:.1}%", 100.0 * *n as f64 / sum.max(1) as f64),
        ]);
    }
    lines.push(vec![
        "all".into(),
        "the phases together".into(),
        thousands(sum / sessions),
        "100.0%".into(),
    ]);
    let mut out = crate::table::render(&lines, |i| (2..=3).contains(&i));
    if let Some(part) = setup_part {
        let _ = writeln!(
            out,
            "the setup part: {} per session; the phases sum to {:+.2}% of it \
             (one packet at a time is a little more work than whole flights)",
            thousands(part / sessions),
            100.0 * (sum as f64 - part as f64) / part.max(1) as f64
        );
    }
    out
}

/// Whether `setarch <arch> -R true` runs (personality(2) may be refused
/// in some containers).
fn setarch_works() -> bool {
    Command::new("setarch")
        .args([std::env::consts::ARCH, "-R", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The baseline file in the source tree.
pub fn default_baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gate-baseline.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head and tail of a real callgrind 3.19 output file, as written
    /// with --toggle-collect.
    const CALLGRIND_OUT: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 12345
cmd:  target/release/sstp-bench-workload --part data
part: 1


desc: I1 cache: 
desc: Timerange: Basic block 0 - 123456
desc: Trigger: Program termination

positions: line
events: Ir
summary: 987654321


ob=(1) /work/target/release/sstp-bench-workload
fl=(1) ???
fn=(1) sstp_bench_measured
0 12
cfn=(2) sstpd::testing::pair::Pair::drive_now
calls=6250 0 
0 987654309

totals: 987654321
";

    #[test]
    fn totals_are_read_from_callgrind_output() {
        assert_eq!(parse_callgrind_totals(CALLGRIND_OUT).unwrap(), 987_654_321);
    }

    #[test]
    fn ir_is_found_among_several_events() {
        let text = "events: Dr Ir Dw\nsummary: 1 2 3\ntotals: 10 20 30\n";
        assert_eq!(parse_callgrind_totals(text).unwrap(), 20);
        // Without totals, the summary line is used.
        let text = "events: Ir Dr\nsummary: 7 8\n";
        assert_eq!(parse_callgrind_totals(text).unwrap(), 7);
    }

    #[test]
    fn malformed_callgrind_output_is_an_error() {
        for (text, message) in [
            ("totals: 5\n", "no `events:` line"),
            ("events: Dr\ntotals: 5\n", "no Ir event among [\"Dr\"]"),
            ("events: Ir\n", "no `totals:` or `summary:` line"),
            (
                "events: Dr Ir\ntotals: 5\n",
                "totals line \" 5\" has no Ir field",
            ),
            (
                "events: Ir\ntotals: many\n",
                "Ir total \"many\" is not a number",
            ),
        ] {
            let error = parse_callgrind_totals(text).unwrap_err();
            assert_eq!(error.to_string(), format!("callgrind output: {message}"));
        }
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, PartCount> {
        pairs
            .iter()
            .map(|(part, n)| {
                (
                    part.to_string(),
                    PartCount {
                        instructions: *n,
                        units: 1000,
                        unit: "packet".into(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn comparison_applies_the_tolerance_both_ways() {
        let baseline = counts(&[
            ("a_same", 1_000_000),
            ("b_slightly_up", 1_000_000),
            ("c_up", 1_000_000),
            ("d_down", 1_000_000),
            ("e_gone", 1_000_000),
        ]);
        let measured = counts(&[
            ("a_same", 1_000_000),
            ("b_slightly_up", 1_020_000),
            ("c_up", 1_020_001),
            ("d_down", 979_999),
            ("f_new", 5),
        ]);
        let rows = compare(&baseline, &measured, 2.0);
        let verdicts: Vec<(&str, Verdict)> =
            rows.iter().map(|r| (r.part.as_str(), r.verdict)).collect();
        assert_eq!(
            verdicts,
            [
                ("a_same", Verdict::Ok),
                ("b_slightly_up", Verdict::Ok),
                ("c_up", Verdict::Regressed),
                ("d_down", Verdict::Improved),
                ("e_gone", Verdict::Missing),
                ("f_new", Verdict::New),
            ]
        );
        assert_eq!(rows[1].delta_percent, Some(2.0));
        assert_eq!(rows[4].now, None);
        let failing: Vec<_> = rows.iter().filter(|r| r.verdict.fails()).collect();
        assert_eq!(failing.len(), 2);
    }

    #[test]
    fn zero_tolerance_fails_on_a_single_instruction() {
        let rows = compare(&counts(&[("x", 100)]), &counts(&[("x", 101)]), 0.0);
        assert_eq!(rows[0].verdict, Verdict::Regressed);
        let rows = compare(&counts(&[("x", 0)]), &counts(&[("x", 1)]), 50.0);
        assert_eq!(rows[0].verdict, Verdict::Regressed);
    }

    #[test]
    fn table_shows_counts_deltas_and_verdicts() {
        let rows = compare(
            &counts(&[("data", 1_000_000)]),
            &counts(&[("data", 1_100_000)]),
            2.0,
        );
        let table = render_table(&rows, 2.0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "part  baseline Ir     now Ir    delta    Ir per unit  verdict"
        );
        assert_eq!(
            lines[1],
            "data    1,000,000  1,100,000  +10.00%  1100.0/packet  REGRESSED"
        );
        assert_eq!(lines[2], "tolerance: ±2% per part");
    }

    #[test]
    fn baseline_round_trips_and_is_validated() {
        let env = GateEnvironment {
            rustc: "rustc 1.95.0".into(),
            valgrind: "valgrind-3.19.0".into(),
            arch: "x86_64".into(),
            cpu_model: "Test".into(),
        };
        let baseline = Baseline::new(env.clone(), counts(&[("data", 42)]));
        let text = baseline.to_json();
        assert_eq!(Baseline::from_json(&text).unwrap(), baseline);
        let bad = text.replace("sstp-bench/gate-baseline", "other");
        assert_eq!(Baseline::from_json(&bad).unwrap_err().as_str(), "baseline");
        let bad = text.replace("\"tolerance_percent\": 2.0", "\"tolerance_percent\": -1.0");
        assert!(Baseline::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("tolerance_percent -1"));
        let newer = GateEnvironment {
            rustc: "rustc 1.96.0".into(),
            cpu_model: "Other".into(),
            ..env.clone()
        };
        assert_eq!(
            newer.differences(&env),
            ["rustc: rustc 1.96.0 (baseline: rustc 1.95.0)"]
        );
    }

    #[test]
    fn updating_keeps_unmeasured_parts_and_the_tolerance_and_lists_changes() {
        let env = |rustc: &str| GateEnvironment {
            rustc: rustc.into(),
            valgrind: "valgrind-3.19.0".into(),
            arch: "x86_64".into(),
            cpu_model: "Test".into(),
        };
        let mut previous = Baseline::new(
            env("rustc 1.95.0"),
            counts(&[("data", 1_000_000), ("hdlc", 500), ("setup", 42)]),
        );
        previous.tolerance_percent = 3.0;
        let measured = counts(&[("data", 1_050_000), ("setup", 42), ("tls_bulk", 7)]);
        let (updated, changes) = updated_baseline(Some(&previous), env("rustc 1.96.0"), &measured);
        assert_eq!(updated.tolerance_percent, 3.0);
        assert_eq!(updated.environment.rustc, "rustc 1.96.0");
        let parts: Vec<(&str, u64)> = updated
            .parts
            .iter()
            .map(|(n, c)| (n.as_str(), c.instructions))
            .collect();
        assert_eq!(
            parts,
            [
                ("data", 1_050_000),
                ("hdlc", 500),
                ("setup", 42),
                ("tls_bulk", 7)
            ]
        );
        assert_eq!(
            changes,
            [
                "data: 1,000,000 -> 1,050,000 Ir (+5.00%)",
                "tls_bulk: new, 7 Ir"
            ]
        );

        let (fresh, changes) = updated_baseline(None, env("rustc 1.95.0"), &measured);
        assert_eq!(fresh.tolerance_percent, DEFAULT_TOLERANCE_PERCENT);
        assert_eq!(changes.len(), 3);
    }

    #[test]
    fn setup_phases_are_shown_per_session_with_their_shares() {
        let phases = [(SetupPhase::Http, 1_000_000), (SetupPhase::Auth, 3_000_000)];
        let out = render_phases(&phases, Some(3_960_000));
        let line = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} line in\n{out}"))
                .to_string()
        };
        assert!(
            line("http").contains("10,000") && line("http").ends_with("25.0%"),
            "{out}"
        );
        assert!(
            line("auth").contains("30,000") && line("auth").ends_with("75.0%"),
            "{out}"
        );
        assert!(line("all").contains("40,000"), "{out}");
        assert!(
            out.contains("39,600 per session; the phases sum to +1.01%"),
            "{out}"
        );
    }

    #[test]
    fn a_setup_phase_is_counted_in_its_own_function_and_file() {
        let runner = Runner {
            workload: PathBuf::from("/x/sstp-bench-workload"),
            out_dir: PathBuf::from("/out"),
            no_aslr: false,
        };
        let command = runner.phase_command(SetupPhase::Binding);
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&format!("--toggle-collect={PHASE_TOGGLE_FUNCTION}")),
            "{args:?}"
        );
        assert!(args.contains(&"--callgrind-out-file=/out/callgrind.setup.binding.out".into()));
        assert!(args.ends_with(&[
            "--part".into(),
            "setup".into(),
            "--phase".into(),
            "binding".into()
        ]));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567_890), "1,234,567,890");
    }

    #[test]
    fn the_command_pins_the_environment_and_counts_only_the_measured_function() {
        let runner = Runner {
            workload: "/w/sstp-bench-workload".into(),
            out_dir: "/o".into(),
            no_aslr: true,
        };
        let command = runner.command(Part::Data);
        assert_eq!(command.get_program(), "setarch");
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                std::env::consts::ARCH,
                "-R",
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=sstp_bench_measured",
                "--callgrind-out-file=/o/callgrind.data.out",
                "./sstp-bench-workload",
                "--part",
                "data",
            ]
        );
        let envs: BTreeMap<String, String> = command
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let keys: Vec<&str> = envs.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["GLIBC_TUNABLES", "LC_ALL", "OPENSSL_ia32cap", "PATH"]
        );
        assert!(envs["GLIBC_TUNABLES"].starts_with("glibc.cpu.hwcaps=-AVX_Fast_Unaligned_Load,"));
        assert!(!envs["GLIBC_TUNABLES"].contains(' '));
        assert_eq!(command.get_current_dir(), Some(Path::new("/w")));
    }
}
