//! `loupe serve`: the audit webhook receiver and live log tailers, one writer behind them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use loupe_ingest::metrics::IngestMetrics;
use loupe_ingest::webhook::{self, TlsFiles, WebhookConfig};
use loupe_ingest::writer::{self, WriterConfig};
use loupe_ingest::{tail, Pipeline, PipelineConfig};
use loupe_store::{Retention, Store};

use crate::{open, parse_duration_us, parse_size, Global, OrderArgs};

#[derive(Args)]
pub struct ServeArgs {
    /// Address of the webhook receiver and /metrics.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Serve TLS with this certificate (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Require `Authorization: Bearer <token>` with the token in this file.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Tail this live audit log (repeatable); the cluster is --cluster.
    #[arg(long)]
    tail: Vec<PathBuf>,
    /// No webhook receiver, only tailers.
    #[arg(long)]
    no_webhook: bool,
    #[command(flatten)]
    ordering: OrderArgs,
    /// Keep this much audit time (e.g. 7d).
    #[arg(long, value_parser = parse_duration_us)]
    retain_age: Option<i64>,
    /// Keep the store under this size (e.g. 20GB).
    #[arg(long, value_parser = parse_size)]
    retain_size: Option<u64>,
    /// Stream delivery spans to this OTLP/HTTP traces endpoint as they finish.
    #[arg(long, env = "LOUPE_OTLP_ENDPOINT")]
    otlp: Option<String>,
    /// Span packs (*.yaml) replacing the built-in ones; reloaded when they change.
    #[arg(long, env = "LOUPE_SPANS")]
    spans: Option<PathBuf>,
    /// How often finished spans are looked for and sent.
    #[arg(long, default_value = "2s", value_parser = parse_duration_us)]
    otlp_every: i64,
    /// An SLO config (classes, adders, overrides) replacing the built-in one.
    #[arg(long, env = "LOUPE_SLO")]
    slo: Option<PathBuf>,
    /// Rule files (*.yaml) replacing the built-in ones of the same lifecycle.
    #[arg(long, env = "LOUPE_RULES")]
    rules: Option<PathBuf>,
    /// How often the SLO tracker judges what changed.
    #[arg(long, default_value = "2s", value_parser = parse_duration_us)]
    slo_every: i64,
    /// Most namespaces given their own SLO series; the rest are counted as `_other`.
    #[arg(long, default_value_t = 200)]
    max_namespaces: usize,
    /// Largest webhook body accepted.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    max_body: u64,
}

pub fn run(g: &Global, args: ServeArgs) -> Result<()> {
    let cluster = crate::cluster_or_default(g);
    let config = PipelineConfig {
        retention: Retention {
            max_age_us: args.retain_age,
            max_bytes: args.retain_size,
        },
        ..args.ordering.pipeline_config()
    };
    let store = open(g)?;
    let checkpoints: Vec<_> = args
        .tail
        .iter()
        .map(|p| store.checkpoint(&cluster, &tail::source_name(p)))
        .collect::<Result<_, _>>()?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let slo_metrics = crate::tracker::SloMetrics::register(&mut registry, args.max_namespaces);
    // Refuse a bad SLO config or rule file at start.
    let tracker_config = crate::tracker::TrackerConfig {
        data: g.data.clone(),
        every: Duration::from_micros(args.slo_every.max(100_000) as u64),
        slo: crate::slo::slo_config(args.slo.as_deref())?,
        book: crate::diagnose::rule_book(&crate::diagnose::RulesArgs {
            rules: args.rules.clone(),
            spans: args.spans.clone(),
        })?,
    };
    let registry = Arc::new(Mutex::new(registry));
    let writer_config = WriterConfig {
        idle_flush: Duration::from_micros(args.ordering.lateness.max(1_000_000) as u64),
        ..WriterConfig::default()
    };
    let (writer, writer_thread) =
        writer::spawn(Pipeline::new(store, config), writer_config, metrics.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tailers = Vec::new();
    for (path, saved) in args.tail.iter().zip(checkpoints) {
        let tail_config = tail::TailConfig {
            path: path.clone(),
            cluster: cluster.clone(),
            poll: Duration::from_millis(200),
            batch_lines: 4096,
        };
        let (w, s) = (writer.clone(), stop.clone());
        tracing::info!(path = %path.display(), resume = saved.is_some(), "tailing");
        tailers.push(std::thread::spawn(move || {
            if let Err(e) = tail::run(tail_config, saved, w, s) {
                tracing::error!("tailer stopped: {e:#}");
            }
        }));
    }
    let tracker = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("loupe-slo".into())
            .spawn(move || {
                if let Err(e) = crate::tracker::run(tracker_config, slo_metrics, stop) {
                    tracing::error!("SLO tracker stopped: {e:#}");
                }
            })?
    };
    let streamer = match &args.otlp {
        Some(endpoint) => {
            let config = crate::trace::StreamConfig {
                otlp: endpoint.clone(),
                spans: args.spans.clone(),
                every: Duration::from_micros(args.otlp_every.max(100_000) as u64),
                lateness_us: args.ordering.lateness,
            };
            // Refuse a bad pack at start; later changes only replace good ones.
            crate::trace::packs(config.spans.as_deref())?;
            let (g, s) = (g.clone(), stop.clone());
            Some(std::thread::spawn(move || {
                if let Err(e) = crate::trace::stream(g, config, s) {
                    tracing::error!("span stream stopped: {e:#}");
                }
            }))
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        if args.no_webhook {
            shutdown.await;
            return Ok(());
        }
        let token = match &args.token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the token file {}", p.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let tls = args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| TlsFiles {
            cert,
            key,
            client_ca: args.client_ca.clone(),
        });
        let wc = WebhookConfig {
            listen: args.listen,
            default_cluster: cluster.clone(),
            token,
            tls,
            max_body_bytes: args.max_body as usize,
        };
        let router = webhook::router(writer.clone(), &wc, metrics.clone(), registry.clone());
        tracing::info!(listen = %wc.listen, tls = wc.tls.is_some(), cluster = %cluster, "audit webhook receiver ready: POST /audit or /audit/{{cluster}}");
        webhook::serve(router, &wc, shutdown).await
    });
    stop.store(true, Ordering::Relaxed);
    for t in tailers {
        let _ = t.join();
    }
    if let Some(t) = streamer {
        let _ = t.join();
    }
    let _ = tracker.join();
    drop(writer);
    let _ = writer_thread.join();
    result
}
