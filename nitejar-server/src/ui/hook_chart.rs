//! A plugin's hook calls over the last 24 h as a server-rendered chart: per UTC hour, calls with
//! their errors, and the p50 and p99 durations; each bar has its numbers as its title, and the
//! hours with calls are listed in a table beside it. Geometry is computed here because the
//! page's content security policy allows no inline style: bars are SVG attributes.

use nitejar_core::store::{HookBucket, HookStats};

use super::format_ms;

/// The drawing area of one strip, in SVG user units.
const WIDTH: i64 = 480;
const HEIGHT: i64 = 60;
const SLOT: i64 = 20;
const BAR: i64 = 14;

/// One hour's bars.
pub struct ChartHour {
    /// `HH:00` (UTC).
    pub hour: String,
    /// The hour's date and start, as the page writes times.
    pub start: String,
    pub calls: u64,
    pub errors: u64,
    pub p50: String,
    pub p99: String,
    /// The bar's left edge.
    pub x: i64,
    /// Calls bar: top and height; its error part: top and height.
    pub calls_y: i64,
    pub calls_h: i64,
    pub errors_y: i64,
    pub errors_h: i64,
    /// Latency bars: p99 behind, p50 in front.
    pub p99_y: i64,
    pub p99_h: i64,
    pub p50_y: i64,
    pub p50_h: i64,
}

/// The chart of a plugin page.
pub struct HookChart {
    pub width: i64,
    pub height: i64,
    pub hours: Vec<ChartHour>,
    pub calls: u64,
    pub errors: u64,
    pub p50: String,
    pub p99: String,
    /// The largest hourly call count and p99, the strips' scales.
    pub max_calls: u64,
    pub max_p99: String,
    /// The window, as the page writes times.
    pub since: String,
    /// A sentence for screen readers and the strips' labels.
    pub calls_label: String,
    pub latency_label: String,
    /// Some percentiles come from part of the hour's durations (a very busy window).
    pub sampled: bool,
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v} ms"))
}

/// A bar's height for `value` out of `max`, at least 1 unit when the value is not zero.
fn scaled(value: u64, max: u64) -> i64 {
    if value == 0 || max == 0 {
        return 0;
    }
    let h = (u128::from(value) * HEIGHT as u128).div_ceil(u128::from(max));
    i64::try_from(h).unwrap_or(HEIGHT).clamp(1, HEIGHT)
}

fn hour_of(b: &HookBucket, max_calls: u64, max_p99: u64, index: i64) -> ChartHour {
    let calls_h = scaled(b.calls, max_calls);
    let errors_h = scaled(b.errors, max_calls);
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    let p99_h = scaled(positive(b.p99_ms), max_p99);
    let p50_h = scaled(positive(b.p50_ms), max_p99);
    let start = format_ms(b.start_ms);
    let hour = format!("{:02}:00", b.start_ms.div_euclid(3_600_000).rem_euclid(24));
    ChartHour {
        hour,
        start,
        calls: b.calls,
        errors: b.errors,
        p50: ms(b.p50_ms),
        p99: ms(b.p99_ms),
        x: index * SLOT + (SLOT - BAR) / 2,
        calls_y: HEIGHT - calls_h,
        calls_h,
        errors_y: HEIGHT - errors_h,
        errors_h,
        p99_y: HEIGHT - p99_h,
        p99_h,
        p50_y: HEIGHT - p50_h,
        p50_h,
    }
}

impl HookChart {
    /// The chart of `stats` (hourly buckets, oldest first).
    pub fn new(stats: &HookStats) -> HookChart {
        let max_calls = stats.buckets.iter().map(|b| b.calls).max().unwrap_or(0);
        let max_p99 = stats
            .buckets
            .iter()
            .filter_map(|b| b.p99_ms.and_then(|v| u64::try_from(v).ok()))
            .max()
            .unwrap_or(0);
        let hours: Vec<ChartHour> = stats
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| hour_of(b, max_calls, max_p99, i as i64))
            .collect();
        let t = &stats.total;
        let n = hours.len();
        HookChart {
            width: WIDTH.max(n as i64 * SLOT),
            height: HEIGHT,
            calls: t.calls,
            errors: t.errors,
            p50: ms(t.p50_ms),
            p99: ms(t.p99_ms),
            max_calls,
            max_p99: format!("{max_p99} ms"),
            since: format_ms(stats.since_ms),
            calls_label: format!(
                "Hook calls per hour over the last {n} hours: {} calls, {} errors in all; at most {max_calls} in one hour.",
                t.calls, t.errors
            ),
            latency_label: format!(
                "Hook call duration per hour over the last {n} hours: p50 {}, p99 {} over the window; the highest hourly p99 {max_p99} ms.",
                ms(t.p50_ms),
                ms(t.p99_ms)
            ),
            sampled: stats
                .buckets
                .iter()
                .any(|b| b.durations_read < b.calls),
            hours,
        }
    }

    /// The hours that had calls, for the table.
    pub fn busy_hours(&self) -> Vec<&ChartHour> {
        self.hours.iter().filter(|h| h.calls > 0).collect()
    }
}
