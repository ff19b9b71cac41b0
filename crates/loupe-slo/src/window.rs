//! Roll-ups of verdicts: success rate and platform-time percentiles per window and
//! group, and the "which deliveries broke the SLO, and why" listing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::verdict::{Outcome, Verdict};

/// A verdict with the pod it belongs to. The JSON form is part of the CLI's contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `Kind/name` of the owner (`ReplicaSet/web-7d4b9c8f5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What verdicts are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Cluster,
    Namespace,
    Class,
    Node,
    Workload,
    Action,
    Reason,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Cluster,
        Dimension::Namespace,
        Dimension::Class,
        Dimension::Node,
        Dimension::Workload,
        Dimension::Action,
        Dimension::Reason,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Cluster => "cluster",
            Dimension::Namespace => "namespace",
            Dimension::Class => "class",
            Dimension::Node => "node",
            Dimension::Workload => "workload",
            Dimension::Action => "action",
            Dimension::Reason => "reason",
        }
    }

    pub fn parse(text: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == text)
    }

    pub fn value_of(self, j: &Judged) -> String {
        let none = || "-".to_string();
        match self {
            Dimension::Cluster => j.cluster.clone(),
            Dimension::Namespace => j.namespace.clone(),
            Dimension::Class => j.verdict.class.clone(),
            Dimension::Node => j.node.clone().unwrap_or_else(none),
            Dimension::Workload => j.workload.clone().unwrap_or_else(none),
            Dimension::Action => j.verdict.action.as_str().to_string(),
            Dimension::Reason => j.verdict.reason.clone(),
        }
    }
}

/// One group in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Start of the window (µs), when summarised per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_start: Option<i64>,
    /// Dimension → value.
    pub group: BTreeMap<String, String>,
    pub good: u64,
    pub bad: u64,
    pub excluded: u64,
    /// good / (good + bad); `None` when nothing was judged (no data counts as good).
    pub success_rate: Option<f64>,
    pub meets_objective: bool,
    /// Headline platform time over good and bad deliveries, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// Final verdicts grouped by `by` (none: one group) and, with `window_us`, by the
/// window containing each verdict's decision time (closed windows never change).
pub fn summarize(
    items: &[Judged],
    by: &[Dimension],
    window_us: Option<i64>,
    objective: f64,
) -> Vec<Summary> {
    type Key = (Option<i64>, Vec<String>);
    let mut groups: BTreeMap<Key, (u64, u64, u64, Vec<i64>)> = BTreeMap::new();
    for j in items {
        let Some(decided) = j.verdict.decided else {
            continue;
        };
        let window = window_us
            .filter(|w| *w > 0)
            .map(|w| decided.div_euclid(w) * w);
        let key = (window, by.iter().map(|d| d.value_of(j)).collect());
        let g = groups.entry(key).or_default();
        match j.verdict.outcome {
            Outcome::Good => g.0 += 1,
            Outcome::Bad => g.1 += 1,
            Outcome::Excluded => g.2 += 1,
            Outcome::Pending => continue,
        }
        if matches!(j.verdict.outcome, Outcome::Good | Outcome::Bad) {
            g.3.push(j.verdict.platform_us);
        }
    }
    groups
        .into_iter()
        .map(
            |((window_start, values), (good, bad, excluded, mut times))| {
                times.sort_unstable();
                let judged = good + bad;
                let success_rate = (judged > 0).then(|| good as f64 / judged as f64);
                Summary {
                    window_start,
                    group: by
                        .iter()
                        .map(|d| d.as_str().to_string())
                        .zip(values)
                        .collect(),
                    good,
                    bad,
                    excluded,
                    success_rate,
                    meets_objective: success_rate.is_none_or(|r| r >= objective),
                    p50_ms: percentile_ms(&times, 0.50),
                    p90_ms: percentile_ms(&times, 0.90),
                    p99_ms: percentile_ms(&times, 0.99),
                }
            },
        )
        .collect()
}

/// Nearest-rank percentile of sorted µs values, in ms.
pub fn percentile_ms(sorted: &[i64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1000.0)
}

/// How many of the listed deliveries share a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    pub value: String,
    pub count: u64,
    pub share: f64,
}

/// The deliveries that broke the SLO, and their distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violations {
    pub total: u64,
    /// Dimension → its values, most frequent first.
    pub by: BTreeMap<String, Vec<Share>>,
    /// Oldest decision first.
    pub deliveries: Vec<Judged>,
}

/// The BAD verdicts among `items`, with their spread by reason, namespace, node, class.
pub fn violations(items: &[Judged]) -> Violations {
    let mut bad: Vec<Judged> = items
        .iter()
        .filter(|j| j.verdict.outcome == Outcome::Bad)
        .cloned()
        .collect();
    bad.sort_by(|a, b| {
        (a.verdict.decided, &a.cluster, &a.uid, a.verdict.start).cmp(&(
            b.verdict.decided,
            &b.cluster,
            &b.uid,
            b.verdict.start,
        ))
    });
    let total = bad.len() as u64;
    let by = [
        Dimension::Reason,
        Dimension::Namespace,
        Dimension::Node,
        Dimension::Class,
        Dimension::Action,
    ]
    .into_iter()
    .map(|d| {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for j in &bad {
            *counts.entry(d.value_of(j)).or_default() += 1;
        }
        let mut shares: Vec<Share> = counts
            .into_iter()
            .map(|(value, count)| Share {
                value,
                count,
                share: count as f64 / total.max(1) as f64,
            })
            .collect();
        shares.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        (d.as_str().to_string(), shares)
    })
    .collect();
    Violations {
        total,
        by,
        deliveries: bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_diagnose::Class;
    use loupe_trace::Action;

    use crate::platform::Profile;

    fn judged(ns: &str, outcome: Outcome, decided: i64, platform_ms: i64) -> Judged {
        Judged {
            cluster: "c".into(),
            namespace: ns.into(),
            name: format!("p{decided}"),
            uid: format!("u{decided}"),
            node: Some("n1".into()),
            workload: None,
            verdict: Verdict {
                action: Action::Create,
                outcome,
                reason: if outcome == Outcome::Bad {
                    "FailedAllocateIP"
                } else {
                    "Success"
                }
                .into(),
                detail: None,
                fault: Class::None,
                class: "small".into(),
                profile: Profile::Delivery,
                start: decided - platform_ms * 1000,
                end: Some(decided),
                decided: (outcome != Outcome::Pending).then_some(decided),
                deadline_us: 20_000_000,
                platform_us: platform_ms * 1000,
                wall_us: platform_ms * 1000,
                sig_us: None,
                delivery_us: None,
                escalation: None,
                due: None,
                adjustments: vec![],
            },
        }
    }

    #[test]
    fn success_rate_and_percentiles_per_window_and_group() {
        let min = 60_000_000;
        let items = vec![
            judged("a", Outcome::Good, 10, 1000),
            judged("a", Outcome::Good, 20, 2000),
            judged("a", Outcome::Bad, 30, 30_000),
            judged("b", Outcome::Excluded, 40, 500),
            judged("a", Outcome::Good, min + 5, 3000),
            judged("a", Outcome::Pending, min + 6, 3000),
        ];
        let s = summarize(&items, &[Dimension::Namespace], Some(min), 0.99);
        assert_eq!(s.len(), 3);
        let first = &s[0];
        assert_eq!((first.window_start, first.good, first.bad), (Some(0), 2, 1));
        assert_eq!(first.success_rate, Some(2.0 / 3.0));
        assert!(!first.meets_objective);
        assert_eq!((first.p50_ms, first.p99_ms), (Some(2000.0), Some(30_000.0)));
        // Only excluded deliveries: no data, which counts as meeting the objective.
        assert_eq!(
            (s[1].excluded, s[1].success_rate, s[1].meets_objective),
            (1, None, true)
        );
        assert_eq!((s[2].window_start, s[2].good), (Some(min), 1));
        let all = summarize(&items, &[], None, 0.5);
        assert_eq!(
            (all.len(), all[0].good, all[0].bad, all[0].excluded),
            (1, 3, 1, 1)
        );
    }

    #[test]
    fn violations_list_bad_deliveries_with_their_spread() {
        let items = vec![
            judged("a", Outcome::Bad, 30, 30_000),
            judged("b", Outcome::Bad, 10, 25_000),
            judged("a", Outcome::Good, 20, 2000),
        ];
        let v = violations(&items);
        assert_eq!(v.total, 2);
        assert_eq!(v.deliveries[0].namespace, "b", "oldest decision first");
        assert_eq!(v.by["reason"][0].value, "FailedAllocateIP");
        assert_eq!(v.by["namespace"].len(), 2);
        assert_eq!(v.by["node"][0].share, 1.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&[7000], 0.99), Some(7.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}
