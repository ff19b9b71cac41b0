//! `loupe`: the command line. Every command takes `--data`, `--cluster` and `-o`.

mod demo;
mod diagnose;
mod history;
mod output;
mod pcap;
mod serve;
mod simulate;
mod slo;
mod trace;
mod tracker;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use loupe_ingest::{Pipeline, PipelineConfig};
use loupe_store::{PodFilter, PodRow, Retention, SqliteStore, Store, StoreReader};
use serde::Serialize;

use output::{emit, offset, opt, table, time, Format};

/// The ingest path allocates and frees many small strings in a wide FIFO window (events
/// wait for the watermark); glibc trims and re-faults its heap under that pattern.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "loupe",
    version,
    about = "Kubernetes pod delivery observability from the audit log"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// The store's directory.
    #[arg(long, global = true, env = "LOUPE_DATA", default_value = "loupe-data")]
    data: PathBuf,
    /// The cluster the input comes from, or the one to query.
    #[arg(long, global = true, env = "LOUPE_CLUSTER")]
    cluster: Option<String>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "table"
    )]
    output: Format,
}

/// How events are put in order and remembered; shared by `replay` and `serve`.
#[derive(Args, Clone)]
pub(crate) struct OrderArgs {
    /// How late (audit time) an event may arrive and still be put in order.
    #[arg(long, default_value = "60s", value_parser = parse_duration_us)]
    pub(crate) lateness: i64,
    /// How long (audit time) auditIDs are remembered to drop duplicates.
    #[arg(long, default_value = "15m", value_parser = parse_duration_us)]
    pub(crate) dedup_horizon: i64,
    /// Pods quiet for this long (audit time) leave memory for the store until named again.
    #[arg(long, default_value = "5m", value_parser = parse_duration_us)]
    pub(crate) idle: i64,
}

impl OrderArgs {
    pub(crate) fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            lateness_us: self.lateness,
            dedup_horizon_us: self.dedup_horizon,
            idle_us: self.idle,
            ..PipelineConfig::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Replay audit log files (JSON lines, gzip) or directories of rotated logs.
    Replay {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        ordering: OrderArgs,
    },
    /// Receive the audit webhook and/or tail live audit logs.
    Serve(serve::ServeArgs),
    /// Generate a sample cluster's audit log, replay it and show what Loupe saw.
    Demo(demo::DemoArgs),
    /// Simulate a cluster's audit log with injected faults and ground truth.
    Simulate(simulate::SimulateArgs),
    /// List pods.
    Pods {
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        phase: Option<String>,
        /// Seen within this long before the newest audit time (`1h`), or since an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// First seen before this RFC 3339 time, or this long before the newest audit time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// A pod's facts in event-time order. POD is `ns/name`, `name` or a UID.
    Timeline { pod: String },
    /// A pod's deliveries (create, delete, upgrade) as span waterfalls.
    Trace(trace::TraceArgs),
    /// How long each delivery stage takes (p50/p90/p99/max) over a window of pods.
    Stages(trace::StagesArgs),
    /// Why a pod (or each pod of a window) failed or was slow: a result code with its
    /// evidence and a remedy. Works on pods stuck right now.
    Diagnose(diagnose::DiagnoseArgs),
    /// Result codes over a window: counts by namespace, node, workload; where a code
    /// concentrates and when it jumped. `--list` prints the code table.
    Codes(diagnose::CodesArgs),
    /// The delivery SLO: success rate and platform-time percentiles by class and
    /// namespace; `violations` lists the deliveries that broke it, and why.
    Slo(slo::SloArgs),
    /// Run the L7 protocol engine on a capture (pcap or pcapng): request records with the
    /// time split between sending, the server and receiving.
    Pcap(pcap::PcapArgs),
    /// Send the delivery traces of a window of pods to an OpenTelemetry backend (OTLP/HTTP).
    ExportTraces(trace::ExportArgs),
    /// A stored audit event, verbatim.
    Raw { audit_id: String },
    /// Every stored version of a pod object, with what changed.
    History { pod: String },
    /// Clusters in the store: clocks, counters, malformed records.
    Status {
        /// How many malformed records to list.
        #[arg(long, default_value_t = 20)]
        malformed: usize,
    },
    /// Nodes seen in the audit log.
    Nodes,
    /// Apply retention now.
    Retain {
        #[arg(long, value_parser = parse_duration_us)]
        max_age: Option<i64>,
        #[arg(long, value_parser = parse_size)]
        max_size: Option<u64>,
    },
}

fn parse_duration_us(s: &str) -> Result<i64, String> {
    humantime::parse_duration(s)
        .map(|d| d.as_micros() as i64)
        .map_err(|e| format!("{s:?}: {e} (e.g. 30s, 5m, 1h, 7d)"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("{s:?}: not a size (e.g. 500MB, 10GiB)"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KI" | "KIB" => 1024.0,
        "M" | "MB" => 1e6,
        "MI" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" => 1e9,
        "GI" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{s:?}: unknown unit {other:?}")),
    };
    Ok((n * mult) as u64)
}

fn main() {
    loupe_ingest::process::disable_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The ingest path's peak memory wants freed memory returned at once; the simulator,
    // which frees little and often, ran 20 % slower that way.
    if !matches!(cli.command, Command::Simulate(_)) {
        loupe_ingest::process::return_freed_memory_at_once();
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let g = cli.global;
    match cli.command {
        Command::Replay { paths, ordering } => replay(&g, &paths, &ordering),
        Command::Serve(args) => serve::run(&g, args),
        Command::Demo(args) => demo::run(&g, args),
        Command::Simulate(args) => simulate::run(&cluster_or_default(&g), args),
        Command::Pods {
            namespace,
            node,
            phase,
            since,
            until,
            limit,
        } => {
            let store = open(&g)?;
            let now = newest_audit_time(&store, g.cluster.as_deref())?;
            let filter = PodFilter {
                cluster: g.cluster.clone(),
                namespace,
                node,
                phase,
                since: since.map(|s| parse_when(&s, now)).transpose()?,
                until: until.map(|s| parse_when(&s, now)).transpose()?,
                limit,
            };
            let pods = store.pods(&filter)?;
            emit(g.output, &pods, pods_table)
        }
        Command::Trace(args) => trace::run(&g, args),
        Command::Stages(args) => trace::stages(&g, args),
        Command::Diagnose(args) => diagnose::run(&g, args),
        Command::Codes(args) => diagnose::codes(&g, args),
        Command::Slo(args) => slo::run(&g, args),
        Command::Pcap(args) => pcap::run(&g, args),
        Command::ExportTraces(args) => trace::export(&g, args),
        Command::Timeline { pod } => {
            let store = open(&g)?;
            let row = resolve_pod(&store, g.cluster.as_deref(), &pod)?;
            let facts = store.timeline(&row.cluster, &row.uid)?;
            let view = TimelineView { pod: row, facts };
            emit(g.output, &view, timeline_table)
        }
        Command::Raw { audit_id } => {
            let store = open(&g)?;
            let hits = store.raw(&audit_id)?;
            if hits.is_empty() {
                bail!("no stored audit event has auditID {audit_id:?}");
            }
            let events: Vec<RawView> = hits
                .into_iter()
                .filter(|(c, _, _)| g.cluster.as_ref().is_none_or(|want| want == c))
                .map(|(cluster, stage, json)| {
                    let event =
                        serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json));
                    RawView {
                        cluster,
                        stage,
                        event,
                    }
                })
                .collect();
            match g.output {
                Format::Table => {
                    for e in &events {
                        println!("{}", serde_json::to_string_pretty(&e.event)?);
                    }
                    Ok(())
                }
                _ => emit(g.output, &events, |_| table(&[])),
            }
        }
        Command::History { pod } => {
            let store = open(&g)?;
            let row = resolve_pod(&store, g.cluster.as_deref(), &pod)?;
            let versions = history::build(&store.versions(&row.cluster, &row.uid)?);
            emit(g.output, &versions, history_table)
        }
        Command::Status { malformed } => {
            let store = open(&g)?;
            let view = StatusView {
                clusters: store
                    .clusters()?
                    .into_iter()
                    .filter(|c| g.cluster.as_ref().is_none_or(|w| *w == c.cluster))
                    .collect(),
                malformed: store.malformed(g.cluster.as_deref(), malformed)?,
                store_bytes: store.size_bytes()?,
            };
            emit(g.output, &view, status_table)
        }
        Command::Nodes => {
            let store = open(&g)?;
            let nodes: Vec<NodeView> = store
                .nodes(g.cluster.as_deref())?
                .into_iter()
                .map(|(cluster, node)| NodeView { cluster, node })
                .collect();
            emit(g.output, &nodes, |nodes| {
                let mut t = table(&["CLUSTER", "NODE", "READY", "REASON", "LAST SEEN"]);
                for n in nodes {
                    t.add_row(vec![
                        n.cluster.clone(),
                        n.node.name.clone(),
                        opt(&n.node.ready),
                        opt(&n.node.reason),
                        time(Some(n.node.last_ts)),
                    ]);
                }
                t
            })
        }
        Command::Retain { max_age, max_size } => {
            let mut store = open(&g)?;
            let report = store.retain(Retention {
                max_age_us: max_age,
                max_bytes: max_size,
            })?;
            emit(g.output, &report, |r| {
                let mut t = table(&[
                    "CHUNKS",
                    "RAW EVENTS",
                    "PODS",
                    "BYTES BEFORE",
                    "BYTES AFTER",
                ]);
                t.add_row(vec![
                    r.chunks,
                    r.raw_events,
                    r.pods,
                    r.bytes_before,
                    r.bytes_after,
                ]);
                t
            })
        }
    }
}

fn open(g: &Global) -> Result<SqliteStore> {
    SqliteStore::open(&g.data).with_context(|| format!("opening the store in {}", g.data.display()))
}

fn cluster_or_default(g: &Global) -> String {
    g.cluster.clone().unwrap_or_else(|| "default".into())
}

#[derive(Serialize)]
struct ReplayReport {
    cluster: String,
    files: Vec<String>,
    stats: loupe_timeline::Stats,
    malformed: Vec<loupe_timeline::Malformed>,
    in_flight_pods: usize,
    seconds: f64,
}

fn replay(g: &Global, paths: &[PathBuf], ordering: &OrderArgs) -> Result<()> {
    let cluster = cluster_or_default(g);
    let config = ordering.pipeline_config();
    let started = std::time::Instant::now();
    let mut pipeline = Pipeline::new(open(g)?, config);
    let files = pipeline.replay(&cluster, paths)?;
    let report = ReplayReport {
        stats: pipeline.totals().get(&cluster).cloned().unwrap_or_default(),
        malformed: pipeline
            .malformed()
            .iter()
            .map(|(_, m)| m.clone())
            .collect(),
        in_flight_pods: pipeline.in_flight_pods(),
        cluster,
        files: files.iter().map(|f| f.display().to_string()).collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    for m in &report.malformed {
        eprintln!("malformed: {}:{}: {}", m.source, m.line, m.error);
    }
    emit(g.output, &report, |r| {
        let s = &r.stats;
        let mut t = table(&[
            "CLUSTER",
            "FILES",
            "RECORDS",
            "ANALYSED",
            "SKIPPED",
            "NON-FINAL",
            "DUPLICATES",
            "MALFORMED",
            "LATE",
            "FACTS",
            "SECONDS",
        ]);
        t.add_row(vec![
            r.cluster.clone(),
            r.files.len().to_string(),
            s.records.to_string(),
            s.analysed.to_string(),
            s.skipped.to_string(),
            s.non_final.to_string(),
            s.duplicates.to_string(),
            s.malformed.to_string(),
            s.late.to_string(),
            s.facts.to_string(),
            format!("{:.2}", r.seconds),
        ]);
        t
    })
}

/// `1h` (before `now`, the newest audit time) or an RFC 3339 time, as µs.
fn parse_when(s: &str, now: i64) -> Result<i64> {
    if let Some(t) = loupe_audit::parse_time_micros(s) {
        return Ok(t);
    }
    let d = parse_duration_us(s).map_err(anyhow::Error::msg)?;
    Ok(now.saturating_sub(d))
}

fn newest_audit_time(store: &SqliteStore, cluster: Option<&str>) -> Result<i64> {
    Ok(store
        .clusters()?
        .iter()
        .filter(|c| cluster.is_none_or(|w| w == c.cluster))
        .map(|c| c.max_seen)
        .max()
        .unwrap_or(0))
}

fn resolve_pod(store: &SqliteStore, cluster: Option<&str>, query: &str) -> Result<PodRow> {
    let mut rows = store.find_pods(cluster, query)?;
    match rows.len() {
        0 => bail!("no pod matches {query:?} (use ns/name, name or UID; `loupe pods` lists them)"),
        1 => Ok(rows.remove(0)),
        _ => {
            let places: std::collections::BTreeSet<_> = rows
                .iter()
                .map(|r| format!("{}:{}/{}", r.cluster, r.namespace, r.name))
                .collect();
            if places.len() > 1 {
                bail!(
                    "{query:?} is ambiguous: {}; give ns/name or --cluster",
                    places.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            // Incarnations of one name (StatefulSet pods): the newest, as kubectl would show.
            Ok(rows.remove(0))
        }
    }
}

fn pods_table(pods: &Vec<PodRow>) -> comfy_table::Table {
    let mut t = table(&[
        "CLUSTER",
        "NAMESPACE",
        "NAME",
        "NODE",
        "PHASE",
        "OWNER",
        "CREATED",
        "GONE",
        "FACTS",
        "UID",
    ]);
    for p in pods {
        let owner = match (&p.owner_kind, &p.owner_name) {
            (Some(k), Some(n)) => format!("{k}/{n}"),
            _ => "-".into(),
        };
        t.add_row(vec![
            p.cluster.clone(),
            p.namespace.clone(),
            p.name.clone(),
            opt(&p.node),
            opt(&p.phase),
            owner,
            time(p.created),
            time(p.gone),
            p.facts.to_string(),
            p.uid.clone(),
        ]);
    }
    t
}

#[derive(Serialize)]
struct TimelineView {
    pod: PodRow,
    facts: Vec<loupe_facts::FactRecord>,
}

fn timeline_table(v: &TimelineView) -> comfy_table::Table {
    let base = v.facts.first().map_or(0, |f| f.ts);
    let mut t = table(&["TIME", "OFFSET", "FACT", "DETAIL", "AUDIT ID"]);
    for f in &v.facts {
        let late = if f.late { " (late)" } else { "" };
        t.add_row(vec![
            loupe_audit::format_micros(f.ts),
            offset(base, f.ts),
            format!("{}{late}", f.fact.type_name()),
            f.fact.summary(),
            f.audit_id.clone(),
        ]);
    }
    t
}

fn history_table(versions: &Vec<history::Version>) -> comfy_table::Table {
    let mut t = table(&["TIME", "VERB", "USER", "BODY", "CHANGES"]);
    for v in versions {
        let changes: Vec<String> = v
            .changes
            .iter()
            .take(12)
            .map(|c| {
                let to = c.to.as_ref().map(short).unwrap_or_default();
                format!("{} {} {}", c.op, c.path, to)
            })
            .collect();
        let more = v.changes.len().saturating_sub(12);
        let mut text = changes.join("\n");
        if more > 0 {
            text.push_str(&format!("\n… {more} more (-o json for all)"));
        }
        t.add_row(vec![
            v.ts.clone(),
            v.verb.clone(),
            v.user.clone(),
            if v.full { "object" } else { "patch" }.to_string(),
            text,
        ]);
    }
    t
}

fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

#[derive(Serialize)]
struct RawView {
    cluster: String,
    stage: String,
    event: serde_json::Value,
}

#[derive(Serialize)]
struct NodeView {
    cluster: String,
    #[serde(flatten)]
    node: loupe_timeline::NodeRecord,
}

#[derive(Serialize)]
struct StatusView {
    clusters: Vec<loupe_store::ClusterStatus>,
    malformed: Vec<loupe_store::MalformedRow>,
    store_bytes: u64,
}

fn status_table(v: &StatusView) -> comfy_table::Table {
    let mut t = table(&[
        "CLUSTER",
        "AUDIT CLOCK",
        "RECORDS",
        "ANALYSED",
        "SKIPPED",
        "DUPLICATES",
        "MALFORMED",
        "LATE",
        "PODS",
        "RAW EVENTS",
    ]);
    for c in &v.clusters {
        let s = &c.stats;
        t.add_row(vec![
            c.cluster.clone(),
            time(Some(c.max_seen)),
            s.records.to_string(),
            s.analysed.to_string(),
            s.skipped.to_string(),
            s.duplicates.to_string(),
            s.malformed.to_string(),
            s.late.to_string(),
            c.pods.to_string(),
            c.raw_events.to_string(),
        ]);
    }
    for m in &v.malformed {
        t.add_row(vec![
            format!("malformed ({})", m.cluster),
            format!("{}:{}", m.source, m.line),
            m.error.clone(),
        ]);
    }
    t
}
