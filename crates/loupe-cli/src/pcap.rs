//! `loupe pcap FILE`: the L7 engine on a capture (pcap or pcapng), offline.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::output::{emit, table};
use crate::trace::human;
use crate::Global;

#[derive(Args)]
pub struct PcapArgs {
    /// A pcap or pcapng capture (Ethernet, Linux cooked, loopback or raw IP frames).
    pub file: PathBuf,
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
}

#[derive(Serialize)]
struct Line {
    client: String,
    server: String,
    #[serde(flatten)]
    record: loupe_l7::Record,
}

pub fn run(g: &Global, args: PcapArgs) -> Result<()> {
    let a = loupe_pcap::analyze(&args.file)?;
    let report = Report {
        file: args.file.display().to_string(),
        frames: a.read.frames,
        truncated_frames: a.read.truncated,
        skipped_frames: a.read.skipped,
        tcp_segments: a.read.tcp_segments,
        udp_datagrams: a.read.udp_datagrams,
        connections: a.flows.connections,
        out_of_order_segments: a.flows.out_of_order,
        damaged: a.read.damaged.clone(),
        records: a
            .records
            .into_iter()
            .map(|s| Line {
                client: s.client.to_string(),
                server: s.server.to_string(),
                record: s.record,
            })
            .collect(),
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
            l.client.clone(),
            l.server.clone(),
            x.protocol.to_string(),
            if x.partial {
                "?".into()
            } else {
                x.method.clone()
            },
            x.resource.clone(),
            x.status.map_or("-".into(), |s| s.to_string()),
            human(x.duration_us()),
            human(x.server_us()),
            format!("{}/{}", x.request_bytes, x.response_bytes),
        ]);
    }
    format!(
        "{t}\n{} frames ({} TCP segments, {} UDP datagrams, {} skipped, {} cut by the snap length); {} connections, {} segments out of order; {} records",
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
