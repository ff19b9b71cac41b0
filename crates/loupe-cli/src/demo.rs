//! `loupe demo`: Loupe's webhook receiver on the embedded store, fed live by a paced
//! simulated cluster (with injected faults), then what Loupe saw.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use loupe_ingest::metrics::IngestMetrics;
use loupe_ingest::webhook::{self, WebhookConfig};
use loupe_ingest::writer::{self, WriterConfig};
use loupe_ingest::{Pipeline, PipelineConfig};
use loupe_sim::{Code, FaultClass, Label};
use loupe_store::{PodFilter, StoreReader};

use crate::{open, output::Format, simulate::SimulateArgs, Global};

#[derive(Args)]
pub struct DemoArgs {
    /// Pods the simulated cluster creates.
    #[arg(long, default_value_t = 120)]
    pods: usize,
    /// Pod creations per second of audit time.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Audit time runs this many times faster than wall time.
    #[arg(long, default_value_t = 20.0)]
    speed: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Share of pods with an injected fault, spread over every code.
    #[arg(long, default_value_t = 0.25)]
    faults: f64,
    /// Address of Loupe's webhook receiver (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

pub fn run(g: &Global, args: DemoArgs) -> Result<()> {
    let cluster = crate::cluster_or_default(g);
    std::fs::create_dir_all(&g.data)?;
    let sim = SimulateArgs {
        profile: "default".into(),
        pods: Some(args.pods),
        nodes: None,
        rate: Some(args.rate),
        seed: args.seed,
        faults: None,
        // `faults` of the creates fail, spread evenly over the create codes.
        every_fault: Some(
            args.faults
                / loupe_sim::CODES
                    .iter()
                    .filter(|c| {
                        c.class != FaultClass::None && c.lifecycle == loupe_sim::Lifecycle::Create
                    })
                    .count() as f64,
        ),
        omit_request_received: true,
        noise: None,
        out: "-".into(),
        labels: None,
        webhook: None,
        speed: args.speed,
        token_file: None,
        list_codes: false,
        list_profiles: false,
    };
    let mut config = sim.config(&cluster)?;
    config.tail_seconds = 120.0;

    // Loupe: the writer behind a webhook receiver, as `loupe serve` runs them.
    let store = open(g)?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let registry = Arc::new(Mutex::new(registry));
    let writer_config = WriterConfig {
        idle_flush: Duration::from_secs(2),
        ..WriterConfig::default()
    };
    let (writer, writer_thread) = writer::spawn(
        Pipeline::new(store, PipelineConfig::default()),
        writer_config,
        metrics.clone(),
    );
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let wc = WebhookConfig {
        listen: addr,
        default_cluster: cluster.clone(),
        token: None,
        tls: None,
        max_body_bytes: 64 << 20,
    };
    let router = webhook::router(writer.clone(), &wc, metrics, registry);
    drop(writer);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        rt.block_on(webhook::serve_on(listener, router, &wc, async {
            let _ = stop_rx.await;
        }))
    });
    let url = format!("http://{addr}/audit/{cluster}");
    eprintln!(
        "Loupe is receiving the audit webhook at {url}; a simulated cluster ({} nodes, {} pods, faults injected) sends to it at {}× real time.",
        config.nodes, config.pods, args.speed
    );

    // The cluster, paced, with a progress line from the store as it fills.
    let labels: Arc<Mutex<Vec<Label>>> = Arc::default();
    let reporter = {
        let data = g.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let cluster = cluster.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = Duration::from_secs(3);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if started.elapsed() < next {
                    continue;
                }
                next += Duration::from_secs(3);
                if let Ok(store) = open(&data) {
                    if let Ok(pods) = store.pods(&PodFilter {
                        cluster: Some(cluster.clone()),
                        ..PodFilter::default()
                    }) {
                        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
                        for p in &pods {
                            *phases
                                .entry(p.phase.clone().unwrap_or_else(|| "-".into()))
                                .or_default() += 1;
                        }
                        let line: Vec<String> =
                            phases.iter().map(|(k, v)| format!("{k} {v}")).collect();
                        eprintln!(
                            "  [{:>4.0}s] {} pods in Loupe: {}",
                            started.elapsed().as_secs_f64(),
                            pods.len(),
                            line.join(", ")
                        );
                    }
                }
            }
        });
        (done, handle)
    };
    let sink = labels.clone();
    let summary = crate::simulate::paced(&config, &url, args.speed, None, &mut |l| {
        if let Ok(mut v) = sink.lock() {
            v.push(l.clone());
        }
    });
    reporter.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reporter.1.join();
    let _ = stop_tx.send(());
    let served = server
        .join()
        .map_err(|_| anyhow::anyhow!("the webhook thread panicked"))?;
    let _ = writer_thread.join();
    let summary = summary?;
    served?;
    eprintln!(
        "sent {} audit events ({:.1} MB) for {} pods and {} refused creates",
        summary.events,
        summary.bytes as f64 / 1e6,
        summary.pods,
        summary.refused_creates
    );

    let store = open(g)?;
    let pods = store.pods(&PodFilter {
        cluster: Some(cluster.clone()),
        ..PodFilter::default()
    })?;
    if g.output != Format::Table {
        return crate::output::emit(g.output, &pods, |_| crate::output::table(&[]));
    }
    println!(
        "{}",
        crate::pods_table(&pods.iter().take(25).cloned().collect())
    );
    if pods.len() > 25 {
        println!(
            "… and {} more (loupe pods --data {})",
            pods.len() - 25,
            g.data.display()
        );
    }
    let labels = labels.lock().map(|l| l.clone()).unwrap_or_default();
    let injected: Vec<&Label> = labels
        .iter()
        .filter(|l| l.create.code != Code::Success && !l.uid.is_empty())
        .collect();
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &injected {
        *by_code.entry(l.create.code.name()).or_default() += 1;
    }
    // What Loupe found from the audit stream alone, against the injected truth.
    let book = loupe_diagnose::RuleBook::defaults();
    let clock = store
        .clusters()?
        .into_iter()
        .find(|c| c.cluster == cluster)
        .map_or(0, |c| c.max_seen);
    let mut found: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &injected {
        let facts = store.timeline(&cluster, &l.uid)?;
        let results = loupe_diagnose::diagnose(&book, &facts, clock);
        if results
            .iter()
            .any(|r| r.action == loupe_trace::Action::Create && r.code == l.create.code.name())
        {
            *found.entry(l.create.code.name()).or_default() += 1;
        }
    }
    println!("\nFaults the simulator injected at create (the ground truth; Loupe never reads it), and how many `loupe diagnose` named from the audit log:");
    println!("  {:<34} {:>8} {:>8}", "CODE", "INJECTED", "FOUND");
    for (code, n) in &by_code {
        println!(
            "  {code:<34} {n:>8} {:>8}",
            found.get(code).copied().unwrap_or(0)
        );
    }
    if let Some(l) = injected
        .iter()
        .find(|l| pods.iter().any(|p| p.uid == l.uid))
    {
        if let Some(p) = pods.iter().find(|p| p.uid == l.uid) {
            println!(
                "\nloupe timeline {}/{} (injected: {}):",
                p.namespace,
                p.name,
                l.create.code.name()
            );
            let facts = store.timeline(&p.cluster, &p.uid)?;
            let view = crate::TimelineView {
                pod: p.clone(),
                facts: facts.into_iter().take(25).collect(),
            };
            println!("{}", crate::timeline_table(&view));
            println!("\nloupe diagnose {}/{}:", p.namespace, p.name);
            crate::diagnose::print_pod(&store, p, &book)?;
        }
    }
    // The delivery SLO over the same pods: what the platform team is judged on.
    let slo = loupe_slo::Slo::defaults();
    let mut judged = Vec::new();
    for p in &pods {
        let facts = store.timeline(&p.cluster, &p.uid)?;
        judged.extend(crate::slo::judged(
            p,
            loupe_slo::judge(&slo, &book, &facts, clock),
        ));
    }
    judged.retain(|j| j.verdict.action == loupe_trace::Action::Create);
    let objective = slo.config.objective;
    if let Some(all) = loupe_slo::summarize(&judged, &[], None, objective).pop() {
        println!(
            "\nloupe slo (create, delivery profile): {} good, {} bad, {} excluded: {} against an objective of {:.0}%; p50 {} p99 {} of platform time",
            all.good,
            all.bad,
            all.excluded,
            all.success_rate.map_or("no data".into(), |r| format!("{:.1}%", r * 100.0)),
            objective * 100.0,
            all.p50_ms.map_or("-".into(), |m| crate::trace::human((m * 1000.0) as i64)),
            all.p99_ms.map_or("-".into(), |m| crate::trace::human((m * 1000.0) as i64)),
        );
        let v = loupe_slo::violations(&judged);
        if let Some(reasons) = v.by.get("reason") {
            let top: Vec<String> = reasons
                .iter()
                .take(5)
                .map(|s| format!("{} {}", s.value, s.count))
                .collect();
            println!("  broke it: {}", top.join(", "));
        }
    }
    println!("\nNext: loupe pods, loupe diagnose POD, loupe codes --since 1h, loupe slo --since 1h, loupe slo violations, loupe timeline POD, loupe trace POD, loupe raw AUDIT_ID (all with --data {})", g.data.display());
    Ok(())
}
