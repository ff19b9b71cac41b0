//! Stage statistics: per span (and group), how long it took over a set of traces.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Action, Owner, Trace};

/// Durations of one stage within one group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageRow {
    pub action: Action,
    /// The span's path (`delivery/pod_setup`).
    pub stage: String,
    pub owner: Owner,
    /// The group's value (a namespace, node, workload or cluster), or `*`.
    pub group: String,
    /// Closed spans measured.
    pub count: usize,
    /// Spans still open (stuck) or left open when their trace ended.
    pub open: usize,
    pub errors: usize,
    pub p50_us: i64,
    pub p90_us: i64,
    pub p99_us: i64,
    pub max_us: i64,
    /// Sum over closed spans: with `count`, the stage's share of the time.
    pub total_us: i64,
}

#[derive(Default)]
struct Acc {
    owner: Option<Owner>,
    durations: Vec<i64>,
    open: usize,
    errors: usize,
}

/// Accumulates traces; [`StageStats::rows`] reports them.
#[derive(Default)]
pub struct StageStats {
    groups: BTreeMap<(Action, String, String), Acc>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl StageStats {
    pub fn add(&mut self, trace: &Trace, group: &str) {
        for s in &trace.spans {
            let acc = self
                .groups
                .entry((trace.action, s.path.clone(), group.to_string()))
                .or_default();
            acc.owner = Some(s.owner);
            if s.open {
                acc.open += 1;
            } else {
                acc.durations.push(s.duration_us);
            }
            if s.error.is_some() {
                acc.errors += 1;
            }
        }
    }

    /// One row per (action, stage, group), in the packs' order of actions and paths.
    pub fn rows(mut self) -> Vec<StageRow> {
        self.groups
            .iter_mut()
            .map(|((action, stage, group), acc)| {
                acc.durations.sort_unstable();
                let d = &acc.durations;
                StageRow {
                    action: *action,
                    stage: stage.clone(),
                    owner: acc.owner.unwrap_or(Owner::Display),
                    group: group.clone(),
                    count: d.len(),
                    open: acc.open,
                    errors: acc.errors,
                    p50_us: percentile(d, 50.0),
                    p90_us: percentile(d, 90.0),
                    p99_us: percentile(d, 99.0),
                    max_us: d.last().copied().unwrap_or(0),
                    total_us: d.iter().sum(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
