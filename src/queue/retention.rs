//! Retention: a forge bot runs for years, and a ledger that only grows slows every insert and
//! every read with it. Finished deliveries lose their bodies after a week and their rows after
//! a month (long past the forges' redelivery windows, so the dedupe still holds); dead letters
//! are kept, body and all, until replayed or three months old. Pruning walks the ids in small
//! windows, each its own short transaction between the writer's other work; SQLite reuses the
//! freed pages for new deliveries, so the file stops growing instead of shrinking.

use std::time::Duration;

use serde::Serialize;

use super::sqlite::{Answer, Write};
use super::{Db, Store, StoreError, now_ms};

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rows of done and ignored deliveries.
    pub done: Duration,
    /// Bodies of done and ignored deliveries (never longer than their rows).
    pub bodies: Duration,
    /// Dead letters, body and all.
    pub dead: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Retention {
            done: Duration::from_secs(30 * DAY),
            bodies: Duration::from_secs(7 * DAY),
            dead: Duration::from_secs(90 * DAY),
        }
    }
}

/// What one prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub deliveries: u64,
    pub bodies: u64,
}

/// Ids per window: one short transaction each.
const WINDOW: i64 = 500;

const BODIES_FINISHED: &str = "DELETE FROM delivery_bodies WHERE id >= $1 AND id < $2 AND id IN (SELECT id FROM deliveries WHERE id >= $1 AND id < $2 AND state IN ('done', 'ignored'))";
const ROWS_FINISHED: &str =
    "DELETE FROM deliveries WHERE id >= $1 AND id < $2 AND state IN ('done', 'ignored')";
const BODIES_DEAD: &str = "DELETE FROM delivery_bodies WHERE id >= $1 AND id < $2 AND id IN (SELECT id FROM deliveries WHERE id >= $1 AND id < $2 AND state = 'dead')";
const ROWS_DEAD: &str = "DELETE FROM deliveries WHERE id >= $1 AND id < $2 AND state = 'dead'";
const BODIES: &str = "SELECT MIN(id) FROM delivery_bodies WHERE id >= $1";
const ROWS: &str = "SELECT MIN(id) FROM deliveries WHERE id >= $1";

impl Store {
    /// Removes what `r` no longer keeps, as of now.
    pub async fn prune(&self, r: &Retention) -> Result<Pruned, StoreError> {
        self.prune_at(r, now_ms()).await
    }

    /// Removes what `r` no longer keeps, as of `now` (Unix milliseconds).
    pub async fn prune_at(&self, r: &Retention, now: i64) -> Result<Pruned, StoreError> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let cutoff = |d: Duration| now.saturating_sub(ms(d));
        let bodies = r.bodies.min(r.done);
        let mut out = Pruned::default();
        // The newest row is never removed: ids must keep growing for the dispatcher's cursor,
        // and SQLite would hand a removed newest id out again.
        let (Some(oldest), Some(newest)) = (self.min_id().await?, self.max_id().await?) else {
            return Ok(out);
        };
        let bound = |d| self.first_id_received_at(cutoff(d), oldest, newest);
        let body_bound = bound(bodies).await?;
        let row_bound = bound(r.done).await?;
        let dead_bound = bound(r.dead).await?;
        out.bodies += self
            .prune_windows(BODIES_FINISHED, BODIES, body_bound)
            .await?;
        out.bodies += self.prune_windows(BODIES_DEAD, BODIES, dead_bound).await?;
        out.deliveries += self.prune_windows(ROWS_FINISHED, ROWS, row_bound).await?;
        out.deliveries += self.prune_windows(ROWS_DEAD, ROWS, dead_bound).await?;
        if out.deliveries + out.bodies > 0 {
            tracing::info!(
                deliveries = out.deliveries,
                bodies = out.bodies,
                "ledger pruned"
            );
        }
        Ok(out)
    }

    /// Runs one statement below `hi` in windows of ids, each starting at the next id `next`
    /// finds: what earlier prunes emptied is jumped over, not walked again. The rows deleted.
    async fn prune_windows(
        &self,
        sql: &'static str,
        next: &'static str,
        hi: i64,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        let mut at = i64::MIN;
        loop {
            let found: Option<i64> = sqlx::query_scalar(next)
                .bind(at)
                .fetch_one(&self.pool)
                .await?;
            match found {
                Some(id) if id < hi => at = id,
                _ => break,
            }
            let end = at.saturating_add(WINDOW).min(hi);
            total += self.prune_window(sql, at, end).await?;
            at = end;
            // Whatever else waits for the database goes between two windows.
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    async fn prune_window(&self, sql: &'static str, lo: i64, hi: i64) -> Result<u64, StoreError> {
        match &self.db {
            Db::Sqlite { writer } => match writer.call(Write::Prune { sql, lo, hi }).await {
                Ok(Answer::Pruned(n)) => Ok(n),
                Ok(_) => Err(StoreError::WriterGone),
                Err(e) => Err(StoreError::Pruning(e.to_string())),
            },
            Db::Postgres { .. } => Ok(sqlx::query(sql)
                .bind(lo)
                .bind(hi)
                .execute(&self.pool)
                .await?
                .rows_affected()),
        }
    }

    async fn max_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MAX(id) FROM deliveries")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn min_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(id) FROM deliveries")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The first id in `[oldest, newest]` received at or after `at` (`newest` at most), by a
    /// binary search over ids (deliveries are stored in arrival order, so `received_at` grows
    /// with the id): no index on the time, and a few lookups by key however long the ledger.
    async fn first_id_received_at(
        &self,
        at: i64,
        oldest: i64,
        newest: i64,
    ) -> Result<i64, StoreError> {
        let (mut lo, mut hi) = (oldest, newest);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT id, received_at FROM deliveries WHERE id >= $1 ORDER BY id LIMIT 1",
            )
            .bind(mid)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some((id, received)) if received < at => lo = id + 1,
                _ => hi = mid,
            }
        }
        Ok(lo.min(newest))
    }

    /// Bytes the ledger takes on disk (SQLite pages; PostgreSQL's tables and indexes).
    pub async fn size_bytes(&self) -> Result<i64, StoreError> {
        let sql = match &self.db {
            Db::Sqlite { .. } => {
                "SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size())"
            }
            Db::Postgres { .. } => {
                "SELECT CAST(pg_total_relation_size('deliveries') + pg_total_relation_size('delivery_bodies') AS BIGINT)"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_one(&self.pool).await?)
    }
}
