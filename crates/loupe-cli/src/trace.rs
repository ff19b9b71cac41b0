//! `loupe trace POD`: the pod's deliveries (create, delete, upgrade) as span waterfalls.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use loupe_store::{PodRow, StoreReader};
use loupe_trace::{evaluate, Action, Pack, Trace};
use serde::Serialize;

use crate::output::{emit, offset, table};
use crate::{open, resolve_pod, Global};

#[derive(Args)]
pub struct TraceArgs {
    /// `ns/name`, `name` or UID.
    pub pod: String,
    /// Only this action's trace.
    #[arg(long, value_enum)]
    pub action: Option<ActionArg>,
    /// Span packs (*.yaml) to use instead of the built-in ones of the same action.
    #[arg(long, env = "LOUPE_SPANS")]
    pub spans: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ActionArg {
    Create,
    Delete,
    Upgrade,
}

impl ActionArg {
    fn action(self) -> Action {
        match self {
            ActionArg::Create => Action::Create,
            ActionArg::Delete => Action::Delete,
            ActionArg::Upgrade => Action::Upgrade,
        }
    }
}

#[derive(Serialize)]
struct TraceView {
    pod: PodRow,
    /// The audit clock the ages of open spans are measured to.
    audit_clock: i64,
    traces: Vec<Trace>,
}

/// The built-in packs, with those in `dir` replacing the ones of the same action.
pub fn packs(dir: Option<&Path>) -> Result<Vec<Pack>> {
    let mut packs = Pack::defaults();
    let Some(dir) = dir else { return Ok(packs) };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading span packs from {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        let pack = Pack::load(&file.display().to_string(), &text)?;
        packs.retain(|p| p.def.action != pack.def.action);
        packs.push(pack);
    }
    Ok(packs)
}

pub fn run(g: &Global, args: TraceArgs) -> Result<()> {
    let packs = packs(args.spans.as_deref())?;
    let store = open(g)?;
    let pod = resolve_pod(&store, g.cluster.as_deref(), &args.pod)?;
    let facts = store.timeline(&pod.cluster, &pod.uid)?;
    let audit_clock = store
        .clusters()?
        .into_iter()
        .find(|c| c.cluster == pod.cluster)
        .map_or(pod.last_seen, |c| c.max_seen);
    let mut traces: Vec<Trace> = packs
        .iter()
        .filter(|p| args.action.is_none_or(|a| a.action() == p.def.action))
        .flat_map(|p| evaluate(p, &facts, audit_clock))
        .collect();
    traces.sort_by_key(|t| (t.start, t.action));
    let view = TraceView {
        pod,
        audit_clock,
        traces,
    };
    emit(g.output, &view, waterfall)
}

const BAR: usize = 40;

fn waterfall(v: &TraceView) -> comfy_table::Table {
    let mut t = table(&["SPAN", "OWNER", "START", "DURATION", "", "NOTE"]);
    for trace in &v.traces {
        let root = trace.root();
        let total = root.duration_us.max(1);
        let verdict = match (root.open, trace.failed()) {
            (true, _) if trace.aborted.is_some() => {
                format!(
                    "deleted before it finished, after {}",
                    human(root.duration_us)
                )
            }
            (true, _) => format!("in progress for {}", human(root.duration_us)),
            (false, true) => format!("done in {} with errors", human(root.duration_us)),
            (false, false) => format!("done in {}", human(root.duration_us)),
        };
        t.add_row(vec![
            format!(
                "{} {}/{}",
                trace.action.as_str(),
                v.pod.namespace,
                v.pod.name
            ),
            String::new(),
            crate::output::time(Some(trace.start)),
            String::new(),
            String::new(),
            verdict,
        ]);
        for s in &trace.spans {
            let name = match &s.instance {
                Some(i) => format!("{}{} ({i})", "  ".repeat(s.depth + 1), s.name),
                None => format!("{}{}", "  ".repeat(s.depth + 1), s.name),
            };
            let from = ((s.start - trace.start).max(0) as f64 / total as f64 * BAR as f64) as usize;
            let len = ((s.duration_us as f64 / total as f64 * BAR as f64).ceil() as usize).max(1);
            let from = from.min(BAR - 1);
            let len = len.min(BAR - from);
            let fill = if s.open { '░' } else { '█' };
            let bar = format!(
                "|{}{}{}|",
                " ".repeat(from),
                fill.to_string().repeat(len),
                " ".repeat(BAR - from - len)
            );
            let mut note = Vec::new();
            if s.open {
                note.push(format!("open for {}", human(s.duration_us)));
            }
            if let Some(e) = &s.error {
                note.push(e.chars().take(100).collect());
            }
            t.add_row(vec![
                name,
                format!("{:?}", s.owner).to_lowercase(),
                offset(trace.start, s.start),
                human(s.duration_us),
                bar,
                note.join("; "),
            ]);
        }
    }
    t
}

/// `850ms`, `4.52s`, `3m12s`, `2h05m`.
pub fn human(us: i64) -> String {
    let ms = us / 1000;
    match ms {
        ..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.2}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

#[derive(Args)]
pub struct StagesArgs {
    /// Pods seen within this long before the newest audit time (`1h`), or since an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// Break the statistics down by this.
    #[arg(long, value_enum)]
    pub by: Option<GroupBy>,
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Span packs (*.yaml) to use instead of the built-in ones of the same action.
    #[arg(long, env = "LOUPE_SPANS")]
    pub spans: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GroupBy {
    Namespace,
    Node,
    Workload,
    Cluster,
}

/// `loupe stages`: per stage p50/p90/p99/max over the pods of a window.
pub fn stages(g: &Global, args: StagesArgs) -> Result<()> {
    let packs = packs(args.spans.as_deref())?;
    let store = open(g)?;
    let now = crate::newest_audit_time(&store, g.cluster.as_deref())?;
    let since = crate::parse_when(&args.since, now)?;
    let pods = store.pods(&loupe_store::PodFilter {
        cluster: g.cluster.clone(),
        namespace: args.namespace.clone(),
        since: Some(since),
        ..loupe_store::PodFilter::default()
    })?;
    let clocks: std::collections::HashMap<String, i64> = store
        .clusters()?
        .into_iter()
        .map(|c| (c.cluster, c.max_seen))
        .collect();
    let mut stats = loupe_trace::StageStats::default();
    for pod in &pods {
        let facts = store.timeline(&pod.cluster, &pod.uid)?;
        let clock = clocks.get(&pod.cluster).copied().unwrap_or(pod.last_seen);
        let group = match args.by {
            None => "*".to_string(),
            Some(GroupBy::Namespace) => pod.namespace.clone(),
            Some(GroupBy::Node) => pod.node.clone().unwrap_or_else(|| "-".into()),
            Some(GroupBy::Workload) => match (&pod.owner_kind, &pod.owner_name) {
                (Some(k), Some(n)) => format!("{}/{k}/{n}", pod.namespace),
                _ => format!("{}/-", pod.namespace),
            },
            Some(GroupBy::Cluster) => pod.cluster.clone(),
        };
        for pack in &packs {
            for trace in evaluate(pack, &facts, clock) {
                // Only traces that started in the window.
                if trace.start >= since {
                    stats.add(&trace, &group);
                }
            }
        }
    }
    let rows = stats.rows();
    emit(g.output, &rows, |rows| {
        let mut t = table(&[
            "ACTION", "STAGE", "OWNER", "GROUP", "COUNT", "OPEN", "ERRORS", "P50", "P90", "P99",
            "MAX",
        ]);
        for r in rows {
            t.add_row(vec![
                r.action.as_str().to_string(),
                r.stage.clone(),
                format!("{:?}", r.owner).to_lowercase(),
                r.group.clone(),
                r.count.to_string(),
                r.open.to_string(),
                r.errors.to_string(),
                human(r.p50_us),
                human(r.p90_us),
                human(r.p99_us),
                human(r.max_us),
            ]);
        }
        t
    })
}

#[derive(Args)]
pub struct ExportArgs {
    /// OTLP/HTTP traces endpoint (protobuf), e.g. http://127.0.0.1:4318/v1/traces.
    #[arg(long, env = "LOUPE_OTLP_ENDPOINT")]
    pub otlp: String,
    /// Pods seen within this long before the newest audit time (`1h`), or since an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// Only this pod (`ns/name`, `name` or UID).
    #[arg(long)]
    pub pod: Option<String>,
    /// Span packs (*.yaml) to use instead of the built-in ones of the same action.
    #[arg(long, env = "LOUPE_SPANS")]
    pub spans: Option<PathBuf>,
}

#[derive(Serialize)]
struct ExportReport {
    pods: usize,
    traces: usize,
    spans: usize,
    endpoint: String,
}

/// `loupe export-traces`: the deliveries of a window of pods, sent over OTLP. Trace IDs
/// are deterministic, so sending a window twice sends the same spans.
pub fn export(g: &Global, args: ExportArgs) -> Result<()> {
    let packs = packs(args.spans.as_deref())?;
    let store = open(g)?;
    let pods = match &args.pod {
        Some(p) => vec![resolve_pod(&store, g.cluster.as_deref(), p)?],
        None => {
            let now = crate::newest_audit_time(&store, g.cluster.as_deref())?;
            store.pods(&loupe_store::PodFilter {
                cluster: g.cluster.clone(),
                since: Some(crate::parse_when(&args.since, now)?),
                ..loupe_store::PodFilter::default()
            })?
        }
    };
    let clocks: std::collections::HashMap<String, i64> = store
        .clusters()?
        .into_iter()
        .map(|c| (c.cluster, c.max_seen))
        .collect();
    let mut exporter = loupe_otel::Exporter::new(&args.otlp)?;
    let mut report = ExportReport {
        pods: 0,
        traces: 0,
        spans: 0,
        endpoint: args.otlp.clone(),
    };
    for pod in &pods {
        let facts = store.timeline(&pod.cluster, &pod.uid)?;
        let clock = clocks.get(&pod.cluster).copied().unwrap_or(pod.last_seen);
        let (resource, parent) = otel_parts(pod, &facts);
        for pack in &packs {
            let traces = evaluate(pack, &facts, clock);
            // The controller's trace is the creation's parent.
            let parent = if pack.def.action == Action::Create {
                parent
            } else {
                None
            };
            let sent = exporter.export(&resource, &traces, parent)?;
            if sent > 0 {
                report.traces += traces.len();
                report.spans += sent;
            }
        }
        report.pods += 1;
    }
    emit(g.output, &report, |r| {
        let mut t = table(&["PODS", "TRACES", "SPANS", "ENDPOINT"]);
        t.add_row(vec![
            r.pods.to_string(),
            r.traces.to_string(),
            r.spans.to_string(),
            r.endpoint.clone(),
        ]);
        t
    })
}

/// What `serve --otlp` streams.
pub struct StreamConfig {
    pub otlp: String,
    pub spans: Option<PathBuf>,
    pub every: std::time::Duration,
    /// Late facts can still close spans this far (audit time) behind the newest.
    pub lateness_us: i64,
}

/// The newest modification of the packs in `dir` (reloaded when it changes).
fn packs_stamp(dir: Option<&Path>) -> Option<(std::time::SystemTime, usize)> {
    let dir = dir?;
    let entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .collect();
    let newest = entries
        .iter()
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
        .unwrap_or(std::time::UNIX_EPOCH);
    Some((newest, entries.len()))
}

/// Streams finished spans of the pods the store receives to an OTLP endpoint, every
/// `every`; each span is sent once (a restart resends, with the same IDs). Span packs in
/// `spans` are reloaded when they change; a bad one is reported and the old ones stay.
pub fn stream(
    g: Global,
    config: StreamConfig,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    use std::collections::{HashMap, HashSet};
    let mut packs = packs(config.spans.as_deref())?;
    let mut stamp = packs_stamp(config.spans.as_deref());
    let mut exporter = loupe_otel::Exporter::new(&config.otlp)?;
    let mut sent: HashMap<String, (HashSet<loupe_otel::SpanIdOf>, u64)> = HashMap::new();
    let mut cursor = i64::MIN;
    let mut round = 0u64;
    tracing::info!(endpoint = %config.otlp, "streaming delivery spans over OTLP");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(config.every);
        round += 1;
        let now_stamp = packs_stamp(config.spans.as_deref());
        if now_stamp != stamp {
            stamp = now_stamp;
            match self::packs(config.spans.as_deref()) {
                Ok(p) => {
                    packs = p;
                    tracing::info!("span packs reloaded");
                }
                Err(e) => tracing::error!("span packs not reloaded, the previous ones stay: {e:#}"),
            }
        }
        let Ok(store) = open(&g) else { continue };
        let pods = match store.pods(&loupe_store::PodFilter {
            since: (cursor > i64::MIN).then_some(cursor),
            ..loupe_store::PodFilter::default()
        }) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("span stream: reading pods: {e}");
                continue;
            }
        };
        let clocks: HashMap<String, i64> = store
            .clusters()
            .map(|cs| cs.into_iter().map(|c| (c.cluster, c.max_seen)).collect())
            .unwrap_or_default();
        let mut newest = cursor;
        for pod in &pods {
            let Ok(facts) = store.timeline(&pod.cluster, &pod.uid) else {
                continue;
            };
            let clock = clocks.get(&pod.cluster).copied().unwrap_or(pod.last_seen);
            let (resource, parent) = otel_parts(pod, &facts);
            let entry = sent.entry(pod.uid.clone()).or_default();
            entry.1 = round;
            for pack in &packs {
                let traces = evaluate(pack, &facts, clock);
                let parent = if pack.def.action == Action::Create {
                    parent
                } else {
                    None
                };
                if let Err(e) = exporter.export_new(&resource, &traces, parent, &mut entry.0) {
                    tracing::warn!("span stream: {e} (retried next round)");
                }
            }
            newest = newest.max(pod.last_seen);
        }
        if newest > i64::MIN {
            cursor = newest.saturating_sub(config.lateness_us);
        }
        // Pods not seen for a while have sent all they will.
        sent.retain(|_, (_, seen)| round.saturating_sub(*seen) < 600);
    }
    Ok(())
}

/// What OTLP needs of a pod: its resource, and the controller's trace from its
/// `traceparent` annotation.
fn otel_parts(
    pod: &PodRow,
    facts: &[loupe_facts::FactRecord],
) -> (loupe_otel::PodResource, Option<loupe_otel::RemoteParent>) {
    let parent = facts.iter().find_map(|f| match &f.fact {
        loupe_facts::Fact::PodCreated(c) => c
            .traceparent
            .as_deref()
            .and_then(loupe_otel::parse_traceparent),
        _ => None,
    });
    let resource = loupe_otel::PodResource {
        cluster: pod.cluster.clone(),
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        node: pod.node.clone(),
        owner_kind: pod.owner_kind.clone(),
        owner_name: pod.owner_name.clone(),
    };
    (resource, parent)
}
