//! `loupe slo`: success rates and platform-time percentiles per class and namespace,
//! `loupe slo violations` (the deliveries that broke the SLO, and why) and
//! `loupe slo pod POD` (one pod's deadline and verdicts).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use loupe_diagnose::RuleBook;
use loupe_slo::{
    judge, summarize, violations, Dimension, Judged, Outcome, Slo, Summary, Violations,
};
use loupe_store::{PodFilter, PodRow, SqliteStore, StoreReader};
use loupe_trace::Action;
use serde::Serialize;

use crate::diagnose::{rule_book, workload, RulesArgs};
use crate::output::{emit, table, time};
use crate::trace::human;
use crate::{open, resolve_pod, Global};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SloArgs {
    #[command(subcommand)]
    pub view: Option<SloView>,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Subcommand)]
pub enum SloView {
    /// The deliveries that broke the SLO, and their spread by code, namespace, node, class.
    Violations(WindowArgs),
    /// Every delivery of the window with its verdict (pending ones too).
    List(WindowArgs),
    /// Prometheus rules for the SLO's objective: error ratios, multi-window burn-rate
    /// alerts, code spikes and Loupe's health (`deploy/prometheus/loupe-rules.yaml`).
    Rules {
        #[command(flatten)]
        config: SloFiles,
    },
    /// One pod's deadline (and how it was reached) and the verdict of each delivery.
    Pod {
        /// `ns/name`, `name` or UID.
        pod: String,
        #[command(flatten)]
        config: SloFiles,
    },
}

#[derive(Args, Clone)]
pub struct SloFiles {
    /// An SLO config (classes, adders, overrides) replacing the built-in one.
    #[arg(long, env = "LOUPE_SLO")]
    pub slo: Option<PathBuf>,
    #[command(flatten)]
    pub rules: RulesArgs,
}

#[derive(Args, Clone)]
pub struct WindowArgs {
    /// Verdicts reached within this long before the newest audit time, or since an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    pub since: String,
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// `create`, `delete`, `upgrade` or `all`.
    #[arg(long, default_value = "create")]
    pub action: String,
    /// Breakdowns, comma-separated, among cluster, namespace, class, node, workload,
    /// action, reason.
    #[arg(long, default_value = "class,namespace", value_delimiter = ',')]
    pub by: Vec<String>,
    /// Also a series of windows this wide (`1m`, `1h`, `1d`).
    #[arg(long)]
    pub window: Option<String>,
    #[command(flatten)]
    pub config: SloFiles,
}

/// The SLO config: the built-in one, or the user's file in its place.
pub fn slo_config(path: Option<&std::path::Path>) -> Result<Slo> {
    match path {
        None => Ok(Slo::defaults()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the SLO config {}", p.display()))?;
            Ok(Slo::load(&p.display().to_string(), &text)?)
        }
    }
}

/// `loupe slo -o json` (a stable contract).
#[derive(Serialize)]
struct Report {
    headline: loupe_slo::Profile,
    objective: f64,
    since: i64,
    until: i64,
    overall: Summary,
    /// Deliveries not decided yet (in flight within their deadline).
    pending: u64,
    by: BTreeMap<String, Vec<Summary>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    windows: Vec<Summary>,
}

pub fn run(g: &Global, args: SloArgs) -> Result<()> {
    match args.view {
        None => report(g, &args.window),
        Some(SloView::Violations(w)) => list_violations(g, &w),
        Some(SloView::List(w)) => {
            let mut win = window(g, &w)?;
            win.items.sort_by(|a, b| {
                (a.verdict.start, &a.cluster, &a.uid).cmp(&(b.verdict.start, &b.cluster, &b.uid))
            });
            emit(g.output, &win.items, |items| deliveries_table(items.iter()))
        }
        Some(SloView::Pod { pod, config }) => pod_view(g, &pod, &config),
        Some(SloView::Rules { config }) => {
            let slo = slo_config(config.slo.as_deref())?;
            print!("{}", loupe_slo::prometheus_rules(&slo));
            Ok(())
        }
    }
}

/// Every verdict of the window's pods at the audit clock.
pub fn judge_window(
    store: &SqliteStore,
    slo: &Slo,
    book: &RuleBook,
    filter: &PodFilter,
) -> Result<Vec<Judged>> {
    let clocks: BTreeMap<String, i64> = store
        .clusters()?
        .into_iter()
        .map(|c| (c.cluster, c.max_seen))
        .collect();
    let mut out = Vec::new();
    for pod in store.pods(filter)? {
        let facts = store.timeline(&pod.cluster, &pod.uid)?;
        let clock = clocks.get(&pod.cluster).copied().unwrap_or(pod.last_seen);
        out.extend(judged(&pod, judge(slo, book, &facts, clock)));
    }
    Ok(out)
}

pub fn judged(
    pod: &PodRow,
    verdicts: Vec<loupe_slo::Verdict>,
) -> impl Iterator<Item = Judged> + '_ {
    verdicts.into_iter().map(move |verdict| Judged {
        cluster: pod.cluster.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        node: pod.node.clone(),
        workload: workload(pod),
        verdict,
    })
}

struct Window {
    slo: Slo,
    since: i64,
    until: i64,
    items: Vec<Judged>,
}

fn window(g: &Global, w: &WindowArgs) -> Result<Window> {
    let slo = slo_config(w.config.slo.as_deref())?;
    let book = rule_book(&w.config.rules)?;
    let action = match w.action.as_str() {
        "all" => None,
        "create" => Some(Action::Create),
        "delete" => Some(Action::Delete),
        "upgrade" => Some(Action::Upgrade),
        other => anyhow::bail!("--action {other:?}: one of create, delete, upgrade, all"),
    };
    let store = open(g)?;
    let until = crate::newest_audit_time(&store, g.cluster.as_deref())?;
    let since = crate::parse_when(&w.since, until)?;
    let filter = PodFilter {
        cluster: g.cluster.clone(),
        namespace: w.namespace.clone(),
        since: Some(since),
        ..PodFilter::default()
    };
    let items = judge_window(&store, &slo, &book, &filter)?
        .into_iter()
        .filter(|j| action.is_none_or(|a| a == j.verdict.action))
        .filter(|j| j.verdict.decided.is_none_or(|d| d >= since))
        .collect();
    Ok(Window {
        slo,
        since,
        until,
        items,
    })
}

fn dimensions(names: &[String]) -> Result<Vec<Dimension>> {
    names
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| {
            Dimension::parse(n).with_context(|| {
                format!(
                    "--by {n:?}: one of cluster, namespace, class, node, workload, action, reason"
                )
            })
        })
        .collect()
}

fn report(g: &Global, w: &WindowArgs) -> Result<()> {
    let by = dimensions(&w.by)?;
    let width = w
        .window
        .as_deref()
        .map(crate::parse_duration_us)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let win = window(g, w)?;
    let objective = win.slo.config.objective;
    let overall = summarize(&win.items, &[], None, objective)
        .pop()
        .unwrap_or_else(empty);
    let report = Report {
        headline: win.slo.config.headline,
        objective,
        since: win.since,
        until: win.until,
        pending: win
            .items
            .iter()
            .filter(|j| j.verdict.outcome == Outcome::Pending)
            .count() as u64,
        by: by
            .iter()
            .map(|d| {
                let mut rows = summarize(&win.items, &[*d], None, objective);
                rows.sort_by_key(|r| std::cmp::Reverse(r.good + r.bad));
                (d.as_str().to_string(), rows)
            })
            .collect(),
        windows: width.map_or_else(Vec::new, |wd| {
            summarize(&win.items, &[], Some(wd), objective)
        }),
        overall,
    };
    emit(g.output, &report, report_table)
}

/// The summary of no verdicts: no data, which meets the objective.
fn empty() -> Summary {
    Summary {
        window_start: None,
        group: BTreeMap::new(),
        good: 0,
        bad: 0,
        excluded: 0,
        success_rate: None,
        meets_objective: true,
        p50_ms: None,
        p90_ms: None,
        p99_ms: None,
    }
}

fn rate(s: &Summary) -> String {
    s.success_rate
        .map_or("no data".into(), |r| format!("{:.2}%", r * 100.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |m| human((m * 1000.0) as i64))
}

fn summary_row(label: String, s: &Summary) -> Vec<String> {
    vec![
        label,
        s.good.to_string(),
        s.bad.to_string(),
        s.excluded.to_string(),
        rate(s),
        ms(s.p50_ms),
        ms(s.p90_ms),
        ms(s.p99_ms),
        if s.meets_objective { "ok" } else { "BREACHED" }.into(),
    ]
}

fn report_table(r: &Report) -> comfy_table::Table {
    let mut t = table(&[
        "", "GOOD", "BAD", "EXCLUDED", "SUCCESS", "P50", "P90", "P99", "SLO",
    ]);
    t.add_row(summary_row(
        format!(
            "all ({} profile, objective {:.2}%, {} pending)",
            match r.headline {
                loupe_slo::Profile::Delivery => "delivery",
                loupe_slo::Profile::Sig => "sig",
            },
            r.objective * 100.0,
            r.pending
        ),
        &r.overall,
    ));
    for (dim, rows) in &r.by {
        for s in rows {
            let value = s.group.get(dim).cloned().unwrap_or_default();
            t.add_row(summary_row(format!("{dim} {value}"), s));
        }
    }
    for s in &r.windows {
        t.add_row(summary_row(format!("window {}", time(s.window_start)), s));
    }
    t
}

fn list_violations(g: &Global, w: &WindowArgs) -> Result<()> {
    let win = window(g, w)?;
    let v = violations(&win.items);
    emit(g.output, &v, violations_table)
}

fn violations_table(v: &Violations) -> String {
    let mut spread = table(&["BY", "SPREAD"]);
    for (dim, shares) in &v.by {
        let top: Vec<String> = shares
            .iter()
            .take(5)
            .map(|s| format!("{} {} ({:.0}%)", s.value, s.count, s.share * 100.0))
            .collect();
        spread.add_row(vec![dim.clone(), top.join(", ")]);
    }
    format!(
        "{} deliveries broke the SLO\n{spread}\n\n{}",
        v.total,
        deliveries_table(v.deliveries.iter())
    )
}

fn deliveries_table<'a>(items: impl Iterator<Item = &'a Judged>) -> comfy_table::Table {
    let mut t = table(&[
        "DECIDED",
        "NAMESPACE",
        "POD",
        "ACTION",
        "VERDICT",
        "CLASS",
        "PLATFORM",
        "DEADLINE",
        "REASON",
        "NODE",
    ]);
    for j in items {
        let reason = match (&j.verdict.detail, &j.verdict.escalation) {
            (Some(d), Some(e)) => format!("{} ({d}) · {e}", j.verdict.reason),
            (Some(d), None) => format!("{} ({d})", j.verdict.reason),
            (None, Some(e)) => format!("{} · {e}", j.verdict.reason),
            (None, None) => j.verdict.reason.clone(),
        };
        t.add_row(vec![
            time(j.verdict.decided),
            j.namespace.clone(),
            j.name.clone(),
            j.verdict.action.as_str().to_string(),
            j.verdict.outcome.as_str().to_string(),
            j.verdict.class.clone(),
            human(j.verdict.platform_us),
            human(j.verdict.deadline_us),
            reason,
            j.node.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

/// `loupe slo pod POD -o json` (a stable contract).
#[derive(Serialize)]
struct PodSlo {
    pod: PodRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    shape: Option<loupe_slo::PodShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<loupe_slo::Deadline>,
    verdicts: Vec<loupe_slo::Verdict>,
}

fn pod_view(g: &Global, query: &str, files: &SloFiles) -> Result<()> {
    let slo = slo_config(files.slo.as_deref())?;
    let book = rule_book(&files.rules)?;
    let store = open(g)?;
    let pod = resolve_pod(&store, g.cluster.as_deref(), query)?;
    let facts = store.timeline(&pod.cluster, &pod.uid)?;
    let clock = store
        .clusters()?
        .into_iter()
        .find(|c| c.cluster == pod.cluster)
        .map_or(pod.last_seen, |c| c.max_seen);
    let shape = facts.iter().find_map(|r| loupe_slo::PodShape::of(&r.fact));
    let view = PodSlo {
        deadline: shape.as_ref().map(|s| slo.deadline(s, slo.config.headline)),
        shape,
        verdicts: judge(&slo, &book, &facts, clock),
        pod,
    };
    emit(g.output, &view, pod_table)
}

fn pod_table(v: &PodSlo) -> comfy_table::Table {
    let mut t = table(&["", ""]);
    if let Some(d) = &v.deadline {
        let how = if d.adjustments.is_empty() {
            String::new()
        } else {
            format!(" ({})", d.adjustments.join(", "))
        };
        t.add_row(vec![
            format!("{}/{}", v.pod.namespace, v.pod.name),
            format!(
                "class {}{} · deadline {}{how}",
                d.class,
                if d.best_effort { " (best effort)" } else { "" },
                human(d.deadline_us)
            ),
        ]);
    }
    for verdict in &v.verdicts {
        let profiles = match (verdict.sig_us, verdict.delivery_us) {
            (Some(s), Some(d)) => format!(" · sig {} · delivery {}", human(s), human(d)),
            _ => String::new(),
        };
        t.add_row(vec![
            format!("{} {}", verdict.action.as_str(), verdict.outcome.as_str()),
            format!(
                "{}{} · platform {} of {} (wall {}){profiles} · decided {}",
                verdict.reason,
                verdict
                    .detail
                    .as_deref()
                    .map_or(String::new(), |d| format!(" ({d})")),
                human(verdict.platform_us),
                human(verdict.deadline_us),
                human(verdict.wall_us),
                time(verdict.decided),
            ),
        ]);
    }
    t
}
