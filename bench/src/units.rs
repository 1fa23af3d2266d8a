//! Figures as people read them: `1.92 Gbit/s`, `171,233 packets/s`,
//! `412 µs`, `21.3 MiB`.

use crate::gate::thousands;

/// `n` over `seconds` (0 for no time): a rate of events.
pub fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Three significant digits, at least: `5.81`, `41.2`, `612`, `2,310`.
pub fn significant(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        format!("{v}")
    } else if a >= 1000.0 {
        let rounded = thousands(a.round() as u64);
        if v < 0.0 {
            format!("-{rounded}")
        } else {
            rounded
        }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Bytes in binary units.
pub fn bytes(v: f64) -> String {
    let a = v.abs();
    if a >= (1u64 << 30) as f64 {
        format!("{} GiB", significant(v / (1u64 << 30) as f64))
    } else if a >= (1u64 << 20) as f64 {
        format!("{} MiB", significant(v / (1u64 << 20) as f64))
    } else if a >= 1024.0 {
        format!("{} KiB", significant(v / 1024.0))
    } else {
        format!("{} B", v.round())
    }
}

/// Microseconds as µs below a millisecond, else ms.
pub fn micros(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{} ms", significant(v / 1000.0))
    } else {
        format!("{} µs", significant(v))
    }
}

/// A figure's value with its unit.
pub fn quantity(value: f64, unit: &str) -> String {
    match unit {
        "B" => bytes(value),
        "us" => micros(value),
        "ratio" => format!("{}%", significant(value * 100.0)),
        "count" => significant(value),
        _ if unit.starts_with('/') => format!("{}{unit}", significant(value)),
        _ => format!("{} {unit}", significant(value)),
    }
}

/// A ratio: `0.33`, or `14×` when above 10 (latencies, costs).
pub fn ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{}×", significant(r))
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_three_significant_digits() {
        assert_eq!(significant(5.8149), "5.81");
        assert_eq!(significant(41.23), "41.2");
        assert_eq!(significant(612.4), "612");
        assert_eq!(significant(171_233.4), "171,233");
        assert_eq!(significant(0.0), "0.00");
        assert_eq!(significant(0.0123), "0.012");
        assert_eq!(significant(-2500.0), "-2,500");
    }

    #[test]
    fn units_are_chosen_for_reading() {
        assert_eq!(quantity(1.9234, "Gbit/s"), "1.92 Gbit/s");
        assert_eq!(quantity(22_334_000.0, "B"), "21.3 MiB");
        assert_eq!(quantity(41_000.0, "B"), "40.0 KiB");
        assert_eq!(quantity(512.0, "B"), "512 B");
        assert_eq!(quantity(412.3, "us"), "412 µs");
        assert_eq!(quantity(1_930.0, "us"), "1.93 ms");
        assert_eq!(quantity(0.0012, "ratio"), "0.120%");
        assert_eq!(quantity(612.0, "/s"), "612/s");
        assert_eq!(ratio(0.3312), "0.33");
        assert_eq!(ratio(13.61), "13.6×");
    }
}
