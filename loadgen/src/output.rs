//! Observers for the command line: the live progress line and the
//! hdrhistogram interval log.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::engine::{Observer, Snapshot};
use crate::report::bit_rate;
use crate::stats::{Counters, Histo};

impl<T: Observer> Observer for Option<T> {
    fn interval(&mut self, s: &Snapshot<'_>) {
        if let Some(o) = self {
            o.interval(s);
        }
    }
}

/// One line per second: on a terminal rewritten in place, otherwise
/// appended (logs, CI).
#[derive(Debug)]
pub struct ProgressLine<W: Write> {
    out: W,
    rewrite: bool,
    previous: Option<(Duration, Counters)>,
}

impl ProgressLine<io::Stderr> {
    /// On stderr; rewritten in place when stderr is a terminal.
    pub fn stderr() -> Self {
        let rewrite = io::stderr().is_terminal();
        ProgressLine::new(io::stderr(), rewrite)
    }
}

impl<W: Write> ProgressLine<W> {
    pub fn new(out: W, rewrite: bool) -> Self {
        ProgressLine {
            out,
            rewrite,
            previous: None,
        }
    }

    /// The text of one progress line.
    pub fn line(s: &Snapshot<'_>, previous: Option<&(Duration, Counters)>) -> String {
        let c = s.counters;
        let span = previous.map_or(s.elapsed, |(t, _)| s.elapsed.saturating_sub(*t));
        let zero = Counters::default();
        let before = previous.map_or(&zero, |(_, c)| c);
        let per_s = |now: u64, then: u64| {
            let secs = span.as_secs_f64();
            if secs > 0.0 {
                now.saturating_sub(then) as f64 / secs
            } else {
                0.0
            }
        };
        let mut line = format!(
            "[{:>6.1}s] {:<6} sessions {}/{} up, {} failed, {} dropped",
            s.elapsed.as_secs_f64(),
            s.phase.as_str(),
            c.active(),
            s.sessions,
            c.failed,
            c.dropped,
        );
        if c.established > before.established {
            line += &format!(
                " | {:.0} setups/s",
                per_s(c.established, before.established)
            );
        }
        if c.cycles > before.cycles {
            line += &format!(" {:.0} cycles/s", per_s(c.cycles, before.cycles));
        }
        let up = per_s(c.up_bytes, before.up_bytes);
        let down = per_s(c.down_bytes, before.down_bytes);
        if c.up_packets + c.down_packets > 0 {
            line += &format!(
                " | up {} {:.0} pps | down {} {:.0} pps",
                bit_rate(up * 8.0),
                per_s(c.up_packets, before.up_packets),
                bit_rate(down * 8.0),
                per_s(c.down_packets, before.down_packets),
            );
        }
        let ms = |h: &Histo, q: f64| h.hist.value_at_quantile(q) as f64 / 1000.0;
        if !s.rtt.hist.is_empty() {
            line += &format!(
                " | rtt p50 {:.3} p99 {:.3} ms",
                ms(s.rtt, 0.5),
                ms(s.rtt, 0.99)
            );
        }
        if !s.setup.hist.is_empty() {
            line += &format!(" | setup p50 {:.1} ms", ms(s.setup, 0.5));
        }
        line
    }
}

impl<W: Write> Observer for ProgressLine<W> {
    fn interval(&mut self, s: &Snapshot<'_>) {
        let line = Self::line(s, self.previous.as_ref());
        self.previous = Some((s.elapsed, *s.counters));
        // Progress is best effort: a closed stderr must not end the run.
        let _ = if self.rewrite {
            write!(self.out, "\r\x1b[2K{line}").and_then(|()| {
                if s.last {
                    writeln!(self.out)
                } else {
                    Ok(())
                }
            })
        } else {
            writeln!(self.out, "{line}")
        };
        let _ = self.out.flush();
    }
}

/// Tags of the interval log.
pub const TAG_RTT: &str = "rtt";
pub const TAG_SETUP: &str = "setup";

/// An hdrhistogram interval log (the format of HdrHistogram's
/// `HistogramLogWriter`, readable by `HistogramLogProcessor` and
/// hdrhistogram's `IntervalLogIterator`): per second one histogram of
/// round trip times (tag `rtt`) and one of session setup times (tag
/// `setup`), values in microseconds.
pub struct HdrLog {
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
    error: Option<io::Error>,
}

impl std::fmt::Debug for HdrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdrLog").finish_non_exhaustive()
    }
}

impl HdrLog {
    pub fn create(path: &Path, start: SystemTime) -> io::Result<HdrLog> {
        let mut file = BufWriter::new(File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "sstp-loadgen {} interval log: tags rtt (round trip) and setup (session setup), values in microseconds",
                env!("CARGO_PKG_VERSION")
            ))
            .with_start_time(start)
            .begin_log_with(&mut file, &mut serializer)?;
        writeln!(
            file,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        Ok(HdrLog {
            file,
            serializer,
            error: None,
        })
    }

    fn write(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let start = s.interval_start;
        let length = s.elapsed.saturating_sub(s.interval_start);
        // A builder without headers writes nothing but the histograms.
        let mut log = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.file, &mut self.serializer)
            .map_err(|e| e.to_string())?;
        for (tag, h) in [(TAG_RTT, s.rtt), (TAG_SETUP, s.setup)] {
            log.write_histogram(&h.hist, start, length, Tag::new(tag))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Flushes the file; reports the first error of the run, if any.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.file.flush()
    }
}

impl Observer for HdrLog {
    fn interval(&mut self, s: &Snapshot<'_>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.write(s) {
            self.error = Some(io::Error::other(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Phase;

    #[test]
    fn the_progress_line_shows_rates_over_the_last_interval() {
        let mut rtt = Histo::new();
        rtt.record(Duration::from_micros(250));
        let setup = Histo::new();
        let mut counters = Counters {
            attempted: 10,
            established: 10,
            failed: 1,
            up_packets: 1000,
            up_bytes: 1_000_000,
            down_packets: 500,
            down_bytes: 500_000,
            ..Counters::default()
        };
        let snapshot = |counters: &Counters, last| {
            let mut out = Vec::new();
            let mut line = ProgressLine::new(&mut out, false);
            line.previous = Some((Duration::from_secs(1), Counters::default()));
            line.interval(&Snapshot {
                elapsed: Duration::from_secs(2),
                interval_start: Duration::from_secs(1),
                phase: Phase::Window,
                sessions: 12,
                counters,
                rtt: &rtt,
                setup: &setup,
                last,
            });
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            snapshot(&counters, false),
            "[   2.0s] run    sessions 10/12 up, 1 failed, 0 dropped | 10 setups/s \
             | up 8.0 Mbit/s 1000 pps | down 4.0 Mbit/s 500 pps | rtt p50 0.250 p99 0.250 ms\n"
        );
        counters.dropped = 2;
        assert!(snapshot(&counters, true).contains("8/12 up, 1 failed, 2 dropped"));
        // On a terminal the line is rewritten in place, and ended at the end.
        let mut out = Vec::new();
        let mut line = ProgressLine::new(&mut out, true);
        line.interval(&Snapshot {
            elapsed: Duration::from_secs(1),
            interval_start: Duration::ZERO,
            phase: Phase::Finish,
            sessions: 12,
            counters: &counters,
            rtt: &rtt,
            setup: &setup,
            last: true,
        });
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("\r\x1b[2K[   1.0s] finish") && text.ends_with('\n'));
    }
}
