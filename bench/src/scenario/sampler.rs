//! Who used the CPU while a load ran: a background thread samples the
//! CPU time and resident memory of a few processes (sstpd, the load
//! generator, its peer) every [`SAMPLE_INTERVAL`], and every
//! [`FULL_EVERY`]th time also their user/system split and the whole
//! machine's busy time, so a scenario can ask afterwards for any
//! sub-interval of the run (the ramp, the traffic window) by wall-clock
//! time, which is how the load generator's report states them.
//!
//! The sampler runs on the cores it measures, so what it costs is what it
//! disturbs. Reading everything every time (`/proc/<pid>/stat` and
//! `status` opened afresh, `/proc/stat`) took 0.33 ms of its CPU a sample,
//! ten times a second, and sstpd's latency p99 at the `latency_icmp`
//! scenario's 10% point was higher with it than with one sample a second
//! (docs/benchmarking.md, "The bench's own disturbance"). Most samples are
//! now [`Reading::Light`]: the CPU clocks and `statm`, from files kept
//! open.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::process::{clock_ticks, read_again, ProcessSample, ProcessWatch, Reading};

/// Time between two samples: ten a second is enough to find a ramp's or a
/// window's edges, and keeps the sampler's own CPU small.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Samples kept at most (one hour at [`SAMPLE_INTERVAL`]); the sampler
/// stops on its own after that.
pub const MAX_SAMPLES: usize = 36_000;

/// Every how many samples one is a [`Reading::Full`] one (the first and
/// the last are too): the user/system split and the machine's busy time
/// are interpolated between those, the CPU clocks and memory between all.
pub const FULL_EVERY: usize = 10;

/// One reading of every watched process and of the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// In the order of [`Sampler::start`]'s `pids`; `None` once a process
    /// is gone.
    pub processes: Vec<Option<ProcessSample>>,
    /// Busy CPU seconds of the whole machine (all cores) since boot
    /// (full samples).
    pub machine_busy_seconds: Option<f64>,
}

/// What a [`Sampler`] collected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    pub points: Vec<Point>,
}

/// The CPU one process used in an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuUse {
    pub user_seconds: f64,
    pub system_seconds: f64,
}

impl CpuUse {
    pub fn seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }

    /// The share spent in the kernel (system calls, the network stack run
    /// on the process's behalf), 0 when nothing was used.
    pub fn system_share(&self) -> f64 {
        let total = self.seconds();
        if total > 0.0 {
            self.system_seconds / total
        } else {
            0.0
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Linear interpolation of `value` over `points` at time `at`; clamped to
/// the first and last points that have a value.
fn interpolate(points: &[Point], at: f64, value: impl Fn(&Point) -> Option<f64>) -> Option<f64> {
    let known: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.at, value(p)?)))
        .collect();
    let (first, last) = (known.first()?, known.last()?);
    if at <= first.0 {
        return Some(first.1);
    }
    if at >= last.0 {
        return Some(last.1);
    }
    let after = known.iter().position(|&(t, _)| t >= at)?;
    let (t1, v1) = known[after];
    let (t0, v0) = known[after.checked_sub(1)?];
    if t1 <= t0 {
        return Some(v1);
    }
    Some(v0 + (v1 - v0) * (at - t0) / (t1 - t0))
}

impl Samples {
    /// The times of the last sample at or before `from` and the first at
    /// or after `to` (the first and last samples where there is none): the
    /// samples around an interval. Reading the CPU there instead of
    /// interpolating counts all of a burst that began and ended inside the
    /// interval, when the processes were idle just outside it.
    pub fn around(&self, from: f64, to: f64) -> (f64, f64) {
        let before = self.points.iter().rev().find(|p| p.at <= from);
        let after = self.points.iter().find(|p| p.at >= to);
        (
            before.or(self.points.first()).map_or(from, |p| p.at),
            after.or(self.points.last()).map_or(to, |p| p.at),
        )
    }

    /// CPU used by the `index`th process between `from` and `to` (Unix
    /// seconds), interpolated between samples. The total is the process's
    /// CPU clock (nanoseconds); its split into user and system time is the
    /// split of `/proc`'s ticks in the same interval, interpolated between
    /// the full samples (all user when no tick was counted).
    pub fn cpu(&self, index: usize, from: f64, to: f64) -> Option<CpuUse> {
        let process = |p: &Point| p.processes.get(index).copied().flatten();
        let between = |value: &dyn Fn(&ProcessSample) -> Option<f64>| -> Option<f64> {
            let at = |t| interpolate(&self.points, t, |p| value(&process(p)?));
            Some((at(to)? - at(from)?).max(0.0))
        };
        let total = between(&ProcessSample::cpu_seconds)?;
        let user_ticks = between(&|s| Some(s.ticks?.user_seconds)).unwrap_or(0.0);
        let system_ticks = between(&|s| Some(s.ticks?.system_seconds)).unwrap_or(0.0);
        let system_share = if user_ticks + system_ticks > 0.0 {
            system_ticks / (user_ticks + system_ticks)
        } else {
            0.0
        };
        Some(CpuUse {
            user_seconds: total * (1.0 - system_share),
            system_seconds: total * system_share,
        })
    }

    /// Busy CPU seconds of the whole machine between `from` and `to`.
    pub fn machine_busy(&self, from: f64, to: f64) -> Option<f64> {
        let busy = |at| interpolate(&self.points, at, |p| p.machine_busy_seconds);
        Some((busy(to)? - busy(from)?).max(0.0))
    }

    /// The `index`th process's resident memory at the sample nearest to
    /// `at`.
    pub fn rss_near(&self, index: usize, at: f64) -> Option<u64> {
        self.points
            .iter()
            .filter_map(|p| Some((p.at, p.processes.get(index).copied().flatten()?)))
            .min_by(|a, b| (a.0 - at).abs().total_cmp(&(b.0 - at).abs()))
            .map(|(_, s)| s.rss_bytes)
    }

    /// The `index`th process's peak resident memory: the highest VmHWM or
    /// resident memory read.
    pub fn rss_peak(&self, index: usize) -> Option<u64> {
        self.points
            .iter()
            .filter_map(|p| p.processes.get(index).copied().flatten())
            .map(|s| s.rss_peak_bytes.unwrap_or(0).max(s.rss_bytes))
            .max()
    }

    /// The `index`th process's last reading.
    pub fn last(&self, index: usize) -> Option<ProcessSample> {
        self.points
            .iter()
            .rev()
            .find_map(|p| p.processes.get(index).copied().flatten())
    }
}

/// Busy time of all cores from the first line of `/proc/stat` (`ticks`
/// per second): everything but idle and iowait.
pub fn parse_machine_busy(stat: &str, ticks: u64) -> Option<f64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle) as f64 / ticks.max(1) as f64)
}

/// What a sampler reads: its processes and `/proc/stat`, kept open.
struct Watched {
    processes: Vec<ProcessWatch>,
    machine: Option<fs::File>,
    buf: Vec<u8>,
    ticks: u64,
}

impl Watched {
    fn open(pids: &[u32]) -> Watched {
        Watched {
            processes: pids.iter().map(|&pid| ProcessWatch::open(pid)).collect(),
            machine: fs::File::open("/proc/stat").ok(),
            buf: vec![0; 4096],
            ticks: clock_ticks(),
        }
    }

    fn read(&mut self, reading: Reading) -> Point {
        let machine_busy_seconds = match reading {
            Reading::Light => None,
            Reading::Full => read_again(self.machine.as_ref(), &mut self.buf)
                .ok()
                .and_then(|stat| parse_machine_busy(stat, self.ticks)),
        };
        Point {
            at: unix_seconds(SystemTime::now()),
            processes: self
                .processes
                .iter_mut()
                .map(|watch| watch.read(reading).ok())
                .collect(),
            machine_busy_seconds,
        }
    }
}

/// A running sampler; [`Sampler::finish`] stops it and returns the
/// samples (dropping it stops it too).
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Samples>>,
}

impl Sampler {
    /// Starts sampling `pids` (a first point is taken before it returns).
    pub fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let mut watched = Watched::open(&pids);
        let first = watched.read(Reading::Full);
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut samples = Samples {
                points: vec![first],
            };
            let mut stopping = false;
            while !stopping && samples.points.len() < MAX_SAMPLES {
                std::thread::park_timeout(SAMPLE_INTERVAL);
                stopping = flag.load(Ordering::Acquire);
                let reading = if stopping || samples.points.len() % FULL_EVERY == 0 {
                    Reading::Full
                } else {
                    Reading::Light
                };
                samples.points.push(watched.read(reading));
            }
            samples
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sampling (after one last point) and returns what was seen.
    pub fn finish(mut self) -> Samples {
        self.halt().unwrap_or_default()
    }

    fn halt(&mut self) -> Option<Samples> {
        let handle = self.handle.take()?;
        self.stop.store(true, Ordering::Release);
        handle.thread().unpark();
        handle.join().ok()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::process::CpuTicks;
    use std::time::Instant;

    fn sample(user: f64, system: f64, rss: u64) -> ProcessSample {
        ProcessSample {
            clock_seconds: None,
            ticks: Some(CpuTicks {
                user_seconds: user,
                system_seconds: system,
            }),
            threads: Some(1),
            rss_bytes: rss,
            rss_peak_bytes: Some(rss),
            at: Instant::now(),
        }
    }

    /// A light reading: the clock and the memory only.
    fn light(clock: f64, rss: u64) -> ProcessSample {
        ProcessSample {
            clock_seconds: Some(clock),
            ticks: None,
            threads: None,
            rss_bytes: rss,
            rss_peak_bytes: None,
            at: Instant::now(),
        }
    }

    fn points() -> Samples {
        Samples {
            points: vec![
                Point {
                    at: 100.0,
                    processes: vec![Some(sample(1.0, 0.0, 10)), None],
                    machine_busy_seconds: Some(50.0),
                },
                Point {
                    at: 101.0,
                    processes: vec![Some(sample(1.5, 0.5, 20)), None],
                    machine_busy_seconds: Some(51.8),
                },
                Point {
                    at: 102.0,
                    processes: vec![Some(sample(2.5, 0.5, 30)), None],
                    machine_busy_seconds: Some(53.8),
                },
            ],
        }
    }

    #[test]
    fn cpu_is_interpolated_between_samples() {
        let s = points();
        let all = s.cpu(0, 100.0, 102.0).unwrap();
        assert_eq!((all.user_seconds, all.system_seconds), (1.5, 0.5));
        assert_eq!(all.system_share(), 0.25);
        // Half of the first second, half of the second.
        let mid = s.cpu(0, 100.5, 101.5).unwrap();
        assert!((mid.user_seconds - 0.75).abs() < 1e-9, "{mid:?}");
        assert!((mid.system_seconds - 0.25).abs() < 1e-9, "{mid:?}");
        // Outside the samples: clamped, so nothing is invented.
        assert_eq!(s.cpu(0, 90.0, 100.0).unwrap().seconds(), 0.0);
        assert_eq!(s.cpu(0, 102.0, 200.0).unwrap().seconds(), 0.0);
        // A process never seen has no figure.
        assert_eq!(s.cpu(1, 100.0, 102.0), None);
        assert_eq!(s.cpu(7, 100.0, 102.0), None);
        assert!((s.machine_busy(100.0, 102.0).unwrap() - 3.8).abs() < 1e-9);
    }

    #[test]
    fn the_cpu_clock_gives_the_total_and_the_ticks_its_split() {
        let at = |at: f64, clock: f64, user: f64, system: f64| Point {
            at,
            processes: vec![Some(ProcessSample {
                clock_seconds: Some(clock),
                ..sample(user, system, 10)
            })],
            machine_busy_seconds: None,
        };
        // 3 ms of CPU and not one tick counted: all of it, as user time.
        let s = Samples {
            points: vec![at(100.0, 0.001, 0.0, 0.0), at(101.0, 0.004, 0.0, 0.0)],
        };
        let used = s.cpu(0, 100.0, 101.0).unwrap();
        assert!((used.seconds() - 0.003).abs() < 1e-12, "{used:?}");
        assert_eq!(used.system_share(), 0.0);
        // 0.105 s on the clock, ticks of 0.06 user and 0.04 system.
        let s = Samples {
            points: vec![at(100.0, 1.0, 0.5, 0.5), at(101.0, 1.105, 0.56, 0.54)],
        };
        let used = s.cpu(0, 100.0, 101.0).unwrap();
        assert!((used.seconds() - 0.105).abs() < 1e-9, "{used:?}");
        assert!((used.system_share() - 0.4).abs() < 1e-9, "{used:?}");
    }

    #[test]
    fn between_full_samples_the_clock_gives_the_total_and_they_the_split() {
        let full = |at: f64, clock: f64, user: f64, system: f64| Point {
            at,
            processes: vec![Some(ProcessSample {
                clock_seconds: Some(clock),
                ..sample(user, system, 10)
            })],
            machine_busy_seconds: Some(at),
        };
        let light = |at: f64, clock: f64, rss: u64| Point {
            at,
            processes: vec![Some(light(clock, rss))],
            machine_busy_seconds: None,
        };
        // One second: 0.5 s of CPU, a fifth of it in the kernel, nearly
        // all of it between 100.4 and 100.6.
        let s = Samples {
            points: vec![
                full(100.0, 1.0, 0.8, 0.2),
                light(100.2, 1.01, 10),
                light(100.4, 1.02, 500),
                light(100.6, 1.48, 20),
                light(100.8, 1.49, 10),
                full(101.0, 1.5, 1.2, 0.3),
            ],
        };
        let burst = s.cpu(0, 100.4, 100.6).unwrap();
        assert!((burst.seconds() - 0.46).abs() < 1e-9, "{burst:?}");
        assert!((burst.system_share() - 0.2).abs() < 1e-9, "{burst:?}");
        // The machine's busy time is interpolated between full samples.
        assert!((s.machine_busy(100.4, 100.6).unwrap() - 0.2).abs() < 1e-9);
        // Memory from every sample; the peak from all of them.
        assert_eq!(s.rss_near(0, 100.41), Some(500));
        assert_eq!(s.rss_peak(0), Some(500));
        assert_eq!(s.rss_peak(1), None);
        // Light readings alone: a total, all of it user time.
        let s = Samples {
            points: vec![light(100.2, 1.01, 10), light(100.6, 1.48, 20)],
        };
        let used = s.cpu(0, 100.2, 100.6).unwrap();
        assert!((used.seconds() - 0.47).abs() < 1e-9);
        assert_eq!(used.system_share(), 0.0);
    }

    #[test]
    fn a_burst_is_read_whole_at_the_samples_around_it() {
        let s = points();
        // A burst from 100.4 to 101.6: interpolating would give 0.6 of each
        // second's CPU; the samples around it hold all of both.
        assert_eq!(s.around(100.4, 101.6), (100.0, 102.0));
        assert_eq!(s.around(101.0, 101.0), (101.0, 101.0));
        // Past either end: the first and last samples.
        assert_eq!(s.around(90.0, 300.0), (100.0, 102.0));
        assert_eq!(Samples::default().around(1.0, 2.0), (1.0, 2.0));
    }

    #[test]
    fn rss_is_taken_at_the_nearest_sample() {
        let s = points();
        assert_eq!(s.rss_near(0, 101.2), Some(20));
        assert_eq!(s.rss_near(0, 500.0), Some(30));
        assert_eq!(s.rss_near(1, 101.0), None);
        assert_eq!(s.last(0).unwrap().rss_bytes, 30);
        assert_eq!(Samples::default().cpu(0, 0.0, 1.0), None);
    }

    #[test]
    fn machine_busy_time_excludes_idle_and_iowait() {
        let stat = "cpu  1000 0 200 5000 300 0 40 60 0 0\ncpu0 1 2 3 4\n";
        // (1000 + 200 + 40 + 60) ticks at 100 per second.
        assert_eq!(parse_machine_busy(stat, 100), Some(13.0));
        assert_eq!(parse_machine_busy("cpu0 1 2 3", 100), None);
        assert_eq!(parse_machine_busy("cpu  x y", 100), None);
        assert_eq!(parse_machine_busy("", 100), None);
    }

    #[test]
    fn a_sampler_watches_our_own_process() {
        let sampler = Sampler::start(vec![std::process::id(), u32::MAX]);
        std::thread::sleep(Duration::from_millis(250));
        let samples = sampler.finish();
        assert!(samples.points.len() >= 2, "{}", samples.points.len());
        assert!(samples.points.iter().all(|p| p.processes[0].is_some()));
        assert!(samples.points.iter().all(|p| p.processes[1].is_none()));
        let (first, last) = (&samples.points[0], samples.points.last().unwrap());
        assert!(last.at > first.at);
        assert!(samples.cpu(0, first.at, last.at).is_some());
        assert!(samples.machine_busy(first.at, last.at).unwrap() >= 0.0);
    }

    #[test]
    fn every_tenth_sample_and_the_first_and_last_are_full() {
        let sampler = Sampler::start(vec![std::process::id()]);
        std::thread::sleep(SAMPLE_INTERVAL * (FULL_EVERY as u32 + 3));
        let samples = sampler.finish();
        let points = &samples.points;
        assert!(points.len() > FULL_EVERY + 1, "{}", points.len());
        let full = |p: &Point| {
            let process = p.processes[0].unwrap();
            let full = process.ticks.is_some();
            // A reading is whole either way.
            assert_eq!(full, process.threads.is_some());
            assert_eq!(full, process.rss_peak_bytes.is_some());
            assert_eq!(full, p.machine_busy_seconds.is_some());
            assert!(process.clock_seconds.is_some() && process.rss_bytes > 0);
            full
        };
        for (i, point) in points.iter().enumerate() {
            let expected = i % FULL_EVERY == 0 || i == points.len() - 1;
            assert_eq!(full(point), expected, "sample {i} of {}", points.len());
        }
    }
}
