//! The SLO tracker of `loupe serve`: every few seconds it judges the pods that changed
//! (and the pending ones that fell due) at each cluster's watermark, writes the verdicts
//! reached to the store's ledger once, and counts them on `/metrics`. On start it counts
//! the ledger's verdicts again, so counters carry on across restarts instead of
//! dropping to zero, and pending deliveries are picked up where they were.
//!
//! It reads the store through its own connection and writes only the ledger, in one
//! short transaction per round: ingestion never waits on a judgement.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use loupe_diagnose::RuleBook;
use loupe_slo::{judge, Judged, Outcome, Slo};
use loupe_store::{LedgerRound, LedgerVerdict, PodFilter, SqliteStore, StoreReader};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::slo::judged;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SloLabels {
    cluster: String,
    action: String,
    class: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    cluster: String,
    action: String,
    code: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeLabels {
    cluster: String,
    action: String,
    class: String,
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    cluster: String,
    action: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

fn seconds_buckets() -> Histogram {
    // 50 ms … ~55 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 17))
}

/// The SLO series. Label values are bounded: actions, classes and codes come from the
/// config and rule files, namespaces are capped (the rest are `_other`), no pod or IP.
#[derive(Clone)]
pub struct SloMetrics {
    good: Family<SloLabels, Counter>,
    bad: Family<SloLabels, Counter>,
    judged: Family<SloLabels, Counter>,
    excluded: Family<SloLabels, Counter>,
    results: Family<ResultLabels, Counter>,
    platform: Family<TimeLabels, Histogram, fn() -> Histogram>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    pending: Family<ClusterLabel, Gauge>,
    lag: Family<ClusterLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    store_bytes: Gauge,
    round_seconds: Histogram,
    namespaces: Arc<Mutex<BTreeSet<String>>>,
    max_namespaces: usize,
}

impl SloMetrics {
    pub fn register(registry: &mut Registry, max_namespaces: usize) -> SloMetrics {
        let m = SloMetrics {
            good: Family::default(),
            bad: Family::default(),
            judged: Family::default(),
            excluded: Family::default(),
            results: Family::default(),
            platform: Family::new_with_constructor(seconds_buckets),
            stages: Family::new_with_constructor(seconds_buckets),
            pending: Family::default(),
            lag: Family::default(),
            store_bytes: Gauge::default(),
            round_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            namespaces: Arc::default(),
            max_namespaces,
        };
        registry.register(
            "loupe_slo_good",
            "Deliveries judged GOOD (finished within their deadline), by class and namespace",
            m.good.clone(),
        );
        registry.register(
            "loupe_slo_bad",
            "Deliveries judged BAD (over their deadline, or failed on the platform's side)",
            m.bad.clone(),
        );
        registry.register(
            "loupe_slo_judged",
            "Deliveries judged GOOD or BAD (the SLO's denominator), by class and namespace",
            m.judged.clone(),
        );
        registry.register(
            "loupe_slo_excluded",
            "Deliveries EXCLUDED from the SLO (user, capacity or nobody's fault; best effort)",
            m.excluded.clone(),
        );
        registry.register(
            "loupe_delivery_results",
            "Verdicts by diagnosis code and outcome",
            m.results.clone(),
        );
        registry.register(
            "loupe_delivery_platform_seconds",
            "Platform time of judged deliveries (the SLO's latency)",
            m.platform.clone(),
        );
        registry.register(
            "loupe_delivery_stage_seconds",
            "Duration of each finished stage of judged deliveries",
            m.stages.clone(),
        );
        registry.register(
            "loupe_slo_pending",
            "Deliveries not decided yet",
            m.pending.clone(),
        );
        registry.register(
            "loupe_audit_watermark_lag_seconds",
            "Newest audit time seen minus the watermark deliveries are judged at",
            m.lag.clone(),
        );
        registry.register(
            "loupe_store_size_bytes",
            "Size of the embedded store",
            m.store_bytes.clone(),
        );
        registry.register(
            "loupe_slo_tracker_round_seconds",
            "Time one tracker round took (judging and recording)",
            m.round_seconds.clone(),
        );
        m
    }

    fn namespace(&self, ns: &str) -> String {
        let mut seen = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(ns) {
            return ns.to_string();
        }
        if seen.len() < self.max_namespaces {
            seen.insert(ns.to_string());
            return ns.to_string();
        }
        "_other".into()
    }

    fn count(&self, t: &Tracked) {
        let v = &t.judged.verdict;
        let action = v.action.as_str().to_string();
        let labels = SloLabels {
            cluster: t.judged.cluster.clone(),
            action: action.clone(),
            class: v.class.clone(),
            namespace: self.namespace(&t.judged.namespace),
        };
        // Every series of a label set exists from its first verdict on (at 0), so ratios
        // are defined and rate() sees the first increase.
        let (good, bad, judged, excluded) = (
            self.good.get_or_create(&labels),
            self.bad.get_or_create(&labels),
            self.judged.get_or_create(&labels),
            self.excluded.get_or_create(&labels),
        );
        match v.outcome {
            Outcome::Good => {
                good.inc();
                judged.inc();
            }
            Outcome::Bad => {
                bad.inc();
                judged.inc();
            }
            Outcome::Excluded => {
                excluded.inc();
            }
            Outcome::Pending => return,
        }
        drop((good, bad, judged, excluded));
        self.results
            .get_or_create(&ResultLabels {
                cluster: t.judged.cluster.clone(),
                action: action.clone(),
                code: v.reason.clone(),
                outcome: v.outcome.as_str().to_ascii_lowercase(),
            })
            .inc();
        if matches!(v.outcome, Outcome::Good | Outcome::Bad) {
            self.platform
                .get_or_create(&TimeLabels {
                    cluster: t.judged.cluster.clone(),
                    action: action.clone(),
                    class: v.class.clone(),
                    profile: format!("{:?}", v.profile).to_ascii_lowercase(),
                })
                .observe(v.platform_us as f64 / 1e6);
        }
        for (stage, us) in &t.stages {
            self.stages
                .get_or_create(&StageLabels {
                    cluster: t.judged.cluster.clone(),
                    action: action.clone(),
                    stage: stage.clone(),
                })
                .observe(*us as f64 / 1e6);
        }
    }
}

/// A ledger record: the verdict with its pod, and the stage durations it had.
#[derive(Serialize, Deserialize)]
struct Tracked {
    #[serde(flatten)]
    judged: Judged,
    /// Finished first-level stages (µs), for the stage histograms.
    #[serde(default)]
    stages: Vec<(String, i64)>,
}

pub struct TrackerConfig {
    pub data: PathBuf,
    pub every: Duration,
    pub slo: Slo,
    pub book: RuleBook,
}

/// Counts the ledger's verdicts, then judges round after round until `stop`.
pub fn run(config: TrackerConfig, metrics: SloMetrics, stop: Arc<AtomicBool>) -> Result<()> {
    let mut store = SqliteStore::open(&config.data)?;
    let mut restored = 0u64;
    for row in store.ledger_verdicts(i64::MIN)? {
        match serde_json::from_str::<Tracked>(&row.record) {
            Ok(t) => {
                metrics.count(&t);
                restored += 1;
            }
            Err(e) => tracing::warn!(uid = %row.uid, "unreadable ledger record: {e}"),
        }
    }
    tracing::info!(restored, "SLO tracker: ledger counted");
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match round(&mut store, &config, &metrics) {
            Ok(n) if n > 0 => tracing::debug!(verdicts = n, "SLO tracker round"),
            Ok(_) => {}
            Err(e) => tracing::warn!("SLO tracker round failed (retried): {e:#}"),
        }
        metrics
            .round_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut slept = Duration::ZERO;
        while slept < config.every && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            slept += Duration::from_millis(100);
        }
    }
    Ok(())
}

/// One pass over every cluster; returns how many verdicts were new.
fn round(store: &mut SqliteStore, config: &TrackerConfig, metrics: &SloMetrics) -> Result<usize> {
    let mut fresh_total = 0;
    if let Ok(bytes) = store.size_bytes() {
        metrics.store_bytes.set(bytes as i64);
    }
    for cluster in store.clusters()? {
        let name = cluster.cluster.clone();
        let watermark = cluster.watermark;
        metrics
            .lag
            .get_or_create(&ClusterLabel {
                cluster: name.clone(),
            })
            .set((cluster.max_seen - watermark).max(0) as f64 / 1e6);
        let cursor = store.ledger_cursor(&name)?;
        let due = store.ledger_due(&name, watermark)?;
        if cursor.is_some_and(|c| c >= watermark) && due.is_empty() {
            continue;
        }
        let mut pods = store.pods(&PodFilter {
            cluster: Some(name.clone()),
            since: cursor,
            ..PodFilter::default()
        })?;
        let listed: BTreeSet<String> = pods.iter().map(|p| p.uid.clone()).collect();
        for uid in due.iter().filter(|u| !listed.contains(*u)) {
            pods.extend(
                store
                    .find_pods(Some(&name), uid)?
                    .into_iter()
                    .filter(|p| &p.uid == uid),
            );
        }
        let mut round = LedgerRound {
            cursor: watermark,
            ..LedgerRound::default()
        };
        let mut tracked = Vec::new();
        for pod in &pods {
            let facts = store.timeline(&name, &pod.uid)?;
            // As of the watermark: what came after it may still be joined by late events.
            let facts = &facts[..facts.partition_point(|r| r.ts <= watermark)];
            if facts.is_empty() {
                continue;
            }
            // On its way, nothing to decide yet: no diagnosis needed.
            if let Some(due) =
                loupe_slo::undecided_until(&config.slo, &config.book, facts, watermark)
            {
                round.pending.push((pod.uid.clone(), due));
                continue;
            }
            let verdicts = judge(&config.slo, &config.book, facts, watermark);
            let mut next_due: Option<i64> = None;
            for j in judged(pod, verdicts) {
                match j.verdict.decided {
                    None => {
                        let due = j.verdict.due.unwrap_or(watermark + 1);
                        next_due = Some(next_due.map_or(due, |d: i64| d.min(due)));
                    }
                    Some(decided) => {
                        let stages = finished_stages(&config.book, facts, watermark, &j);
                        let t = Tracked { judged: j, stages };
                        round.verdicts.push(LedgerVerdict {
                            cluster: name.clone(),
                            uid: pod.uid.clone(),
                            action: t.judged.verdict.action.as_str().to_string(),
                            start: t.judged.verdict.start,
                            decided,
                            outcome: t.judged.verdict.outcome.as_str().to_string(),
                            record: serde_json::to_string(&t)?,
                        });
                        tracked.push(t);
                    }
                }
            }
            match next_due {
                Some(d) => round.pending.push((pod.uid.clone(), d)),
                None => round.settled.push(pod.uid.clone()),
            }
        }
        let fresh = store.record_round(&name, &round)?;
        for (t, new) in tracked.iter().zip(fresh) {
            if new {
                metrics.count(t);
                fresh_total += 1;
            }
        }
    }
    let pending: BTreeMap<String, u64> = store.ledger_pending()?.into_iter().collect();
    for cluster in store.clusters()? {
        metrics
            .pending
            .get_or_create(&ClusterLabel {
                cluster: cluster.cluster.clone(),
            })
            .set(pending.get(&cluster.cluster).copied().unwrap_or(0) as i64);
    }
    Ok(fresh_total)
}

/// The delivery's finished first-level platform and user stages, as the trace has them.
fn finished_stages(
    book: &RuleBook,
    facts: &[loupe_facts::FactRecord],
    now: i64,
    j: &Judged,
) -> Vec<(String, i64)> {
    let traces = loupe_trace::evaluate_all(&book.packs, facts, now);
    let Some(trace) = traces
        .iter()
        .find(|t| t.action == j.verdict.action && t.start == j.verdict.start)
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, i64)> = Vec::new();
    for s in trace.spans.iter().filter(|s| s.depth == 1 && !s.open) {
        // A stage run per container counts once, for its longest instance.
        match out.iter_mut().find(|(n, _)| *n == s.name) {
            Some(existing) => existing.1 = existing.1.max(s.duration_us),
            None => out.push((s.name.clone(), s.duration_us)),
        }
    }
    out
}
