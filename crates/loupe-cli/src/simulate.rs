//! `loupe simulate`: a simulated cluster's audit stream, written to files (fast) or sent
//! to an audit webhook as `EventList` batches in real time or N× faster (paced).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use loupe_sim::{profile, FaultMix, Label, SimConfig, CODES, PROFILES};

#[derive(Args, Clone)]
pub struct SimulateArgs {
    /// Cluster size and churn preset: dev, default, large, burst (`--list-profiles`).
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Pods to create (overrides the profile).
    #[arg(long)]
    pub pods: Option<usize>,
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Pod creations per second of audit time.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Faults to inject: CODE=RATE,… (e.g. ImageNotFound=0.05,FinalizerBlocked=0.02).
    #[arg(long)]
    pub faults: Option<String>,
    /// Inject every code of the table at this rate each (replaces the profile's mix).
    #[arg(long)]
    pub every_fault: Option<f64>,
    /// Omit RequestReceived events (as a policy with `omitStages: [RequestReceived]`).
    #[arg(long)]
    pub omit_request_received: bool,
    /// Unrelated requests per pod-related request.
    #[arg(long)]
    pub noise: Option<f64>,
    /// Audit log output: a file (compressed if it ends in `.zst` or `.gz`), or `-` for stdout.
    #[arg(long, short = 'O', default_value = "-")]
    pub out: PathBuf,
    /// Ground truth output (JSON lines, one per pod).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Send to this audit webhook URL instead of writing a file.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Paced mode: audit time runs this many times faster than wall time.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Bearer token for the webhook.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the injectable result codes and exit.
    #[arg(long)]
    pub list_codes: bool,
    /// Print the profiles and exit.
    #[arg(long)]
    pub list_profiles: bool,
}

impl SimulateArgs {
    pub fn config(&self, cluster: &str) -> Result<SimConfig> {
        let Some(p) = profile(&self.profile) else {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
            bail!(
                "unknown profile {:?}; profiles: {}",
                self.profile,
                names.join(", ")
            );
        };
        let mut config = (p.config)();
        config.cluster = cluster.to_string();
        config.seed = self.seed;
        if let Some(n) = self.pods {
            config.pods = n;
        }
        if let Some(n) = self.nodes {
            config.nodes = n;
        }
        if let Some(r) = self.rate {
            config.pods_per_second = r;
        }
        if let Some(n) = self.noise {
            config.noise_per_event = n;
        }
        if let Some(rate) = self.every_fault {
            config.faults = FaultMix::every_code(rate);
            config.faults.check().context("--every-fault")?;
        }
        if let Some(spec) = &self.faults {
            config.faults = FaultMix::parse(spec).context("--faults")?;
        }
        config.request_received = !self.omit_request_received;
        Ok(config)
    }
}

pub fn run(cluster: &str, args: SimulateArgs) -> Result<()> {
    if args.list_codes {
        println!(
            "{:<34} {:<8} {:<10} {:<10} injects",
            "CODE", "ACTION", "STAGE", "CLASS"
        );
        for c in CODES {
            println!(
                "{:<34} {:<8} {:<10} {:<10} {}",
                c.name,
                format!("{:?}", c.lifecycle).to_lowercase(),
                c.stage,
                format!("{:?}", c.class).to_lowercase(),
                c.injects
            );
        }
        return Ok(());
    }
    if args.list_profiles {
        for p in PROFILES {
            println!("{:<8} {}", p.name, p.about);
        }
        return Ok(());
    }
    let config = args.config(cluster)?;
    let mut labels = match &args.labels {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| path.display().to_string())?,
        )),
        None => None,
    };
    let mut label_error = None;
    let mut on_label = |l: &Label| {
        if let Some(w) = labels.as_mut() {
            if label_error.is_none() {
                label_error = serde_json::to_writer(&mut *w, l)
                    .map_err(anyhow::Error::from)
                    .and_then(|_| writeln!(w).map_err(anyhow::Error::from))
                    .err();
            }
        }
    };
    let started = Instant::now();
    let summary = match &args.webhook {
        Some(url) => {
            let token = match &args.token_file {
                Some(p) => Some(std::fs::read_to_string(p)?.trim().to_string()),
                None => None,
            };
            paced(&config, url, args.speed, token, &mut on_label)?
        }
        None => {
            let out = AuditLogOutput::create(&args.out)?;
            let mut out = loupe_sim::LineWriter::new(out);
            let mut failed = None;
            let summary = loupe_sim::run(
                &config,
                &mut |_, line| {
                    if failed.is_none() {
                        failed = out.push(line).err();
                    }
                },
                &mut on_label,
            );
            if let Some(e) = failed {
                return Err(e).context("writing the audit log");
            }
            out.into_inner()
                .and_then(AuditLogOutput::finish)
                .context("writing the audit log")?;
            summary
        }
    };
    if let Some(e) = label_error {
        return Err(e).context("writing the labels");
    }
    if let Some(mut w) = labels {
        w.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let span = (summary.last_us - summary.first_us) as f64 / 1e6;
    eprintln!(
        "simulated {} pods ({} refused creates) on {} nodes: {} audit events, {:.1} MB over {:.0} s of audit time ({:.0} events/s of audit time); generated in {:.2} s ({:.0} events/s)",
        summary.pods,
        summary.refused_creates,
        config.nodes,
        summary.events,
        summary.bytes as f64 / 1e6,
        span,
        summary.events as f64 / span.max(1.0),
        secs,
        summary.events as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// Where fast mode writes the audit log: stdout, or a file compressed as its name says
/// (`.zst`: zstd level 1, `.gz`: gzip), which `loupe replay` reads back as it is. A large
/// profile's 100 000 pods are 10 GB of JSON, more than a disk takes in seconds; zstd
/// shrinks them about twelvefold at ~750 MB/s on one core.
enum AuditLogOutput {
    Stdout(std::io::StdoutLock<'static>),
    Plain(std::fs::File),
    Zstd(std::io::BufWriter<zstd::stream::write::Encoder<'static, std::fs::File>>),
    Gzip(std::io::BufWriter<flate2::write::GzEncoder<std::fs::File>>),
}

impl AuditLogOutput {
    fn create(path: &Path) -> Result<AuditLogOutput> {
        if path.as_os_str() == "-" {
            return Ok(AuditLogOutput::Stdout(std::io::stdout().lock()));
        }
        let file = std::fs::File::create(path).with_context(|| path.display().to_string())?;
        // Compressed writers take whole batches: a call per line (and per newline) into
        // the compressor costs more than copying the batch once.
        const BUFFER: usize = 1 << 20;
        Ok(match path.extension().and_then(|e| e.to_str()) {
            Some("zst" | "zstd") => {
                let mut encoder = zstd::stream::write::Encoder::new(file, 1)?;
                // A worker thread of zstd's own compresses while the simulator's two
                // threads generate: the writer thread only hands it the text.
                encoder.multithread(1)?;
                AuditLogOutput::Zstd(std::io::BufWriter::with_capacity(BUFFER, encoder))
            }
            Some("gz") => AuditLogOutput::Gzip(std::io::BufWriter::with_capacity(
                BUFFER,
                flate2::write::GzEncoder::new(file, flate2::Compression::fast()),
            )),
            _ => AuditLogOutput::Plain(file),
        })
    }

    /// Ends a compressed stream (its last frame or trailer); a no-op for plain output.
    fn finish(self) -> std::io::Result<()> {
        match self {
            AuditLogOutput::Stdout(mut w) => w.flush()?,
            AuditLogOutput::Plain(mut w) => w.flush()?,
            AuditLogOutput::Zstd(w) => {
                w.into_inner().map_err(|e| e.into_error())?.finish()?;
            }
            AuditLogOutput::Gzip(w) => {
                w.into_inner().map_err(|e| e.into_error())?.finish()?;
            }
        }
        Ok(())
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            AuditLogOutput::Stdout(w) => w,
            AuditLogOutput::Plain(w) => w,
            AuditLogOutput::Zstd(w) => w,
            AuditLogOutput::Gzip(w) => w,
        }
    }
}

impl Write for AuditLogOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.writer().write_vectored(bufs)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

/// Sends the stream as kube-apiserver's webhook backend does: `EventList` batches of at
/// most 400 events or 1 s of wall time, retried with back-off until accepted.
pub fn paced(
    config: &SimConfig,
    url: &str,
    speed: f64,
    token: Option<String>,
    on_label: &mut dyn FnMut(&Label),
) -> Result<loupe_sim::Summary> {
    if speed <= 0.0 {
        bail!("--speed must be positive");
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<(i64, String)>(8192);
    let (label_tx, label_rx) = std::sync::mpsc::channel::<Label>();
    let cfg = config.clone();
    let generator = std::thread::spawn(move || {
        loupe_sim::run(
            &cfg,
            &mut |key, line| {
                let _ = tx.send((key, line));
            },
            &mut |l| {
                let _ = label_tx.send(l.clone());
            },
        )
    });
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let wall0 = Instant::now();
    let mut audit0 = None;
    let mut batch: Vec<String> = Vec::with_capacity(400);
    let mut batch_started = Instant::now();
    let send = |batch: &mut Vec<String>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = format!(
            "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{{}},\"items\":[{}]}}",
            batch.join(",")
        );
        let mut wait = Duration::from_millis(200);
        for attempt in 0.. {
            let mut req = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            match req.send() {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                    bail!(
                        "the webhook refused a batch: {} {}",
                        r.status(),
                        r.text().unwrap_or_default()
                    )
                }
                Ok(r) if attempt > 20 => bail!("the webhook keeps failing: {}", r.status()),
                Err(e) if attempt > 20 => return Err(e).context("sending to the webhook"),
                _ => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        batch.clear();
        Ok(())
    };
    for (key, line) in rx {
        while let Ok(l) = label_rx.try_recv() {
            on_label(&l);
        }
        let a0 = *audit0.get_or_insert(key);
        let due = Duration::from_secs_f64(((key - a0).max(0) as f64 / 1e6) / speed);
        let now = wall0.elapsed();
        if due > now {
            // Flush what is waiting before sleeping until this line is due.
            send(&mut batch)?;
            std::thread::sleep(due - now);
            batch_started = Instant::now();
        }
        batch.push(line);
        if batch.len() >= 400 || batch_started.elapsed() >= Duration::from_secs(1) {
            send(&mut batch)?;
            batch_started = Instant::now();
        }
    }
    send(&mut batch)?;
    for l in label_rx.try_iter() {
        on_label(&l);
    }
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("the simulator thread panicked"))
}
