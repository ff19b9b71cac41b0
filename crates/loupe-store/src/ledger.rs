//! The SLO ledger: verdicts once reached (written once, never revised), the deliveries
//! still pending with when they fall due, and how far each cluster's tracker got. It is
//! what lets `loupe serve` restart mid-delivery and count every verdict exactly once.
//!
//! Records are opaque JSON to the store: the tracker owns their shape.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::sqlite::SqliteStore;
use crate::Result;

pub(crate) const LEDGER_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS slo_verdicts(
  cluster TEXT NOT NULL, uid TEXT NOT NULL, action TEXT NOT NULL, start INTEGER NOT NULL,
  decided INTEGER NOT NULL, outcome TEXT NOT NULL, record TEXT NOT NULL,
  PRIMARY KEY(cluster, uid, action, start));
CREATE INDEX IF NOT EXISTS slo_verdicts_by_time ON slo_verdicts(cluster, decided);
CREATE TABLE IF NOT EXISTS slo_pending(
  cluster TEXT NOT NULL, uid TEXT NOT NULL, due INTEGER NOT NULL, PRIMARY KEY(cluster, uid));
CREATE TABLE IF NOT EXISTS slo_cursor(cluster TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
"#;

/// One final verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerVerdict {
    pub cluster: String,
    pub uid: String,
    pub action: String,
    pub start: i64,
    pub decided: i64,
    pub outcome: String,
    pub record: String,
}

/// What one tracker round learned about a cluster.
#[derive(Debug, Clone, Default)]
pub struct LedgerRound {
    pub verdicts: Vec<LedgerVerdict>,
    /// Pods with a delivery not decided yet, and the audit time it falls due.
    pub pending: Vec<(String, i64)>,
    /// Pods with nothing pending any more.
    pub settled: Vec<String>,
    /// The audit time up to which pods were looked at.
    pub cursor: i64,
}

impl SqliteStore {
    fn has_ledger(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'slo_cursor'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?)
    }

    /// Records a round in one transaction and returns, per verdict, whether it was new
    /// (a verdict already recorded is kept as it was).
    pub fn record_round(&mut self, cluster: &str, round: &LedgerRound) -> Result<Vec<bool>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(LEDGER_SCHEMA)?;
        let mut fresh = Vec::with_capacity(round.verdicts.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO slo_verdicts(cluster, uid, action, start, decided, outcome, record) \
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for v in &round.verdicts {
                let n = insert.execute(params![
                    v.cluster, v.uid, v.action, v.start, v.decided, v.outcome, v.record
                ])?;
                fresh.push(n > 0);
            }
            let mut pend = tx.prepare_cached(
                "INSERT INTO slo_pending(cluster, uid, due) VALUES(?1, ?2, ?3) \
                 ON CONFLICT(cluster, uid) DO UPDATE SET due = excluded.due",
            )?;
            for (uid, due) in &round.pending {
                pend.execute(params![cluster, uid, due])?;
            }
            let mut settle =
                tx.prepare_cached("DELETE FROM slo_pending WHERE cluster = ?1 AND uid = ?2")?;
            for uid in &round.settled {
                settle.execute(params![cluster, uid])?;
            }
        }
        tx.execute(
            "INSERT INTO slo_cursor(cluster, cursor) VALUES(?1, ?2) \
             ON CONFLICT(cluster) DO UPDATE SET cursor = excluded.cursor",
            params![cluster, round.cursor],
        )?;
        tx.commit()?;
        Ok(fresh)
    }

    /// Where the cluster's tracker stopped.
    pub fn ledger_cursor(&self, cluster: &str) -> Result<Option<i64>> {
        if !self.has_ledger()? {
            return Ok(None);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM slo_cursor WHERE cluster = ?1",
                params![cluster],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Pending pods of `cluster` due at or before `until`.
    pub fn ledger_due(&self, cluster: &str, until: i64) -> Result<Vec<String>> {
        if !self.has_ledger()? {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare("SELECT uid FROM slo_pending WHERE cluster = ?1 AND due <= ?2 ORDER BY uid")?;
        let rows = st.query_map(params![cluster, until], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many deliveries are pending, per cluster.
    pub fn ledger_pending(&self) -> Result<Vec<(String, u64)>> {
        if !self.has_ledger()? {
            return Ok(Vec::new());
        }
        let mut st = self.conn.prepare(
            "SELECT cluster, count(*) FROM slo_pending GROUP BY cluster ORDER BY cluster",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every recorded verdict decided at or after `since`, oldest first.
    pub fn ledger_verdicts(&self, since: i64) -> Result<Vec<LedgerVerdict>> {
        if !self.has_ledger()? {
            return Ok(Vec::new());
        }
        let mut st = self.conn.prepare(
            "SELECT cluster, uid, action, start, decided, outcome, record FROM slo_verdicts \
             WHERE decided >= ?1 ORDER BY decided, cluster, uid, action, start",
        )?;
        let rows = st.query_map(params![since], |r| {
            Ok(LedgerVerdict {
                cluster: r.get(0)?,
                uid: r.get(1)?,
                action: r.get(2)?,
                start: r.get(3)?,
                decided: r.get(4)?,
                outcome: r.get(5)?,
                record: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Drops verdicts decided before `cutoff` (retention), per cluster.
    pub(crate) fn retain_ledger(&self, cluster: &str, cutoff: i64) -> Result<u64> {
        if !self.has_ledger()? {
            return Ok(0);
        }
        Ok(self.conn.execute(
            "DELETE FROM slo_verdicts WHERE cluster = ?1 AND decided < ?2",
            params![cluster, cutoff],
        )? as u64)
    }
}
