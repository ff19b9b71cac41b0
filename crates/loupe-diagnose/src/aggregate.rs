//! Results over time: counts by code per window and by namespace, node, workload and
//! cluster; where a code concentrates; when a code jumps; workloads that keep failing.
//! Pure: rows in, tables out, in a stable order.

use std::collections::{BTreeMap, BTreeSet};

use loupe_trace::Action;
use serde::Serialize;

use crate::{ActionResult, Class, Kind};

/// One diagnosed action with the dimensions it is counted by.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResultRow {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `Kind/name` of the owner (a refused create's generateName prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    pub action: Action,
    pub code: String,
    pub class: Class,
    pub kind: Kind,
    /// When the result was reached (its end), else when the action began.
    pub at: i64,
    /// Refused creates: the owner's attempts; else 1.
    pub attempts: u32,
}

impl ResultRow {
    pub fn new(
        cluster: &str,
        namespace: &str,
        pod: &str,
        node: Option<String>,
        workload: Option<String>,
        r: &ActionResult,
    ) -> ResultRow {
        ResultRow {
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            node,
            workload,
            action: r.action,
            code: r.code.clone(),
            class: r.class,
            kind: r.kind,
            at: r.end.unwrap_or(r.start),
            attempts: r.attempts.unwrap_or(1),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

/// A code that jumped: its rate per window after `at` against before.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangePoint {
    pub at: i64,
    pub before_per_window: f64,
    pub after_per_window: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CodeRow {
    pub code: String,
    pub action: Action,
    pub class: Class,
    pub count: u64,
    /// Pods or refused workloads with the code.
    pub pods: u64,
    pub attempts: u64,
    pub share: f64,
    pub by_cluster: Vec<Count>,
    pub by_namespace: Vec<Count>,
    pub by_node: Vec<Count>,
    pub by_workload: Vec<Count>,
    /// Counts per window from `since`, oldest first.
    pub series: Vec<u64>,
    /// "concentrated on 3 nodes" when a few nodes hold most of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concentration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangePoint>,
}

/// A workload whose pods (or creates) keep failing with one code.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailingWorkload {
    pub cluster: String,
    pub namespace: String,
    pub workload: String,
    pub code: String,
    pub pods: u64,
    /// Refused creates count every attempt of the owner.
    pub attempts: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Aggregation {
    pub since: i64,
    pub until: i64,
    pub window_us: i64,
    pub total: u64,
    pub codes: Vec<CodeRow>,
    pub workloads: Vec<FailingWorkload>,
}

/// How the aggregation is cut.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub since: i64,
    pub until: i64,
    pub window_us: i64,
    /// Rows kept per breakdown.
    pub top: usize,
}

/// Rows outside `[since, until)` are left out.
/// The series starts at the first result, not before: windows before any data would make
/// every code look like it jumped.
pub fn aggregate(rows: &[ResultRow], o: Options) -> Aggregation {
    let window = o.window_us.max(1);
    let rows: Vec<&ResultRow> = rows
        .iter()
        .filter(|r| r.at >= o.since && r.at < o.until)
        .collect();
    let since = rows
        .iter()
        .map(|r| r.at)
        .min()
        .map_or(o.since, |first| first.max(o.since));
    let o = Options { since, ..o };
    let windows = ((o.until - o.since).max(1) + window - 1) / window;
    let mut by_code: BTreeMap<(Action, &str), Vec<&ResultRow>> = BTreeMap::new();
    for r in &rows {
        by_code
            .entry((r.action, r.code.as_str()))
            .or_default()
            .push(r);
    }
    let all_nodes: BTreeSet<&str> = rows.iter().filter_map(|r| r.node.as_deref()).collect();
    let mut codes: Vec<CodeRow> = by_code
        .into_iter()
        .map(|((action, code), list)| {
            let count = list.len() as u64;
            let mut series = vec![0u64; windows as usize];
            for r in &list {
                let w = ((r.at - o.since) / window).clamp(0, windows - 1) as usize;
                series[w] += 1;
            }
            let by_node = tally(list.iter().filter_map(|r| r.node.as_deref()), o.top);
            CodeRow {
                code: code.to_string(),
                action,
                class: list[0].class,
                count,
                pods: list
                    .iter()
                    .map(|r| (&r.cluster, &r.pod))
                    .collect::<BTreeSet<_>>()
                    .len() as u64,
                attempts: list.iter().map(|r| u64::from(r.attempts)).sum(),
                share: round3(count as f64 / rows.len().max(1) as f64),
                by_cluster: tally(list.iter().map(|r| r.cluster.as_str()), o.top),
                by_namespace: tally(list.iter().map(|r| r.namespace.as_str()), o.top),
                concentration: concentration(&list, all_nodes.len()),
                by_node,
                by_workload: tally(list.iter().filter_map(|r| r.workload.as_deref()), o.top),
                change: change_point(&series, o.since, window),
                series,
            }
        })
        .collect();
    codes.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (a.action, &a.code).cmp(&(b.action, &b.code)))
    });
    Aggregation {
        since: o.since,
        until: o.until,
        window_us: window,
        total: rows.len() as u64,
        workloads: failing_workloads(&rows, o.top),
        codes,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn tally<'a>(keys: impl Iterator<Item = &'a str>, top: usize) -> Vec<Count> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_default() += 1;
    }
    let mut out: Vec<Count> = counts
        .into_iter()
        .map(|(key, count)| Count {
            key: key.to_string(),
            count,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out.truncate(top);
    out
}

/// Most of a fault on a few nodes among many: a node problem, not a workload's.
fn concentration(list: &[&ResultRow], nodes_seen: usize) -> Option<String> {
    if list.len() < 5 || list[0].kind == Kind::Success {
        return None;
    }
    let counts = tally(list.iter().filter_map(|r| r.node.as_deref()), usize::MAX);
    let with_node: u64 = counts.iter().map(|c| c.count).sum();
    let mut held = 0;
    for (i, c) in counts.iter().enumerate().take(3) {
        held += c.count;
        let few = i + 1;
        if held * 10 >= with_node * 8 && nodes_seen >= few * 3 && with_node * 2 >= list.len() as u64
        {
            let names: Vec<&str> = counts[..few].iter().map(|c| c.key.as_str()).collect();
            return Some(format!(
                "{} of {} on {few} node{} ({})",
                held,
                with_node,
                if few == 1 { "" } else { "s" },
                names.join(", ")
            ));
        }
    }
    None
}

/// The window from which a code's rate is at least 3× its rate before (and at least 5
/// occurrences after): the biggest such jump.
fn change_point(series: &[u64], since: i64, window: i64) -> Option<ChangePoint> {
    let mut best: Option<(f64, usize, f64, f64)> = None;
    for k in 1..series.len() {
        let before: u64 = series[..k].iter().sum();
        let after: u64 = series[k..].iter().sum();
        let (b, a) = (
            before as f64 / k as f64,
            after as f64 / (series.len() - k) as f64,
        );
        if after < 5 || a < 3.0 * b.max(1.0 / k as f64) {
            continue;
        }
        let ratio = a / b.max(0.1);
        if best.is_none_or(|(r, ..)| ratio > r) {
            best = Some((ratio, k, b, a));
        }
    }
    best.map(|(_, k, b, a)| ChangePoint {
        at: since + k as i64 * window,
        before_per_window: round3(b),
        after_per_window: round3(a),
    })
}

fn failing_workloads(rows: &[&ResultRow], top: usize) -> Vec<FailingWorkload> {
    // (cluster, namespace, workload, code) → (pods, attempts)
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    let mut groups: BTreeMap<Key, (BTreeSet<&str>, u64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.kind == Kind::Fault) {
        let Some(w) = r.workload.as_deref() else {
            continue;
        };
        let g = groups
            .entry((&r.cluster, &r.namespace, w, &r.code))
            .or_default();
        g.0.insert(&r.pod);
        g.1 += u64::from(r.attempts);
    }
    let mut out: Vec<FailingWorkload> = groups
        .into_iter()
        .filter(|(_, (pods, attempts))| pods.len() >= 2 || *attempts >= 2)
        .map(
            |((cluster, namespace, workload, code), (pods, attempts))| FailingWorkload {
                cluster: cluster.to_string(),
                namespace: namespace.to_string(),
                workload: workload.to_string(),
                code: code.to_string(),
                pods: pods.len() as u64,
                attempts,
            },
        )
        .collect();
    out.sort_by(|a, b| {
        b.attempts.cmp(&a.attempts).then_with(|| {
            (&a.namespace, &a.workload, &a.code).cmp(&(&b.namespace, &b.workload, &b.code))
        })
    });
    out.truncate(top);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pod: &str, node: &str, code: &str, at: i64, workload: &str, attempts: u32) -> ResultRow {
        ResultRow {
            cluster: "c".into(),
            namespace: "ns".into(),
            pod: pod.into(),
            node: (!node.is_empty()).then(|| node.to_string()),
            workload: Some(workload.into()),
            action: Action::Create,
            code: code.into(),
            class: Class::Platform,
            kind: Kind::Fault,
            at,
            attempts,
        }
    }

    const MIN: i64 = 60_000_000;

    #[test]
    fn a_code_on_few_nodes_is_concentrated() {
        let mut rows = Vec::new();
        for i in 0..20 {
            let node = if i < 17 {
                format!("n{}", i % 2)
            } else {
                format!("n{i}")
            };
            rows.push(row(
                &format!("p{i}"),
                &node,
                "IPAllocationFailed",
                i * MIN,
                "ReplicaSet/a",
                1,
            ));
        }
        for i in 0..10 {
            rows.push(row(
                &format!("q{i}"),
                &format!("m{i}"),
                "CrashLoopBackOff",
                i * MIN,
                "ReplicaSet/b",
                1,
            ));
        }
        let a = aggregate(
            &rows,
            Options {
                since: 0,
                until: 60 * MIN,
                window_us: 10 * MIN,
                top: 5,
            },
        );
        let ip = a
            .codes
            .iter()
            .find(|c| c.code == "IPAllocationFailed")
            .unwrap();
        assert_eq!(ip.count, 20);
        assert_eq!(ip.by_node[0].count, 9);
        assert_eq!(
            ip.concentration.as_deref(),
            Some("17 of 20 on 2 nodes (n0, n1)")
        );
        let crash = a
            .codes
            .iter()
            .find(|c| c.code == "CrashLoopBackOff")
            .unwrap();
        assert_eq!(crash.concentration, None);
        assert_eq!(a.total, 30);
        assert_eq!(a.codes[0].code, "IPAllocationFailed");
    }

    #[test]
    fn a_code_that_jumps_has_a_change_point() {
        let mut rows = Vec::new();
        for i in 0..6 {
            rows.push(row(
                &format!("a{i}"),
                "n",
                "ImagePullFailed",
                i * 10 * MIN,
                "w",
                1,
            ));
        }
        for i in 0..30 {
            rows.push(row(
                &format!("b{i}"),
                "n",
                "ImagePullFailed",
                60 * MIN + i * MIN,
                "w",
                1,
            ));
        }
        let a = aggregate(
            &rows,
            Options {
                since: 0,
                until: 90 * MIN,
                window_us: 10 * MIN,
                top: 5,
            },
        );
        let c = &a.codes[0];
        assert_eq!(c.series, vec![1, 1, 1, 1, 1, 1, 10, 10, 10]);
        let change = c.change.as_ref().unwrap();
        assert_eq!(change.at, 60 * MIN);
        assert_eq!(change.after_per_window, 10.0);
        // A steady code has none.
        let steady: Vec<ResultRow> = (0..40)
            .map(|i| {
                row(
                    &format!("s{i}"),
                    "n",
                    "CrashLoopBackOff",
                    i * 2 * MIN,
                    "w",
                    1,
                )
            })
            .collect();
        let a = aggregate(
            &steady,
            Options {
                since: 0,
                until: 80 * MIN,
                window_us: 10 * MIN,
                top: 5,
            },
        );
        assert_eq!(a.codes[0].change, None);
    }

    #[test]
    fn a_refused_workload_is_one_failing_workload_with_its_attempts() {
        let rows = vec![
            row(
                "rejected:ns/web-7d9c-",
                "",
                "ApiQuotaExceeded",
                MIN,
                "ReplicaSet/web-7d9c",
                16,
            ),
            row("p1", "n1", "ImagePullFailed", MIN, "ReplicaSet/api", 1),
            row("p2", "n2", "ImagePullFailed", MIN, "ReplicaSet/api", 1),
            row("p3", "n2", "CrashLoopBackOff", MIN, "ReplicaSet/one", 1),
        ];
        let a = aggregate(
            &rows,
            Options {
                since: 0,
                until: 10 * MIN,
                window_us: MIN,
                top: 5,
            },
        );
        let names: Vec<(&str, &str, u64, u64)> = a
            .workloads
            .iter()
            .map(|w| (w.workload.as_str(), w.code.as_str(), w.pods, w.attempts))
            .collect();
        assert_eq!(
            names,
            vec![
                ("ReplicaSet/web-7d9c", "ApiQuotaExceeded", 1, 16),
                ("ReplicaSet/api", "ImagePullFailed", 2, 2),
            ]
        );
        let quota = a
            .codes
            .iter()
            .find(|c| c.code == "ApiQuotaExceeded")
            .unwrap();
        assert_eq!((quota.pods, quota.attempts), (1, 16));
    }
}
