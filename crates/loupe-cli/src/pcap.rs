//! `loupe pcap FILE`: the L7 engine on a capture (pcap or pcapng), offline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::output::{emit, table};
use crate::trace::human;
use crate::Global;

#[derive(Args)]
pub struct PcapArgs {
    /// A pcap or pcapng capture (Ethernet, Linux cooked, loopback or raw IP frames).
    pub file: PathBuf,
    /// Most distinct values per label of each metric; the rest are counted as `*`.
    #[arg(long, default_value_t = loupe_l7::signals::DEFAULT_MAX_VALUES)]
    pub max_values: usize,
    /// Only this connection type in the service graph (`http`, `dns`, …).
    #[arg(long)]
    pub graph_type: Option<String>,
    /// Kubernetes names for the addresses: what `kubectl get pods,services -A -o json`
    /// (or `-o yaml`) printed when the capture was taken. Services name their cluster IPs
    /// and ports, pods their workloads.
    #[arg(long, value_name = "FILE")]
    pub kube: Option<PathBuf>,
    /// Only exchanges with a side in this namespace (needs --kube): records, signals and
    /// the graph.
    #[arg(long, requires = "kube")]
    pub namespace: Option<String>,
}

/// One series of the golden signals.
#[derive(Serialize)]
struct Signal {
    #[serde(flatten)]
    series: loupe_l7::signals::Series,
    error_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_seconds: Option<f64>,
}

/// `loupe pcap FILE -o json` (a stable contract).
#[derive(Serialize)]
struct Report {
    file: String,
    frames: u64,
    truncated_frames: u64,
    skipped_frames: u64,
    tcp_segments: u64,
    udp_datagrams: u64,
    connections: u64,
    out_of_order_segments: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    damaged: Option<String>,
    records: Vec<Line>,
    signals: Vec<Signal>,
    /// Label values collapsed to `*` by the cardinality limit.
    overflowed_label_values: u64,
    graph: Vec<loupe_l7::signals::Edge>,
    /// Per protocol, what its parsers could not follow (only protocols with something).
    unfollowed: BTreeMap<&'static str, loupe_l7::Unfollowed>,
}

/// What the parsers could not follow, per protocol: over the connections (with
/// `--namespace`, those with a side in it) and UDP DNS.
fn unfollowed(
    a: &loupe_pcap::Analysis,
    names: Option<&loupe_kube::Names>,
    namespace: Option<&str>,
) -> BTreeMap<&'static str, loupe_l7::Unfollowed> {
    let in_namespace = |client, server| {
        let Some(ns) = namespace else { return true };
        let named = |n: Option<&loupe_kube::Named>| n.is_some_and(|n| n.namespace == ns);
        names.is_some_and(|n| named(n.client(client)) || named(n.server(server)))
    };
    let mut by_protocol: BTreeMap<&'static str, loupe_l7::Unfollowed> = BTreeMap::new();
    for c in &a.connections {
        if !c.unfollowed.is_empty() && in_namespace(c.client, c.server) {
            *by_protocol.entry(c.protocol.name()).or_default() += c.unfollowed;
        }
    }
    let udp = loupe_l7::Unfollowed {
        malformed: a.dns.malformed,
        unanswered: a.dns.unanswered,
        orphans: a.dns.orphans,
        cut_short: 0,
    };
    if !udp.is_empty() && namespace.is_none() {
        *by_protocol.entry("dns").or_default() += udp;
    }
    by_protocol
}

#[derive(Serialize)]
struct Line {
    client: String,
    server: String,
    /// `namespace/workload` or `namespace/service`, with --kube.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_namespace: Option<String>,
    #[serde(flatten)]
    record: loupe_l7::Record,
    /// The client's address without its port: the client in the metrics, unnamed.
    #[serde(skip)]
    client_ip: String,
}

pub fn run(g: &Global, args: PcapArgs) -> Result<()> {
    let names = match &args.kube {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let names =
                loupe_kube::Names::parse(&text).with_context(|| format!("{}", path.display()))?;
            Some(names)
        }
        None => None,
    };
    let a = loupe_pcap::analyze(&args.file)?;
    let unfollowed = unfollowed(&a, names.as_ref(), args.namespace.as_deref());
    let lines: Vec<Line> = a
        .records
        .into_iter()
        .map(|s| {
            let client = names.as_ref().and_then(|n| n.client(s.client));
            let server = names.as_ref().and_then(|n| n.server(s.server));
            Line {
                client: s.client.to_string(),
                server: s.server.to_string(),
                client_name: client.map(loupe_kube::Named::display),
                server_name: server.map(loupe_kube::Named::display),
                client_namespace: client.map(|n| n.namespace.clone()),
                server_namespace: server.map(|n| n.namespace.clone()),
                record: s.record,
                client_ip: s.client.ip().to_string(),
            }
        })
        .filter(|l| {
            args.namespace.as_ref().is_none_or(|ns| {
                l.client_namespace.as_ref() == Some(ns) || l.server_namespace.as_ref() == Some(ns)
            })
        })
        .collect();
    let mut signals = loupe_l7::signals::Signals::new(args.max_values);
    for l in &lines {
        // A side is its name when known, else its address (the client's without port).
        signals.observe(
            &l.record,
            loupe_l7::signals::Sides {
                server: l.server_name.as_deref().unwrap_or(&l.server),
                client: l.client_name.as_deref().unwrap_or(&l.client_ip),
                server_namespace: l.server_namespace.as_deref(),
                client_namespace: l.client_namespace.as_deref(),
            },
        );
    }
    let series: Vec<Signal> = signals
        .series()
        .map(|x| Signal {
            error_ratio: x.errors as f64 / x.count.max(1) as f64,
            p50_seconds: x.quantile(0.5),
            p99_seconds: x.quantile(0.99),
            series: x.clone(),
        })
        .collect();
    let graph = signals
        .graph(args.graph_type.as_deref(), args.namespace.as_deref())
        .into_iter()
        .cloned()
        .collect();
    let report = Report {
        signals: series,
        overflowed_label_values: signals.overflowed,
        graph,
        file: args.file.display().to_string(),
        frames: a.read.frames,
        truncated_frames: a.read.truncated,
        skipped_frames: a.read.skipped,
        tcp_segments: a.read.tcp_segments,
        udp_datagrams: a.read.udp_datagrams,
        connections: a.flows.connections,
        out_of_order_segments: a.flows.out_of_order,
        damaged: a.read.damaged.clone(),
        records: lines,
        unfollowed,
    };
    if let Some(d) = &report.damaged {
        eprintln!("warning: {d}");
    }
    emit(g.output, &report, report_table)
}

fn report_table(r: &Report) -> String {
    let mut t = table(&[
        "START",
        "CLIENT",
        "SERVER",
        "PROTOCOL",
        "METHOD",
        "RESOURCE",
        "STATUS",
        "DURATION",
        "SERVER TIME",
        "BYTES IN/OUT",
    ]);
    for l in &r.records {
        let x = &l.record;
        t.add_row(vec![
            crate::output::time(Some(x.request_start)),
            l.client_name.clone().unwrap_or_else(|| l.client.clone()),
            l.server_name.clone().unwrap_or_else(|| l.server.clone()),
            x.protocol.to_string(),
            if x.partial {
                "?".into()
            } else {
                x.method.to_string()
            },
            x.resource.to_string(),
            x.status.map_or("-".into(), |s| s.to_string()),
            human(x.duration_us()),
            human(x.server_us()),
            format!("{}/{}", x.request_bytes, x.response_bytes),
        ]);
    }
    let mut sig = table(&["METRIC", "LABELS", "COUNT", "ERRORS", "P50", "P99"]);
    for x in &r.signals {
        let labels: Vec<String> = x
            .series
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let q = |v: Option<f64>| v.map_or("-".into(), |s| human((s * 1e6) as i64));
        sig.add_row(vec![
            x.series.prometheus.clone(),
            labels.join(" "),
            x.series.count.to_string(),
            x.series.errors.to_string(),
            q(x.p50_seconds),
            q(x.p99_seconds),
        ]);
    }
    let mut graph = table(&[
        "CLIENT",
        "SERVER",
        "TYPE",
        "REQUESTS",
        "FAILED",
        "SERVER TIME (MEAN)",
    ]);
    for e in &r.graph {
        graph.add_row(vec![
            e.client.clone(),
            e.server.clone(),
            e.connection_type.to_string(),
            e.requests.to_string(),
            e.failed.to_string(),
            human((e.server_seconds_sum * 1e6 / e.requests.max(1) as f64) as i64),
        ]);
    }
    let mut unfollowed = String::new();
    for (protocol, u) in &r.unfollowed {
        unfollowed.push_str(&format!(
            "\n{protocol}: {} unanswered, {} answers without their request, {} cut short, {} malformed",
            u.unanswered, u.orphans, u.cut_short, u.malformed
        ));
    }
    if !unfollowed.is_empty() {
        unfollowed.insert_str(0, "\n\nNot followed (counted, not recorded):");
    }
    format!(
        "{t}\n\nGolden signals:\n{sig}\n\nService graph:\n{graph}{unfollowed}\n\n{} frames ({} TCP segments, {} UDP datagrams, {} skipped, {} cut by the snap length); {} connections, {} segments out of order; {} records",
        r.frames,
        r.tcp_segments,
        r.udp_datagrams,
        r.skipped_frames,
        r.truncated_frames,
        r.connections,
        r.out_of_order_segments,
        r.records.len()
    )
}
