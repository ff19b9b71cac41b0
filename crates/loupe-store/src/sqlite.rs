// foldhash (hashbrown's default): the per-commit maps are keyed by UIDs and audit IDs.
use hashbrown::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_facts::{Fact, FactRecord, PodState};
use loupe_timeline::{NodeRecord, Output, PodBody, PvcRecord, Recovery, Stats};
use rusqlite::{params, Connection, OptionalExtension};

use crate::chunk;
use crate::query::{PodFilter, PodRow, StoredVersion};
use crate::{
    Checkpoint, ClusterStatus, MalformedRow, RecoveryLimits, Result, Retention, RetentionReport,
    Store, StoreError, StoreReader,
};

const SCHEMA_VERSION: i64 = 5;

/// `entries.body`: what the raw event holds of the pod.
const BODY_NONE: i64 = 0;
const BODY_FULL: i64 = 1;
const BODY_PATCH: i64 = 2;
/// Malformed records kept per commit; the rest are counted only.
const MALFORMED_KEPT_PER_COMMIT: usize = 1000;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clusters(
  cluster TEXT PRIMARY KEY, watermark INTEGER NOT NULL, max_seen INTEGER NOT NULL,
  stats TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
  cluster TEXT NOT NULL, source TEXT NOT NULL, position TEXT NOT NULL,
  PRIMARY KEY(cluster, source));
CREATE TABLE IF NOT EXISTS chunks(
  id INTEGER PRIMARY KEY, cluster TEXT NOT NULL, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL,
  events INTEGER NOT NULL, raw_bytes INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_time ON chunks(cluster, max_ts, min_ts);
-- The sorted 64-bit hashes of each chunk's audit IDs, written once per commit. A B-tree
-- keyed by audit ID took a random page write per event: most of the store's I/O.
CREATE TABLE IF NOT EXISTS chunk_ids(chunk INTEGER PRIMARY KEY, ids BLOB NOT NULL);
-- `seq` numbers pods in the order they were first stored, so the pods a commit touches
-- (mostly recent ones) share pages at the end of the table and of `entries_by_pod`.
-- Only columns that never change are indexed: an update rewrites no index.
CREATE TABLE IF NOT EXISTS pods(
  seq INTEGER PRIMARY KEY, cluster TEXT NOT NULL, uid TEXT NOT NULL, namespace TEXT NOT NULL,
  name TEXT NOT NULL, node TEXT, phase TEXT, owner_kind TEXT, owner_name TEXT, created INTEGER,
  deletion_requested INTEGER, gone INTEGER, first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL, state BLOB NOT NULL, UNIQUE(cluster, uid));
CREATE INDEX IF NOT EXISTS pods_by_name ON pods(name, namespace);
-- One row per (pod, audit event), appended in commit order; the unique index keeps
-- replays idempotent and serves timelines.
CREATE TABLE IF NOT EXISTS entries(
  pod INTEGER NOT NULL, ts INTEGER NOT NULL, audit_id TEXT NOT NULL, late INTEGER NOT NULL,
  body INTEGER NOT NULL, n INTEGER NOT NULL, facts TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS entries_by_pod ON entries(pod, ts, audit_id);
CREATE TABLE IF NOT EXISTS nodes(
  cluster TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL, last_seen INTEGER NOT NULL,
  PRIMARY KEY(cluster, name));
CREATE TABLE IF NOT EXISTS pvcs(
  cluster TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL,
  last_seen INTEGER NOT NULL, PRIMARY KEY(cluster, namespace, name));
CREATE TABLE IF NOT EXISTS malformed(
  id INTEGER PRIMARY KEY, cluster TEXT NOT NULL, source TEXT NOT NULL, line INTEGER NOT NULL,
  error TEXT NOT NULL);
"#;

/// The embedded store: one SQLite database (WAL) in the data directory.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    path: PathBuf,
    compressor: zstd::bulk::Compressor<'static>,
    /// The encoded column being written (a pod state's postcard, an entry's facts JSON),
    /// reused: fresh buffers for every one made each commit fault in megabytes of pages
    /// that were just returned.
    json: Vec<u8>,
    /// The row (`seq`) of each pod this store wrote that is not gone yet, by cluster and
    /// UID: a pod's later states are updated by row, without the insert that finds the
    /// conflict on `(cluster, uid)` and builds the whole row once for nothing.
    pod_rows: PodRows,
}

/// Pods whose deletion the audit log never showed would otherwise stay remembered
/// forever; past this many (about 100 bytes each) a cluster's rows are forgotten at once
/// and found again by upsert.
const POD_ROWS_KEPT: usize = 200_000;

struct PodRows {
    by_cluster: HashMap<String, HashMap<String, i64>>,
    limit: usize,
}

impl Default for PodRows {
    fn default() -> Self {
        PodRows {
            by_cluster: HashMap::new(),
            limit: POD_ROWS_KEPT,
        }
    }
}

impl PodRows {
    fn get(&self, cluster: &str, uid: &str) -> Option<i64> {
        self.by_cluster.get(cluster)?.get(uid).copied()
    }

    fn remember(&mut self, cluster: &str, uid: &str, seq: i64) {
        let pods = match self.by_cluster.get_mut(cluster) {
            Some(pods) => pods,
            None => self.by_cluster.entry(cluster.to_string()).or_default(),
        };
        if pods.len() >= self.limit && !pods.contains_key(uid) {
            pods.clear();
        }
        pods.insert(uid.to_string(), seq);
    }

    fn forget(&mut self, cluster: &str, uid: &str) {
        if let Some(pods) = self.by_cluster.get_mut(cluster) {
            pods.remove(uid);
        }
    }
}

/// How long an opener waits for another to finish switching a new store to WAL.
const OPEN_BUSY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `step` again while SQLite answers BUSY without having waited: switching a new
/// database's journal mode to WAL while another connection does the same fails at once
/// (the busy handler is not consulted there), so concurrent openers back off and retry.
fn retry_while_busy(mut step: impl FnMut() -> rusqlite::Result<()>) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < OPEN_BUSY_LIMIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("loupe.db");
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // auto_vacuum must be chosen before the first table exists.
        retry_while_busy(|| {
            conn.execute_batch(
                "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
                 PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY;
                 PRAGMA wal_autocheckpoint=16384;",
            )
        })?;
        // A store that exists is only read here: readers beside a running writer (queries,
        // the span stream) must not take the write lock.
        let exists: bool = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'meta'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !exists {
            // Tables and version in one transaction: another process opening the same new
            // store (a query beside a starting server) sees all of it or none of it.
            // IMMEDIATE: the second opener waits for the first (busy timeout) instead of
            // failing to upgrade a read.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(crate::ledger::LEDGER_SCHEMA)?;
            tx.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )?;
            tx.commit()?;
        }
        let found: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )?;
        if found != SCHEMA_VERSION.to_string() {
            return Err(StoreError::SchemaVersion {
                path: path.display().to_string(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(SqliteStore {
            conn,
            path,
            compressor: chunk::compressor()?,
            json: Vec::new(),
            pod_rows: PodRows::default(),
        })
    }

    /// A reader of committed pod states for `cluster`, for the processor's idle pods.
    pub fn loader(&self, cluster: &str) -> Result<SqliteLoader> {
        Ok(SqliteLoader {
            store: self.reopen()?,
            cluster: cluster.to_string(),
        })
    }

    /// A second handle on the same database, for readers beside the writer.
    pub fn reopen(&self) -> Result<SqliteStore> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        SqliteStore::open(dir)
    }

    /// Bytes the database occupies (pages in use).
    pub fn size_bytes(&self) -> Result<u64> {
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(((pages - free).max(0) * page_size) as u64)
    }

    fn load_chunk(&self, id: i64) -> Result<Vec<u8>> {
        let (data, raw_len): (Vec<u8>, i64) = self.conn.query_row(
            "SELECT data, raw_bytes FROM chunks WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        chunk::decompress(id, &data, raw_len as usize)
    }

    fn delete_chunks(&self, ids: &[i64], report: &mut RetentionReport) -> Result<()> {
        for &id in ids {
            let events: i64 = self.conn.query_row(
                "DELETE FROM chunks WHERE id = ?1 RETURNING events",
                params![id],
                |r| r.get(0),
            )?;
            self.conn
                .execute("DELETE FROM chunk_ids WHERE chunk = ?1", params![id])?;
            report.raw_events += events as u64;
            report.chunks += 1;
        }
        Ok(())
    }

    fn delete_pods_before(
        &self,
        cutoff_by_cluster: &[(String, i64)],
        report: &mut RetentionReport,
    ) -> Result<()> {
        for (cluster, cutoff) in cutoff_by_cluster {
            let seqs: Vec<i64> = {
                let mut st = self
                    .conn
                    .prepare("SELECT seq FROM pods WHERE cluster = ?1 AND last_seen < ?2")?;
                let rows = st.query_map(params![cluster, cutoff], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for seq in seqs {
                self.conn
                    .execute("DELETE FROM entries WHERE pod = ?1", params![seq])?;
                self.conn
                    .execute("DELETE FROM pods WHERE seq = ?1", params![seq])?;
                report.pods += 1;
            }
        }
        Ok(())
    }

    fn pod_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PodRow> {
        Ok(PodRow {
            cluster: r.get(0)?,
            uid: r.get(1)?,
            namespace: r.get(2)?,
            name: r.get(3)?,
            node: r.get(4)?,
            phase: r.get(5)?,
            owner_kind: r.get(6)?,
            owner_name: r.get(7)?,
            created: r.get(8)?,
            deletion_requested: r.get(9)?,
            gone: r.get(10)?,
            first_seen: r.get(11)?,
            last_seen: r.get(12)?,
            facts: r.get::<_, i64>(13)? as u64,
        })
    }
}

const POD_COLUMNS: &str = "p.cluster, p.uid, p.namespace, p.name, p.node, p.phase, p.owner_kind, \
    p.owner_name, p.created, p.deletion_requested, p.gone, p.first_seen, p.last_seen, \
    (SELECT coalesce(sum(e.n), 0) FROM entries e WHERE e.pod = p.seq)";

impl Store for SqliteStore {
    fn commit(&mut self, cluster: &str, out: &Output, checkpoints: &[Checkpoint]) -> Result<()> {
        let data = if out.raw.is_empty() {
            Vec::new()
        } else {
            chunk::encode(out, &mut self.compressor)?
        };
        let raw_bytes = out.raw_packed().len();
        // IMMEDIATE: take the write lock up front (waiting out readers' busy time) instead
        // of upgrading a read transaction, which fails at once if the snapshot is stale.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !out.raw.is_empty() {
            let min_ts = out.raw.iter().map(|e| e.ts).min().unwrap_or(0);
            let max_ts = out.raw.iter().map(|e| e.ts).max().unwrap_or(0);
            tx.execute(
                "INSERT INTO chunks(cluster, min_ts, max_ts, events, raw_bytes, data) VALUES(?1,?2,?3,?4,?5,?6)",
                params![cluster, min_ts, max_ts, out.raw.len() as i64, raw_bytes as i64, data],
            )?;
            let chunk_id = tx.last_insert_rowid();
            let ids = chunk::id_list(out.raw.iter().map(|e| out.raw_audit_id(e)));
            tx.execute(
                "INSERT INTO chunk_ids(chunk, ids) VALUES(?1, ?2)",
                params![chunk_id, ids],
            )?;
        }
        {
            let json = &mut self.json;
            let seqs = upsert_pods(&tx, cluster, &out.pods, json, &mut self.pod_rows)?;
            // One row per (pod, audit event): its facts and whether it holds a body.
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO entries(pod, ts, audit_id, late, body, n, facts) \
                 VALUES(?1,?2,?3,?4,?5,?6,?7)",
            )?;
            for e in &out.entries {
                let pod = match seqs.get(e.uid.as_str()) {
                    Some(&seq) => seq,
                    None => stored_pod_seq(&tx, cluster, &e.uid, e.ts)?,
                };
                st.execute(params![
                    pod,
                    e.ts,
                    e.audit_id,
                    e.late as i64,
                    body_code(e.body),
                    e.facts.len() as i64,
                    json_text(json, &e.facts)?
                ])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO nodes(cluster, name, record, last_seen) VALUES(?1,?2,?3,?4)",
            )?;
            for n in &out.nodes {
                st.execute(params![
                    cluster,
                    n.name,
                    serde_json::to_string(n)?,
                    n.last_ts
                ])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO pvcs(cluster, namespace, name, record, last_seen) VALUES(?1,?2,?3,?4,?5)",
            )?;
            for p in &out.pvcs {
                st.execute(params![
                    cluster,
                    p.namespace,
                    p.name,
                    serde_json::to_string(p)?,
                    p.last_ts
                ])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO malformed(cluster, source, line, error) VALUES(?1,?2,?3,?4)",
            )?;
            for m in out.malformed.iter().take(MALFORMED_KEPT_PER_COMMIT) {
                st.execute(params![cluster, m.source, m.line as i64, m.error])?;
            }
        }
        let (old_stats, old_max): (Option<String>, Option<i64>) = tx
            .query_row(
                "SELECT stats, max_seen FROM clusters WHERE cluster = ?1",
                params![cluster],
                |r| Ok((Some(r.get(0)?), Some(r.get(1)?))),
            )
            .optional()?
            .unwrap_or((None, None));
        let mut stats: Stats = match old_stats {
            Some(s) => serde_json::from_str(&s)?,
            None => Stats::default(),
        };
        stats.add(&out.stats);
        let max_seen = out
            .raw
            .iter()
            .map(|e| e.ts)
            .chain(old_max)
            .max()
            .unwrap_or(out.watermark)
            .max(out.watermark);
        tx.execute(
            "INSERT INTO clusters(cluster, watermark, max_seen, stats) VALUES(?1,?2,?3,?4) \
             ON CONFLICT(cluster) DO UPDATE SET watermark=max(watermark, excluded.watermark), \
             max_seen=max(max_seen, excluded.max_seen), stats=excluded.stats",
            params![
                cluster,
                out.watermark,
                max_seen,
                serde_json::to_string(&stats)?
            ],
        )?;
        for c in checkpoints {
            tx.execute(
                "INSERT OR REPLACE INTO checkpoints(cluster, source, position) VALUES(?1,?2,?3)",
                params![cluster, c.source, c.position],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn recovery(&self, cluster: &str, limits: &RecoveryLimits) -> Result<Recovery> {
        let (lateness_us, dedup_horizon_us) = (limits.lateness_us, limits.dedup_horizon_us);
        let Some((watermark, max_seen)) = self
            .conn
            .query_row(
                "SELECT watermark, max_seen FROM clusters WHERE cluster = ?1",
                params![cluster],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
        else {
            return Ok(Recovery::default_for_new());
        };
        let mut recovery = Recovery {
            watermark,
            max_seen,
            ..Recovery::default()
        };
        // As in the processor: gone pods stay for one lateness window, quiet pods wait in
        // the store until an event names them.
        let keep_gone = watermark.saturating_sub(lateness_us);
        let active = watermark.saturating_sub(limits.idle_us);
        let mut st = self.conn.prepare(
            "SELECT state FROM pods WHERE cluster = ?1 AND \
             ((gone IS NULL AND last_seen >= ?3) OR gone > ?2)",
        )?;
        for state in st.query_map(params![cluster, keep_gone, active], |r| {
            r.get::<_, Vec<u8>>(0)
        })? {
            recovery
                .pods
                .push(postcard::from_bytes::<PodState>(&state?)?);
        }
        let mut st = self.conn.prepare(
            "SELECT uid, namespace, name FROM pods WHERE cluster = ?1 AND gone IS NULL \
             AND last_seen < ?2",
        )?;
        let idle = st.query_map(params![cluster, active], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        recovery.idle = idle.collect::<rusqlite::Result<_>>()?;
        let mut st = self
            .conn
            .prepare("SELECT record FROM nodes WHERE cluster = ?1")?;
        for record in st.query_map(params![cluster], |r| r.get::<_, String>(0))? {
            recovery
                .nodes
                .push(serde_json::from_str::<NodeRecord>(&record?)?);
        }
        let since = max_seen.saturating_sub(dedup_horizon_us).min(watermark);
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM chunks WHERE cluster = ?1 AND max_ts > ?2 ORDER BY id")?;
            let rows = st.query_map(params![cluster, since], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in ids {
            let buf = self.load_chunk(id)?;
            for e in chunk::entries(id, &buf)? {
                if e.ts > since {
                    recovery
                        .recent
                        .push((e.audit_id.to_string(), e.stage.to_string(), e.ts));
                }
                if e.ts > watermark {
                    recovery.pending.push(e.json.to_string());
                }
            }
        }
        Ok(recovery)
    }

    fn checkpoint(&self, cluster: &str, source: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .conn
            .query_row(
                "SELECT position FROM checkpoints WHERE cluster = ?1 AND source = ?2",
                params![cluster, source],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|position| Checkpoint {
                source: source.to_string(),
                position,
            }))
    }

    fn retain(&mut self, retention: Retention) -> Result<RetentionReport> {
        let mut report = RetentionReport {
            bytes_before: self.size_bytes()?,
            ..RetentionReport::default()
        };
        self.conn.execute_batch("BEGIN")?;
        let result = self.retain_in_tx(retention, &mut report);
        match result {
            Ok(()) => self.conn.execute_batch("COMMIT")?,
            Err(e) => {
                self.conn.execute_batch("ROLLBACK")?;
                return Err(e);
            }
        }
        self.conn.execute_batch("PRAGMA incremental_vacuum")?;
        report.bytes_after = self.size_bytes()?;
        Ok(report)
    }
}

impl SqliteStore {
    fn retain_in_tx(&mut self, retention: Retention, report: &mut RetentionReport) -> Result<()> {
        let clusters: Vec<(String, i64)> = {
            let mut st = self
                .conn
                .prepare("SELECT cluster, max_seen FROM clusters")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if let Some(age) = retention.max_age_us {
            let cutoffs: Vec<(String, i64)> = clusters
                .iter()
                .map(|(c, now)| (c.clone(), now.saturating_sub(age)))
                .collect();
            for (cluster, cutoff) in &cutoffs {
                let ids =
                    self.chunk_ids("cluster = ?1 AND max_ts < ?2", params![cluster, cutoff])?;
                self.delete_chunks(&ids, report)?;
            }
            self.delete_pods_before(&cutoffs, report)?;
            for (cluster, cutoff) in &cutoffs {
                self.retain_ledger(cluster, *cutoff)?;
            }
        }
        if let Some(limit) = retention.max_bytes {
            // Drop the oldest tenth of the raw chunks, and the pods older than them, until
            // the data fits.
            while self.size_bytes()? > limit {
                let total: i64 = self
                    .conn
                    .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))?;
                if total == 0 {
                    break;
                }
                let n = (total / 10).max(1);
                let oldest: Vec<(i64, String, i64)> = {
                    let mut st = self.conn.prepare(
                        "SELECT id, cluster, max_ts FROM chunks ORDER BY max_ts, id LIMIT ?1",
                    )?;
                    let rows =
                        st.query_map(params![n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let ids: Vec<i64> = oldest.iter().map(|c| c.0).collect();
                let mut cutoffs: HashMap<String, i64> = HashMap::new();
                for (_, cluster, max_ts) in &oldest {
                    let e = cutoffs.entry(cluster.clone()).or_insert(*max_ts);
                    *e = (*e).max(*max_ts);
                }
                self.delete_chunks(&ids, report)?;
                let cutoffs: Vec<(String, i64)> = cutoffs.into_iter().collect();
                self.delete_pods_before(&cutoffs, report)?;
                self.conn
                    .execute_batch("COMMIT; PRAGMA incremental_vacuum; BEGIN")?;
            }
        }
        Ok(())
    }

    /// `(cluster, record)` rows of a table of JSON records, in cluster then `order` order.
    fn records<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        order: &str,
        cluster: Option<&str>,
    ) -> Result<Vec<(String, T)>> {
        let sql = format!(
            "SELECT cluster, record FROM {table} WHERE (?1 IS NULL OR cluster = ?1) ORDER BY cluster, {order}"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(params![cluster], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (c, record) = row?;
            out.push((c, serde_json::from_str(&record)?));
        }
        Ok(out)
    }

    /// The analysed (final-stage) raw event `audit_id` of `cluster`, found among the chunks
    /// whose time range holds `ts`; `cache` keeps chunks already decompressed.
    fn find_raw(
        &self,
        cluster: &str,
        audit_id: &str,
        ts: i64,
        cache: &mut HashMap<i64, Vec<u8>>,
    ) -> Result<Option<String>> {
        let hash = chunk::id_hash(audit_id);
        let candidates: Vec<i64> = {
            let mut st = self.conn.prepare_cached(
                "SELECT k.id, i.ids FROM chunks k JOIN chunk_ids i ON i.chunk = k.id \
                 WHERE k.cluster = ?1 AND k.max_ts >= ?2 AND k.min_ts <= ?2 ORDER BY k.id",
            )?;
            let mut rows = st.query(params![cluster, ts])?;
            let mut hits = Vec::new();
            while let Some(r) = rows.next()? {
                if chunk::id_list_contains(
                    r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?,
                    hash,
                ) {
                    hits.push(r.get(0)?);
                }
            }
            hits
        };
        for id in candidates {
            if let hashbrown::hash_map::Entry::Vacant(slot) = cache.entry(id) {
                slot.insert(self.load_chunk(id)?);
            }
            if let Some(e) = chunk::entries(id, &cache[&id])?
                .into_iter()
                .find(|e| e.audit_id == audit_id && matches!(e.stage, "ResponseComplete" | "Panic"))
            {
                return Ok(Some(e.json.to_string()));
            }
        }
        Ok(None)
    }

    fn chunk_ids(&self, condition: &str, params: impl rusqlite::Params) -> Result<Vec<i64>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT id FROM chunks WHERE {condition}"))?;
        let rows = st.query_map(params, |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Loads pod states that left the processor's memory, on its own connection.
pub struct SqliteLoader {
    store: SqliteStore,
    cluster: String,
}

impl SqliteLoader {
    fn lookup<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Option<T> {
        match self
            .store
            .conn
            .query_row(sql, args, |r| r.get(0))
            .optional()
        {
            Ok(v) => v,
            Err(e) => {
                // A failed lookup is a missed resolution (counted as unlinked); say why once.
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| eprintln!("warning: pod state lookup failed: {e}"));
                None
            }
        }
    }
}

impl loupe_timeline::StateLoader for SqliteLoader {
    fn load(&mut self, uid: &str) -> Option<PodState> {
        let state: Vec<u8> = self.lookup(
            "SELECT state FROM pods WHERE cluster = ?1 AND uid = ?2 AND gone IS NULL",
            params![self.cluster, uid],
        )?;
        postcard::from_bytes(&state).ok()
    }

    fn find(&mut self, namespace: &str, name: &str) -> Option<String> {
        self.lookup(
            "SELECT uid FROM pods WHERE name = ?3 AND namespace = ?2 AND cluster = ?1 \
             AND gone IS NULL ORDER BY first_seen DESC LIMIT 1",
            params![self.cluster, namespace, name],
        )
    }
}

/// `entries.body` of an entry.
fn body_code(body: PodBody) -> i64 {
    match body {
        PodBody::None => BODY_NONE,
        PodBody::Full => BODY_FULL,
        PodBody::Patch => BODY_PATCH,
    }
}

/// Writes the states of the pods an output touched; returns each pod's `seq`.
fn upsert_pods<'a>(
    tx: &rusqlite::Transaction<'_>,
    cluster: &str,
    pods: &'a [Arc<PodState>],
    json: &mut Vec<u8>,
    rows: &mut PodRows,
) -> Result<HashMap<&'a str, i64>> {
    let mut seqs = HashMap::with_capacity(pods.len());
    for p in pods {
        let known = match rows.get(cluster, &p.uid) {
            Some(seq) => update_pod(tx, cluster, seq, p, json)?,
            None => None,
        };
        let seq = match known {
            Some(seq) => seq,
            None => upsert_pod(tx, cluster, p, json)?,
        };
        // A gone pod's state rarely changes again; the few that do take the upsert.
        if p.gone.is_some() {
            rows.forget(cluster, &p.uid);
        } else {
            rows.remember(cluster, &p.uid, seq);
        }
        seqs.insert(p.uid.as_str(), seq);
    }
    Ok(seqs)
}

/// Updates the pod stored in row `seq`; `None` if that row no longer holds this pod
/// (retention deleted it, and SQLite may give a deleted last row's number to a new pod).
fn update_pod(
    tx: &rusqlite::Transaction<'_>,
    cluster: &str,
    seq: i64,
    p: &PodState,
    json: &mut Vec<u8>,
) -> Result<Option<i64>> {
    let mut update = tx.prepare_cached(
        "UPDATE pods SET node=?5, phase=?6, owner_kind=?7, owner_name=?8, created=?9, \
         deletion_requested=?10, gone=?11, first_seen=min(first_seen, ?12), last_seen=?13, \
         state=?14 WHERE seq = ?15 AND cluster = ?1 AND uid = ?2 \
         RETURNING namespace = ?3 AND name = ?4",
    )?;
    let state = state_bytes(json, p)?;
    let same_name: Option<bool> = with_pod_columns(cluster, p, state, seq, |columns| {
        update.query_row(columns, |r| r.get(0)).optional()
    })?;
    match same_name {
        None => Ok(None),
        Some(same_name) => {
            if !same_name {
                rename_pod(tx, seq, p)?;
            }
            Ok(Some(seq))
        }
    }
}

/// Calls `f` with a pod row's columns in the order both pod statements number them:
/// cluster, uid, namespace, name, node, phase, owner kind and name, created, deletion
/// requested, gone, first and last seen, state, then `seq`.
fn with_pod_columns<T>(
    cluster: &str,
    p: &PodState,
    state: &[u8],
    seq: i64,
    f: impl FnOnce(&[&dyn rusqlite::ToSql]) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let owner_kind = p.owner.as_ref().map(|o| &o.kind);
    let owner_name = p.owner.as_ref().map(|o| &o.name);
    f(params![
        cluster,
        p.uid,
        p.namespace,
        p.name,
        p.node,
        p.phase,
        owner_kind,
        owner_name,
        p.created,
        p.deletion_requested,
        p.gone,
        p.first_ts,
        p.last_ts,
        state,
        seq
    ])
}

fn rename_pod(tx: &rusqlite::Transaction<'_>, seq: i64, p: &PodState) -> Result<()> {
    tx.prepare_cached("UPDATE pods SET namespace = ?2, name = ?3 WHERE seq = ?1")?
        .execute(params![seq, p.namespace, p.name])?;
    Ok(())
}

/// A pod state in the store's binary form (postcard), in `buf` (cleared first). Only
/// Loupe reads it back (recovery, reloads); as JSON it was 4.6 % of a replay's CPU and
/// twice the bytes.
fn state_bytes<'b>(buf: &'b mut Vec<u8>, state: &PodState) -> Result<&'b [u8]> {
    buf.clear();
    // `to_extend` pushes bytes; `to_io` made a `write_all` (a memcpy call) of each field.
    let mut out = postcard::to_extend(state, std::mem::take(buf))?;
    std::mem::swap(buf, &mut out);
    Ok(buf)
}

/// `value` as JSON text in `buf` (cleared first).
fn json_text<'b>(buf: &'b mut Vec<u8>, value: &impl serde::Serialize) -> Result<&'b str> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value)?;
    // serde_json writes UTF-8; the check (SIMD) only keeps this free of `unsafe`.
    simdutf8::basic::from_utf8(buf)
        .map_err(|_| serde::ser::Error::custom("serializer wrote invalid UTF-8"))
        .map_err(|e: serde_json::Error| e.into())
}

fn upsert_pod(
    tx: &rusqlite::Transaction<'_>,
    cluster: &str,
    p: &PodState,
    json: &mut Vec<u8>,
) -> Result<i64> {
    // Name and namespace are set once (they are indexed); a later change goes through a
    // separate, rare update.
    let mut upsert = tx.prepare_cached(
        "INSERT INTO pods(cluster, uid, namespace, name, node, phase, owner_kind, owner_name, \
         created, deletion_requested, gone, first_seen, last_seen, state) \
         VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14) \
         ON CONFLICT(cluster, uid) DO UPDATE SET node=excluded.node, phase=excluded.phase, \
         owner_kind=excluded.owner_kind, owner_name=excluded.owner_name, created=excluded.created, \
         deletion_requested=excluded.deletion_requested, gone=excluded.gone, \
         first_seen=min(first_seen, excluded.first_seen), last_seen=excluded.last_seen, \
         state=excluded.state RETURNING seq, namespace = ?3 AND name = ?4",
    )?;
    let state = state_bytes(json, p)?;
    // The upsert's statement has no `seq` parameter: the columns but the last.
    let (seq, same_name): (i64, bool) = with_pod_columns(cluster, p, state, 0, |columns| {
        upsert.query_row(&columns[..14], |r| Ok((r.get(0)?, r.get(1)?)))
    })?;
    // RETURNING sees the stored name (not updated above): only a rename costs a query.
    if !same_name {
        rename_pod(tx, seq, p)?;
    }
    Ok(seq)
}

/// The `seq` of a pod not in this output (a late event for a pod already closed); a pod
/// never stored gets a bare row, so its facts are kept.
fn stored_pod_seq(
    tx: &rusqlite::Transaction<'_>,
    cluster: &str,
    uid: &str,
    ts: i64,
) -> Result<i64> {
    if let Some(seq) = tx
        .prepare_cached("SELECT seq FROM pods WHERE cluster = ?1 AND uid = ?2")?
        .query_row(params![cluster, uid], |r| r.get(0))
        .optional()?
    {
        return Ok(seq);
    }
    let mut state = PodState::new(uid, "", "");
    state.first_ts = ts;
    state.last_ts = ts;
    upsert_pod(tx, cluster, &state, &mut Vec::new())
}

impl StoreReader for SqliteStore {
    fn clusters(&self) -> Result<Vec<ClusterStatus>> {
        let mut st = self.conn.prepare(
            "SELECT c.cluster, c.watermark, c.max_seen, c.stats, \
             (SELECT count(*) FROM pods p WHERE p.cluster = c.cluster), \
             (SELECT coalesce(sum(events), 0) FROM chunks k WHERE k.cluster = c.cluster) \
             FROM clusters c ORDER BY c.cluster",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (cluster, watermark, max_seen, stats, pods, raw) = row?;
            out.push(ClusterStatus {
                cluster,
                watermark,
                max_seen,
                stats: serde_json::from_str(&stats)?,
                pods: pods as u64,
                raw_events: raw as u64,
            });
        }
        Ok(out)
    }

    fn pods(&self, f: &PodFilter) -> Result<Vec<PodRow>> {
        let mut sql = format!("SELECT {POD_COLUMNS} FROM pods p WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(c) = &f.cluster {
            add("p.cluster =", c.clone().into());
        }
        if let Some(ns) = &f.namespace {
            add("p.namespace =", ns.clone().into());
        }
        if let Some(n) = &f.node {
            add("p.node =", n.clone().into());
        }
        if let Some(ph) = &f.phase {
            add("p.phase =", ph.clone().into());
        }
        if let Some(s) = f.since {
            add("p.last_seen >=", s.into());
        }
        if let Some(u) = f.until {
            add("p.first_seen <=", u.into());
        }
        sql.push_str(" ORDER BY p.first_seen, p.uid");
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), Self::pod_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn find_pods(&self, cluster: Option<&str>, query: &str) -> Result<Vec<PodRow>> {
        let (ns, name) = match query.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, query),
        };
        let sql = format!(
            "SELECT {POD_COLUMNS} FROM pods p WHERE (?1 IS NULL OR p.cluster = ?1) AND \
             (p.uid = ?4 OR (p.name = ?3 AND (?2 IS NULL OR p.namespace = ?2))) \
             ORDER BY p.first_seen DESC, p.uid"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(params![cluster, ns, name, query], Self::pod_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn timeline(&self, cluster: &str, uid: &str) -> Result<Vec<FactRecord>> {
        let mut st = self.conn.prepare(
            "SELECT e.ts, e.audit_id, e.late, e.facts FROM entries e JOIN pods p ON e.pod = p.seq \
             WHERE p.cluster = ?1 AND p.uid = ?2 AND e.n > 0 ORDER BY e.ts, e.audit_id",
        )?;
        let rows = st.query_map(params![cluster, uid], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (ts, audit_id, late, facts) = row?;
            for (seq, fact) in serde_json::from_str::<Vec<Fact>>(&facts)?
                .into_iter()
                .enumerate()
            {
                out.push(FactRecord {
                    ts,
                    audit_id: audit_id.clone(),
                    seq: seq as u32,
                    late: late != 0,
                    fact,
                });
            }
        }
        Ok(out)
    }

    fn raw(&self, audit_id: &str) -> Result<Vec<(String, String, String)>> {
        let hash = chunk::id_hash(audit_id);
        let candidates: Vec<(i64, String)> = {
            let mut st = self.conn.prepare(
                "SELECT i.chunk, k.cluster, i.ids FROM chunk_ids i JOIN chunks k ON k.id = i.chunk \
                 ORDER BY k.cluster, i.chunk",
            )?;
            let mut rows = st.query([])?;
            let mut hits = Vec::new();
            while let Some(r) = rows.next()? {
                if chunk::id_list_contains(
                    r.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?,
                    hash,
                ) {
                    hits.push((r.get(0)?, r.get(1)?));
                }
            }
            hits
        };
        // The first copy of each (cluster, stage) wins: a batch resent after a crash may
        // have been stored twice.
        let mut out: Vec<(String, String, String)> = Vec::new();
        for (chunk_id, cluster) in candidates {
            let buf = self.load_chunk(chunk_id)?;
            for e in chunk::entries(chunk_id, &buf)? {
                if e.audit_id == audit_id
                    && !out.iter().any(|(c, s, _)| *c == cluster && s == e.stage)
                {
                    out.push((cluster.clone(), e.stage.to_string(), e.json.to_string()));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(out)
    }

    fn versions(&self, cluster: &str, uid: &str) -> Result<Vec<StoredVersion>> {
        let refs: Vec<(i64, String, bool)> = {
            let mut st = self.conn.prepare(
                "SELECT e.ts, e.audit_id, e.body = ?3 FROM entries e JOIN pods p ON e.pod = p.seq \
                 WHERE p.cluster = ?1 AND p.uid = ?2 AND e.body > 0 ORDER BY e.ts, e.audit_id",
            )?;
            let rows = st.query_map(params![cluster, uid, BODY_FULL], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut chunks: HashMap<i64, Vec<u8>> = HashMap::new();
        let mut out = Vec::new();
        for (ts, audit_id, full) in refs {
            let Some(json) = self.find_raw(cluster, &audit_id, ts, &mut chunks)? else {
                continue;
            };
            let Ok(event) = loupe_audit::decode(&json) else {
                continue;
            };
            let body = if full {
                event.response_object.or(event.request_object)
            } else {
                event.request_object
            };
            if let Some(body) = body {
                out.push(StoredVersion {
                    ts,
                    audit_id,
                    full,
                    verb: event.verb.to_string(),
                    user: event.acting_user().to_string(),
                    body: body.get().to_string(),
                });
            }
        }
        Ok(out)
    }

    fn nodes(&self, cluster: Option<&str>) -> Result<Vec<(String, NodeRecord)>> {
        self.records("nodes", "name", cluster)
    }

    fn pvcs(&self, cluster: Option<&str>) -> Result<Vec<(String, PvcRecord)>> {
        self.records("pvcs", "namespace, name", cluster)
    }

    fn malformed(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<MalformedRow>> {
        let mut st = self.conn.prepare(
            "SELECT cluster, source, line, error FROM malformed WHERE (?1 IS NULL OR cluster = ?1) \
             ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![cluster, limit as i64], |r| {
            Ok(MalformedRow {
                cluster: r.get(0)?,
                source: r.get(1)?,
                line: r.get::<_, i64>(2)? as u64,
                error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::PodRows;

    #[test]
    fn remembered_pod_rows_stay_bounded_and_apart_by_cluster() {
        let mut rows = PodRows {
            limit: 3,
            ..PodRows::default()
        };
        for (i, uid) in ["a", "b", "c"].iter().enumerate() {
            rows.remember("prod", uid, i as i64);
        }
        rows.remember("dev", "a", 9);
        assert_eq!(rows.get("prod", "a"), Some(0));
        assert_eq!(rows.get("dev", "a"), Some(9));
        // Updating a remembered pod never clears; a fourth one does.
        rows.remember("prod", "c", 7);
        assert_eq!(rows.get("prod", "b"), Some(1));
        rows.remember("prod", "d", 3);
        assert_eq!(rows.get("prod", "a"), None);
        assert_eq!(rows.get("prod", "d"), Some(3));
        assert_eq!(rows.get("dev", "a"), Some(9));
        rows.forget("prod", "d");
        assert_eq!(rows.get("prod", "d"), None);
    }
}
