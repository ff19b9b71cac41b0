//! `loupe demo`: a sample cluster's audit log, replayed into the store, then shown.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use loupe_ingest::{Pipeline, PipelineConfig};
use loupe_sample::{generate, SampleConfig};
use loupe_store::{PodFilter, StoreReader};

use crate::{open, output::Format, Global};

#[derive(Args)]
pub struct DemoArgs {
    /// Pods in the sample.
    #[arg(long, default_value_t = 40)]
    pods: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn run(g: &Global, args: DemoArgs) -> Result<()> {
    let cluster = crate::cluster_or_default(g);
    std::fs::create_dir_all(&g.data)?;
    let log = g.data.join(format!("demo-{cluster}-audit.log"));
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&log).with_context(|| log.display().to_string())?,
    );
    let mut lines = 0u64;
    let mut failed = None;
    generate(
        &SampleConfig {
            pods: args.pods,
            seed: args.seed,
            ..SampleConfig::default()
        },
        |line| {
            if failed.is_none() {
                lines += 1;
                failed = writeln!(file, "{line}").err();
            }
        },
    );
    if let Some(e) = failed {
        return Err(e.into());
    }
    file.flush()?;
    eprintln!(
        "wrote {lines} audit events for {} pods to {}",
        args.pods,
        log.display()
    );
    let mut pipeline = Pipeline::new(open(g)?, PipelineConfig::default());
    pipeline.replay(&cluster, std::slice::from_ref(&log))?;
    let stats = pipeline.totals().get(&cluster).cloned().unwrap_or_default();
    eprintln!(
        "replayed: {} records, {} analysed, {} skipped as noise, {} not final, {} facts",
        stats.records, stats.analysed, stats.skipped, stats.non_final, stats.facts
    );
    let store = open(g)?;
    let pods = store.pods(&PodFilter {
        cluster: Some(cluster.clone()),
        ..PodFilter::default()
    })?;
    if g.output != Format::Table {
        return crate::output::emit(g.output, &pods, |_| crate::output::table(&[]));
    }
    println!("{}", crate::pods_table(&pods));
    if let Some(p) = pods.iter().find(|p| p.gone.is_some()).or(pods.first()) {
        println!(
            "\nloupe timeline {}/{} --cluster {cluster}:",
            p.namespace, p.name
        );
        let facts = store.timeline(&p.cluster, &p.uid)?;
        let view = crate::TimelineView {
            pod: p.clone(),
            facts,
        };
        println!("{}", crate::timeline_table(&view));
    }
    println!("\nNext: loupe pods, loupe timeline POD, loupe history POD, loupe raw AUDIT_ID (all with --data {})", g.data.display());
    Ok(())
}
