//! Loupe's own metrics, served at `/metrics` (OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterOutcome {
    pub cluster: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    pub code: String,
}

/// Ingest counters. Cheap to clone; every clone updates the same series.
#[derive(Clone)]
pub struct IngestMetrics {
    pub records: Family<ClusterOutcome, Counter>,
    pub webhook_requests: Family<Code, Counter>,
    pub commit_seconds: Histogram,
    pub in_flight_pods: Gauge,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry) -> IngestMetrics {
        let m = IngestMetrics {
            records: Family::default(),
            webhook_requests: Family::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            in_flight_pods: Gauge::default(),
        };
        registry.register(
            "loupe_ingest_records",
            "Audit records read, by outcome (analysed, skipped, duplicate, malformed, late…)",
            m.records.clone(),
        );
        registry.register(
            "loupe_webhook_requests",
            "Audit webhook POSTs answered, by HTTP status",
            m.webhook_requests.clone(),
        );
        registry.register(
            "loupe_store_commit_seconds",
            "Time to commit one batch to the store",
            m.commit_seconds.clone(),
        );
        registry.register(
            "loupe_in_flight_pods",
            "Pods whose state is held in memory",
            m.in_flight_pods.clone(),
        );
        m
    }

    pub fn count(&self, cluster: &str, stats: &loupe_timeline::Stats) {
        let pairs = [
            ("analysed", stats.analysed),
            ("skipped", stats.skipped),
            ("non_final", stats.non_final),
            ("duplicate", stats.duplicates),
            ("malformed", stats.malformed),
            ("late", stats.late),
            ("unlinked", stats.unlinked),
        ];
        for (outcome, n) in pairs {
            if n > 0 {
                self.records
                    .get_or_create(&ClusterOutcome {
                        cluster: cluster.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .inc_by(n);
            }
        }
    }
}
