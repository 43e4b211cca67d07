//! A plugin's hook calls over a recent window, in hourly buckets: how many, how many failed, and
//! the median and 99th-percentile durations, from the hook receipts it left in `plugin_events`.
//!
//! Counts are computed by the database (one `GROUP BY` that reads the same on SQLite and
//! Postgres). Percentiles are not: Postgres has `percentile_disc`, SQLite has nothing like it, so
//! the durations of the window are read (at most [`MAX_DURATIONS_READ`], newest first) and ranked
//! here. A bucket whose durations were not all read says so (`durations_read < calls`).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{col, SqlStore};
use super::StoreError;

/// One hour, the width of a bucket.
pub const BUCKET_MS: i64 = 3_600_000;

/// The longest window a query may ask for: one week of hourly buckets.
pub const MAX_HOURS: u32 = 168;

/// At most this many durations are read for one window's percentiles (about 1.6 MB of rows).
pub const MAX_DURATIONS_READ: i64 = 100_000;

/// Hook receipt statuses counted as failures of the handler: it failed, ran past its time, or
/// answered a change its event does not allow. `blocked` is an answer, not a failure.
pub const ERROR_STATUSES: [&str; 3] = ["error", "timeout", "denied"];

/// Which plugin and which hours to summarise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookStatsWindow<'a> {
    /// The plugin.
    pub plugin_id: &'a str,
    /// How many hourly buckets, the last one holding `now` (1 to [`MAX_HOURS`]).
    pub hours: u32,
    /// The time the window ends at, Unix milliseconds.
    pub now_ms: i64,
}

impl HookStatsWindow<'_> {
    /// The first bucket's start: buckets are whole UTC hours, the last one the hour of `now_ms`.
    pub fn since_ms(&self) -> i64 {
        let hours = i64::from(self.hours.clamp(1, MAX_HOURS));
        self.now_ms.div_euclid(BUCKET_MS) * BUCKET_MS - (hours - 1) * BUCKET_MS
    }
}

/// A plugin's hook calls over a window, in hourly buckets, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookStats {
    /// The first bucket's start (Unix ms, a whole UTC hour).
    pub since_ms: i64,
    /// The end of the window (Unix ms, exclusive).
    pub until_ms: i64,
    /// Every bucket of the window, empty ones included.
    pub buckets: Vec<HookBucket>,
    /// Totals over the window, with percentiles over all its durations read.
    pub total: HookBucket,
}

/// One hour of a plugin's hook calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookBucket {
    /// The hour's start (Unix ms).
    pub start_ms: i64,
    /// Hook handler calls (receipts of kind `hook`, except `skipped_budget`: those never ran).
    pub calls: u64,
    /// Calls whose status is one of [`ERROR_STATUSES`].
    pub errors: u64,
    /// The median duration in ms (nearest rank), `None` without calls.
    pub p50_ms: Option<i64>,
    /// The 99th-percentile duration in ms (nearest rank), `None` without calls.
    pub p99_ms: Option<i64>,
    /// How many of the calls' durations the percentiles come from.
    pub durations_read: u64,
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of `sorted` (ascending): the smallest value with
/// at least `p` % of the values at or below it. `None` for no values.
///
/// ```
/// use nitejar_store::store::nearest_rank;
/// let ms: Vec<i64> = (1..=100).collect();
/// assert_eq!(nearest_rank(&ms, 50), Some(50));
/// assert_eq!(nearest_rank(&ms, 99), Some(99));
/// assert_eq!(nearest_rank(&[7], 99), Some(7));
/// ```
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    // ceil(p/100 · n), at least 1: integer arithmetic, so 50 % of 100 values is the 50th exactly.
    let rank = (u64::from(p.clamp(1, 100)) * n).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(usize::MAX);
    sorted.get(index).or(sorted.last()).copied()
}

fn fill(bucket: &mut HookBucket, mut durations: Vec<i64>) {
    durations.sort_unstable();
    bucket.p50_ms = nearest_rank(&durations, 50);
    bucket.p99_ms = nearest_rank(&durations, 99);
    bucket.durations_read = durations.len() as u64;
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
{
    pub(crate) async fn sql_hook_stats(
        &self,
        window: HookStatsWindow<'_>,
    ) -> Result<HookStats, StoreError> {
        const OP: &str = "summarise hook receipts";
        let since = window.since_ms();
        let until = window.now_ms.saturating_add(1);
        let hours = usize::try_from(window.hours.clamp(1, MAX_HOURS)).unwrap_or(1);
        let errors = ERROR_STATUSES
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let calls = "plugin_id = $1 AND kind = 'hook' AND status <> 'skipped_budget' \
                     AND created_at >= $2 AND created_at < $3";
        // Integer division of BIGINTs truncates on both backends; `created_at >= $2` keeps it
        // non-negative. `GROUP BY 1` because Postgres does not see two `$2` expressions as equal.
        let counts = sqlx::query(&format!(
            "SELECT (created_at - $2) / {BUCKET_MS} AS bucket, COUNT(*) AS calls, \
             SUM(CASE WHEN status IN ({errors}) THEN 1 ELSE 0 END) AS errors \
             FROM plugin_events WHERE {calls} GROUP BY 1"
        ))
        .bind(window.plugin_id)
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;
        let durations = sqlx::query(&format!(
            "SELECT created_at, duration_ms FROM plugin_events WHERE {calls} \
             ORDER BY created_at DESC LIMIT $4"
        ))
        .bind(window.plugin_id)
        .bind(since)
        .bind(until)
        .bind(MAX_DURATIONS_READ)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(OP))?;

        let mut buckets: Vec<HookBucket> = (0..hours)
            .map(|i| HookBucket {
                start_ms: since + i as i64 * BUCKET_MS,
                ..Default::default()
            })
            .collect();
        let mut total = HookBucket {
            start_ms: since,
            ..Default::default()
        };
        for row in &counts {
            let index: i64 = col(row, "bucket", OP)?;
            let calls: i64 = col(row, "calls", OP)?;
            let errors: i64 = col(row, "errors", OP)?;
            let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) else {
                continue;
            };
            bucket.calls = u64::try_from(calls).unwrap_or(0);
            bucket.errors = u64::try_from(errors).unwrap_or(0);
            total.calls += bucket.calls;
            total.errors += bucket.errors;
        }
        let mut per_bucket: Vec<Vec<i64>> = vec![Vec::new(); hours];
        let mut all = Vec::with_capacity(durations.len());
        for row in &durations {
            let at: i64 = col(row, "created_at", OP)?;
            let ms: Option<i64> = col(row, "duration_ms", OP)?;
            let Some(ms) = ms else { continue };
            let index = usize::try_from((at - since) / BUCKET_MS).unwrap_or(usize::MAX);
            if let Some(list) = per_bucket.get_mut(index) {
                list.push(ms);
                all.push(ms);
            }
        }
        for (bucket, list) in buckets.iter_mut().zip(per_bucket) {
            fill(bucket, list);
        }
        fill(&mut total, all);
        Ok(HookStats {
            since_ms: since,
            until_ms: until,
            buckets,
            total,
        })
    }
}
