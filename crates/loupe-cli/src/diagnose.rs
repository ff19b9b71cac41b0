//! `loupe diagnose` (why a pod, or the pods of a window, failed or were slow) and
//! `loupe codes` (results aggregated over time).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use loupe_diagnose::aggregate::{aggregate, Aggregation, Options, ResultRow};
use loupe_diagnose::{diagnose, ActionResult, CodeInfo, Kind, RuleBook};
use loupe_store::{PodFilter, PodRow, SqliteStore, StoreReader};
use serde::Serialize;

use crate::output::{emit, table, time};
use crate::trace::{human, packs};
use crate::{open, resolve_pod, Global};

#[derive(Args)]
pub struct DiagnoseArgs {
    /// `ns/name`, `name` or UID; without it, every pod of the window.
    pub pod: Option<String>,
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Pods seen within this long before the newest audit time (`1h`), or since an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// List delivered pods too, not only the ones with a fault, a delay or still going.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub config: RulesArgs,
}

#[derive(Args, Clone)]
pub struct RulesArgs {
    /// Rule files (*.yaml) to use instead of the built-in ones of the same lifecycle.
    #[arg(long, env = "LOUPE_RULES")]
    pub rules: Option<PathBuf>,
    /// Span packs (*.yaml) to use instead of the built-in ones of the same action.
    #[arg(long, env = "LOUPE_SPANS")]
    pub spans: Option<PathBuf>,
}

#[derive(Args)]
pub struct CodesArgs {
    /// Results reached within this long before the newest audit time, or since an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// The width of each window of the series (`1h`).
    #[arg(long, default_value = "1h")]
    pub window: String,
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Rows kept per breakdown (nodes, namespaces, workloads).
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print the table of result codes (code, stage, class, remedy) instead.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub config: RulesArgs,
}

/// The built-in rules over the chosen packs, with the files in `dir` replacing the
/// built-in ones of the same lifecycle.
pub fn rule_book(args: &RulesArgs) -> Result<RuleBook> {
    let packs = packs(args.spans.as_deref())?;
    let mut files: Vec<(String, String)> = loupe_diagnose::DEFAULT_RULES
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    if let Some(dir) = args.rules.as_deref() {
        files.extend(read_yaml_dir(dir)?);
    }
    Ok(RuleBook::load(packs, &files)?)
}

fn read_yaml_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading rules from {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// One pod's diagnosis, as `loupe diagnose POD -o json` prints it (a stable contract).
#[derive(Serialize)]
struct PodDiagnosis {
    pod: PodRow,
    /// The audit clock that in-flight results are measured to.
    audit_clock: i64,
    results: Vec<ActionResult>,
}

/// One line of `loupe diagnose --since …`.
#[derive(Serialize)]
struct Line {
    cluster: String,
    namespace: String,
    pod: String,
    uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<String>,
    #[serde(flatten)]
    result: ActionResult,
}

fn clocks(store: &SqliteStore) -> Result<HashMap<String, i64>> {
    Ok(store
        .clusters()?
        .into_iter()
        .map(|c| (c.cluster, c.max_seen))
        .collect())
}

/// The owner as `Kind/name`; a refused create's pseudo-pod is named after its prefix.
pub fn workload(pod: &PodRow) -> Option<String> {
    match (&pod.owner_kind, &pod.owner_name) {
        (Some(k), Some(n)) => Some(format!("{k}/{n}")),
        _ if pod.uid.starts_with("rejected:") => {
            Some(format!("creates/{}", pod.name.trim_end_matches('-')))
        }
        _ => None,
    }
}

/// Every pod of the window with its results.
fn diagnose_window(
    store: &SqliteStore,
    book: &RuleBook,
    filter: &PodFilter,
) -> Result<Vec<(PodRow, Vec<ActionResult>)>> {
    let clocks = clocks(store)?;
    let mut out = Vec::new();
    for pod in store.pods(filter)? {
        let facts = store.timeline(&pod.cluster, &pod.uid)?;
        let clock = clocks.get(&pod.cluster).copied().unwrap_or(pod.last_seen);
        let results = diagnose(book, &facts, clock);
        out.push((pod, results));
    }
    Ok(out)
}

/// Prints one pod's diagnosis as `loupe diagnose POD` does (for the demo).
pub fn print_pod(store: &SqliteStore, pod: &PodRow, book: &RuleBook) -> Result<()> {
    let facts = store.timeline(&pod.cluster, &pod.uid)?;
    let audit_clock = clocks(store)?
        .get(&pod.cluster)
        .copied()
        .unwrap_or(pod.last_seen);
    let view = PodDiagnosis {
        pod: pod.clone(),
        audit_clock,
        results: diagnose(book, &facts, audit_clock),
    };
    println!("{}", pod_view(&view));
    Ok(())
}

pub fn run(g: &Global, args: DiagnoseArgs) -> Result<()> {
    let book = rule_book(&args.config)?;
    let store = open(g)?;
    if let Some(query) = &args.pod {
        let pod = resolve_pod(&store, g.cluster.as_deref(), query)?;
        let facts = store.timeline(&pod.cluster, &pod.uid)?;
        let audit_clock = clocks(&store)?
            .get(&pod.cluster)
            .copied()
            .unwrap_or(pod.last_seen);
        let results = diagnose(&book, &facts, audit_clock);
        let view = PodDiagnosis {
            pod,
            audit_clock,
            results,
        };
        return emit(g.output, &view, pod_view);
    }
    let now = crate::newest_audit_time(&store, g.cluster.as_deref())?;
    let since = crate::parse_when(&args.since, now)?;
    let filter = PodFilter {
        cluster: g.cluster.clone(),
        namespace: args.namespace.clone(),
        since: Some(since),
        ..PodFilter::default()
    };
    let mut lines = Vec::new();
    for (pod, results) in diagnose_window(&store, &book, &filter)? {
        for r in results {
            if !args.all && r.kind == Kind::Success {
                continue;
            }
            lines.push(Line {
                cluster: pod.cluster.clone(),
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                node: pod.node.clone(),
                workload: workload(&pod),
                result: r,
            });
        }
    }
    lines.sort_by(|a, b| {
        (&a.namespace, &a.pod, a.result.start).cmp(&(&b.namespace, &b.pod, b.result.start))
    });
    emit(g.output, &lines, window_view)
}

fn state(r: &ActionResult) -> String {
    match (r.phase, r.stuck_for_us) {
        (loupe_diagnose::Phase::InFlight, Some(s)) => format!("stuck {}", human(s)),
        (loupe_diagnose::Phase::InFlight, None) => "in flight".into(),
        (loupe_diagnose::Phase::Ended, _) => "deleted first".into(),
        (loupe_diagnose::Phase::Finished, _) => format!("done in {}", human(r.duration_us)),
    }
}

fn pod_view(v: &PodDiagnosis) -> comfy_table::Table {
    let mut t = table(&["", "", ""]);
    for r in &v.results {
        let code = match &r.detail {
            Some(d) => format!("{} ({d})", r.code),
            None => r.code.clone(),
        };
        t.add_row(vec![
            format!("{} {}/{}", r.action.as_str(), v.pod.namespace, v.pod.name),
            code,
            format!(
                "{} · {} · {}{}",
                r.class.as_str(),
                r.stage.as_deref().unwrap_or("-"),
                state(r),
                r.attempts
                    .map_or(String::new(), |a| format!(" · {a} attempts"))
            ),
        ]);
        t.add_row(vec![String::new(), "why".into(), r.summary.clone()]);
        for e in &r.evidence {
            t.add_row(vec![
                String::new(),
                format!("#{} {}", e.position, time(Some(e.ts))),
                format!("{} [{}]", e.text, e.audit_id),
            ]);
        }
        if r.occurrences > r.evidence.len() as u32 {
            t.add_row(vec![
                String::new(),
                String::new(),
                format!("… {} occurrences in all", r.occurrences),
            ]);
        }
        t.add_row(vec![String::new(), "remedy".into(), r.remedy.clone()]);
        if let Some(u) = &r.user_time {
            t.add_row(vec![
                String::new(),
                "user time".into(),
                format!(
                    "{}{} took {} ({:.0}% of it)",
                    u.span,
                    u.instance
                        .as_deref()
                        .map_or(String::new(), |i| format!(" [{i}]")),
                    human(u.duration_us),
                    u.share * 100.0
                ),
            ]);
        }
        for f in &r.recovered {
            t.add_row(vec![
                String::new(),
                "recovered".into(),
                format!(
                    "{}{} in {} ×{}",
                    f.code,
                    f.detail
                        .as_deref()
                        .map_or(String::new(), |d| format!(" ({d})")),
                    f.stage,
                    f.occurrences
                ),
            ]);
        }
        for n in &r.notes {
            t.add_row(vec![String::new(), "note".into(), n.clone()]);
        }
    }
    t
}

fn window_view(lines: &Vec<Line>) -> comfy_table::Table {
    let mut t = table(&[
        "NAMESPACE",
        "POD",
        "ACTION",
        "CODE",
        "CLASS",
        "STAGE",
        "STATE",
        "WHY",
    ]);
    for l in lines {
        t.add_row(vec![
            l.namespace.clone(),
            l.pod.clone(),
            l.result.action.as_str().to_string(),
            l.result.code.clone(),
            l.result.class.as_str().to_string(),
            l.result.stage.clone().unwrap_or_else(|| "-".into()),
            state(&l.result),
            l.result.summary.clone(),
        ]);
    }
    t
}

pub fn codes(g: &Global, args: CodesArgs) -> Result<()> {
    let book = rule_book(&args.config)?;
    if args.list {
        let list = book.codes();
        return emit(g.output, &list, codes_list);
    }
    let store = open(g)?;
    let now = crate::newest_audit_time(&store, g.cluster.as_deref())?;
    let since = crate::parse_when(&args.since, now)?;
    let window = humantime::parse_duration(&args.window)
        .with_context(|| format!("--window {:?}: give a duration like 1h", args.window))?;
    let filter = PodFilter {
        cluster: g.cluster.clone(),
        namespace: args.namespace.clone(),
        since: Some(since),
        ..PodFilter::default()
    };
    let mut rows = Vec::new();
    for (pod, results) in diagnose_window(&store, &book, &filter)? {
        for r in &results {
            rows.push(ResultRow::new(
                &pod.cluster,
                &pod.namespace,
                &pod.uid,
                pod.node.clone(),
                workload(&pod),
                r,
            ));
        }
    }
    let agg = aggregate(
        &rows,
        Options {
            since,
            until: now + 1,
            window_us: window.as_micros() as i64,
            top: args.top,
        },
    );
    emit(g.output, &agg, aggregation_view)
}

fn top(counts: &[loupe_diagnose::aggregate::Count]) -> String {
    counts
        .iter()
        .take(3)
        .map(|c| format!("{} {}", c.key, c.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn aggregation_view(a: &Aggregation) -> comfy_table::Table {
    let mut t = table(&[
        "ACTION",
        "CODE",
        "CLASS",
        "COUNT",
        "SHARE",
        "TOP NAMESPACES",
        "TOP NODES",
        "NOTE",
    ]);
    for c in &a.codes {
        let mut note = Vec::new();
        if let Some(x) = &c.concentration {
            note.push(format!("concentrated: {x}"));
        }
        if let Some(x) = &c.change {
            note.push(format!(
                "jumped at {}: {:.1} → {:.1} per window",
                time(Some(x.at)),
                x.before_per_window,
                x.after_per_window
            ));
        }
        if c.attempts > c.count {
            note.push(format!("{} attempts", c.attempts));
        }
        t.add_row(vec![
            c.action.as_str().to_string(),
            c.code.clone(),
            c.class.as_str().to_string(),
            c.count.to_string(),
            format!("{:.1}%", c.share * 100.0),
            top(&c.by_namespace),
            top(&c.by_node),
            note.join("; "),
        ]);
    }
    for w in &a.workloads {
        t.add_row(vec![
            "workload".into(),
            w.code.clone(),
            String::new(),
            w.pods.to_string(),
            String::new(),
            w.namespace.clone(),
            w.workload.clone(),
            format!("{} attempts", w.attempts),
        ]);
    }
    t
}

fn codes_list(list: &Vec<CodeInfo>) -> comfy_table::Table {
    let mut t = table(&["LIFECYCLE", "CODE", "STAGE", "CLASS", "DETECTION", "REMEDY"]);
    for c in list {
        t.add_row(vec![
            c.lifecycle.as_str().to_string(),
            c.code.clone(),
            c.stage.clone().unwrap_or_else(|| "-".into()),
            c.class.as_str().to_string(),
            c.detection.to_string(),
            c.remedy.clone(),
        ]);
    }
    t
}
