//! The writer thread: the only owner of the pipeline and the store's write connection.
//! Sources send it batches; it commits them together (group commit) and answers each
//! batch only once its records and checkpoint are durable.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loupe_store::Checkpoint;

use crate::files::Item;
use crate::metrics::IngestMetrics;
use crate::pipeline::Pipeline;

/// What became of one batch once it was committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub records: u64,
    pub malformed: u64,
}

/// Called with the outcome of the commit that made a batch durable.
pub type Ack = Box<dyn FnOnce(Result<BatchReport, String>) + Send>;

pub struct Batch {
    pub cluster: String,
    pub source: String,
    pub items: Vec<Item<'static>>,
    pub checkpoint: Option<Checkpoint>,
    pub ack: Ack,
}

/// How the writer groups and flushes.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// With no input for this long, apply what waits for the watermark.
    pub idle_flush: Duration,
    pub retention_every: Duration,
    /// Most records taken into one commit.
    pub group_records: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            idle_flush: Duration::from_secs(10),
            retention_every: Duration::from_secs(600),
            group_records: 16_384,
        }
    }
}

#[derive(Clone)]
pub struct WriterHandle(SyncSender<Batch>);

impl WriterHandle {
    /// Sends a batch, blocking while the writer is busy (back-pressure).
    pub fn send(&self, batch: Batch) -> Result<(), String> {
        self.0
            .send(batch)
            .map_err(|_| "the writer has stopped".to_string())
    }

    /// Sends a batch and waits until it is committed.
    pub fn send_and_wait(&self, mut batch: Batch) -> Result<BatchReport, String> {
        let (tx, rx) = sync_channel(1);
        batch.ack = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.send(batch)?;
        rx.recv()
            .map_err(|_| "the writer has stopped".to_string())?
    }
}

pub fn spawn(
    pipeline: Pipeline,
    config: WriterConfig,
    metrics: IngestMetrics,
) -> (WriterHandle, JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Batch>(64);
    let handle = std::thread::Builder::new()
        .name("loupe-writer".into())
        .spawn(move || run(pipeline, rx, config, metrics))
        .expect("spawning the writer thread");
    (WriterHandle(tx), handle)
}

fn run(mut pipeline: Pipeline, rx: Receiver<Batch>, config: WriterConfig, metrics: IngestMetrics) {
    let mut last_input = Instant::now();
    let mut flushed = true;
    let mut last_retention = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => {
                if !flushed && last_input.elapsed() >= config.idle_flush {
                    match pipeline.flush() {
                        Ok(committed) => count(&metrics, &committed),
                        Err(e) => tracing::error!("flushing after idle: {e}"),
                    }
                    flushed = true;
                }
                if last_retention.elapsed() >= config.retention_every {
                    retain(&mut pipeline);
                    last_retention = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        let mut records: usize = group[0].items.len();
        while records < config.group_records {
            match rx.try_recv() {
                Ok(b) => {
                    records += b.items.len();
                    group.push(b);
                }
                Err(_) => break,
            }
        }
        let result = apply(&mut pipeline, &group, &metrics);
        metrics.in_flight_pods.set(pipeline.in_flight_pods() as i64);
        let result = result.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!("commit failed: {e}");
        }
        for (i, batch) in group.into_iter().enumerate() {
            (batch.ack)(result.as_ref().map(|r| r[i]).map_err(Clone::clone));
        }
        last_input = Instant::now();
        flushed = false;
    }
    if let Err(e) = pipeline.flush() {
        tracing::error!("final flush: {e}");
    }
}

fn apply(
    pipeline: &mut Pipeline,
    group: &[Batch],
    metrics: &IngestMetrics,
) -> loupe_store::Result<Vec<BatchReport>> {
    let mut reports = Vec::with_capacity(group.len());
    for batch in group {
        let before = pipeline.uncommitted_malformed(&batch.cluster);
        for item in &batch.items {
            pipeline.push_item(&batch.cluster, item, &batch.source)?;
        }
        if let Some(c) = &batch.checkpoint {
            pipeline.checkpoint(&batch.cluster, c.clone());
        }
        reports.push(BatchReport {
            records: batch.items.len() as u64,
            malformed: pipeline.uncommitted_malformed(&batch.cluster) - before,
        });
    }
    let started = Instant::now();
    let committed = pipeline.commit()?;
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    count(metrics, &committed);
    Ok(reports)
}

fn retain(pipeline: &mut Pipeline) {
    match pipeline.retain() {
        Ok(r) if r.chunks > 0 || r.pods > 0 => tracing::info!(
            chunks = r.chunks,
            pods = r.pods,
            bytes_after = r.bytes_after,
            "retention applied"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!("retention: {e}"),
    }
}

fn count(metrics: &IngestMetrics, committed: &[(String, loupe_timeline::Stats)]) {
    for (cluster, stats) in committed {
        metrics.count(cluster, stats);
    }
}
