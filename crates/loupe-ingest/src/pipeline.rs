use std::collections::BTreeMap;
use std::path::PathBuf;

use loupe_store::{Checkpoint, RecoveryLimits, Retention, SqliteStore, Store};
use loupe_timeline::{Config, Malformed, Processor, Stats};

use crate::files::{self, Item};

/// How the pipeline orders, deduplicates and commits.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub lateness_us: i64,
    pub dedup_horizon_us: i64,
    /// Pods quiet for this long (audit time) leave memory for the store.
    pub idle_us: i64,
    /// Commit once this many analysed events are waiting to be written.
    pub commit_every: usize,
    pub retention: Retention,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let defaults = Config::new("");
        PipelineConfig {
            lateness_us: defaults.lateness_us,
            dedup_horizon_us: defaults.dedup_horizon_us,
            idle_us: defaults.idle_us,
            commit_every: 8192,
            retention: Retention::default(),
        }
    }
}

/// One input record and where it came from.
#[derive(Debug, Clone)]
pub struct Record {
    pub json: String,
    pub line: u64,
}

/// The single writer: processors per cluster, and the store they commit to.
pub struct Pipeline {
    store: SqliteStore,
    config: PipelineConfig,
    processors: BTreeMap<String, Processor>,
    checkpoints: BTreeMap<String, Vec<Checkpoint>>,
    uncommitted: usize,
    totals: BTreeMap<String, Stats>,
    /// The first malformed records of this run, for the report.
    malformed: Vec<(String, Malformed)>,
}

/// Malformed records kept in memory for the run's report.
const MALFORMED_REPORTED: usize = 100;

impl Pipeline {
    pub fn new(store: SqliteStore, config: PipelineConfig) -> Pipeline {
        Pipeline {
            store,
            config,
            processors: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            uncommitted: 0,
            totals: BTreeMap::new(),
            malformed: Vec::new(),
        }
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn processor(&mut self, cluster: &str) -> loupe_store::Result<&mut Processor> {
        if !self.processors.contains_key(cluster) {
            let mut config = Config::new(cluster);
            config.lateness_us = self.config.lateness_us;
            config.dedup_horizon_us = self.config.dedup_horizon_us;
            config.idle_us = self.config.idle_us;
            let recovery = self.store.recovery(cluster, &RecoveryLimits::of(&config))?;
            let loader = Box::new(self.store.loader(cluster)?);
            self.processors.insert(
                cluster.to_string(),
                Processor::recover(config, recovery).with_loader(loader),
            );
        }
        Ok(self.processors.get_mut(cluster).expect("inserted above"))
    }

    pub fn push(
        &mut self,
        cluster: &str,
        json: &str,
        source: &str,
        line: u64,
    ) -> loupe_store::Result<()> {
        self.processor(cluster)?.push(json, source, line);
        self.uncommitted += 1;
        Ok(())
    }

    pub fn push_item(
        &mut self,
        cluster: &str,
        item: &Item<'_>,
        source: &str,
    ) -> loupe_store::Result<()> {
        match item {
            Item::Record { line, json } => self.push(cluster, json, source, *line),
            Item::Error { line, error } => {
                self.processor(cluster)?
                    .report_malformed(source, *line, error.clone());
                Ok(())
            }
            Item::Skipped { .. } => {
                self.processor(cluster)?.count_skipped();
                Ok(())
            }
        }
    }

    /// Records where a source stands; written with the next commit.
    pub fn checkpoint(&mut self, cluster: &str, checkpoint: Checkpoint) {
        let list = self.checkpoints.entry(cluster.to_string()).or_default();
        list.retain(|c| c.source != checkpoint.source);
        list.push(checkpoint);
    }

    pub fn should_commit(&self) -> bool {
        self.uncommitted >= self.config.commit_every
    }

    /// Writes everything produced so far, one transaction per cluster, and returns the
    /// counters of what each cluster's commit held.
    pub fn commit(&mut self) -> loupe_store::Result<Vec<(String, Stats)>> {
        let mut committed = Vec::new();
        let clusters: Vec<String> = self.processors.keys().cloned().collect();
        for cluster in clusters {
            let out = self
                .processors
                .get_mut(&cluster)
                .expect("listed above")
                .take_output();
            let checkpoints = self.checkpoints.remove(&cluster).unwrap_or_default();
            if out.is_empty() && checkpoints.is_empty() && out.stats == Stats::default() {
                continue;
            }
            if let Err(e) = self.store.commit(&cluster, &out, &checkpoints) {
                // The processors are ahead of the store now: forget them, so the next
                // record recovers from what is committed and a resent batch is applied.
                self.processors.clear();
                self.checkpoints.clear();
                self.uncommitted = 0;
                return Err(e);
            }
            self.totals
                .entry(cluster.clone())
                .or_default()
                .add(&out.stats);
            committed.push((cluster.clone(), out.stats.clone()));
            for m in &out.malformed {
                if self.malformed.len() < MALFORMED_REPORTED {
                    self.malformed.push((cluster.clone(), m.clone()));
                }
            }
            if let Some(p) = self.processors.get_mut(&cluster) {
                p.recycle(out);
            }
        }
        self.uncommitted = 0;
        Ok(committed)
    }

    /// Applies everything still waiting for the watermark, then commits.
    pub fn flush(&mut self) -> loupe_store::Result<Vec<(String, Stats)>> {
        for p in self.processors.values_mut() {
            p.flush();
        }
        self.commit()
    }

    pub fn retain(&mut self) -> loupe_store::Result<loupe_store::RetentionReport> {
        let retention = self.config.retention;
        self.store.retain(retention)
    }

    pub fn totals(&self) -> &BTreeMap<String, Stats> {
        &self.totals
    }

    pub fn malformed(&self) -> &[(String, Malformed)] {
        &self.malformed
    }

    /// Malformed records pushed for `cluster` and not yet committed.
    pub fn uncommitted_malformed(&self, cluster: &str) -> u64 {
        self.processors
            .get(cluster)
            .map_or(0, |p| p.stats().malformed)
    }

    pub fn in_flight_pods(&self) -> usize {
        self.processors
            .values()
            .map(Processor::in_flight_pods)
            .sum()
    }

    /// Replays files and directories into `cluster`, oldest events first.
    pub fn replay(&mut self, cluster: &str, paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
        let inputs = files::list_inputs(paths)?;
        for path in &inputs {
            let source = path.display().to_string();
            if is_yaml(path) {
                self.replay_yaml(cluster, path, &source)?;
                continue;
            }
            let mut reader = match files::open(path) {
                Ok(r) => r,
                Err(e) => {
                    let item = Item::Error {
                        line: 0,
                        error: format!("cannot open: {e}"),
                    };
                    self.push_item(cluster, &item, &source)?;
                    continue;
                }
            };
            let mut failure = None;
            files::read_records(&mut *reader, |item| {
                if failure.is_some() {
                    return;
                }
                if let Err(e) = self.push_item(cluster, &item, &source) {
                    failure = Some(e);
                    return;
                }
                if self.should_commit() {
                    if let Err(e) = self.commit() {
                        failure = Some(e);
                    }
                }
            });
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        self.flush()?;
        Ok(inputs)
    }

    fn replay_yaml(
        &mut self,
        cluster: &str,
        path: &std::path::Path,
        source: &str,
    ) -> anyhow::Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let item = Item::Error {
                    line: 0,
                    error: format!("cannot read: {e}"),
                };
                return Ok(self.push_item(cluster, &item, source)?);
            }
        };
        for (i, doc) in crate::formats::yaml_documents(&text)
            .into_iter()
            .enumerate()
        {
            let line = i as u64 + 1;
            let item = match doc {
                Ok(json) => Item::Record {
                    line,
                    json: json.into(),
                },
                Err(error) => Item::Error {
                    line,
                    error: format!("document {line}: {error}"),
                },
            };
            self.push_item(cluster, &item, source)?;
        }
        Ok(())
    }
}

fn is_yaml(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}
