//! `kill -9` of `loupe serve` while it ingests, then a restart: nothing lost, nothing doubled.
//! The result is compared, fact by fact, with a replay of the same events.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use loupe_ingest::{Pipeline, PipelineConfig};
use loupe_sample::{generate, SampleConfig};
use loupe_store::{PodFilter, SqliteStore, StoreReader};

const LATENESS: &str = "30s";

fn sample() -> Vec<String> {
    let mut lines = Vec::new();
    generate(
        &SampleConfig {
            pods: 250,
            seed: 77,
            ..SampleConfig::default()
        },
        |l| lines.push(l.to_string()),
    );
    lines
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--cluster",
            "lab",
            "serve",
            "--lateness",
            LATENESS,
        ])
        .args(args)
        .env("LOUPE_LOG", "warn")
        .spawn()
        .expect("starting loupe serve")
}

/// Stops gracefully (SIGINT, like Ctrl-C) so waiting events are applied.
fn interrupt(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("loupe serve did not stop on SIGINT");
}

/// A bare HTTP/1.1 POST; returns the status code, or None if the connection broke.
fn post(port: u16, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "POST /audit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

fn wait_up(port: u16) {
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut r = String::new();
            if s.read_to_string(&mut r).is_ok() && r.contains(" 200 ") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("loupe serve did not come up on {port}");
}

fn event_list(lines: &[String]) -> String {
    format!("{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{{}},\"items\":[{}]}}", lines.join(","))
}

type Timeline = Vec<(i64, String, u32, String)>;

fn everything(data: &Path) -> (Vec<(String, Timeline)>, loupe_timeline::Stats, u64) {
    let store = SqliteStore::open(data).unwrap();
    let mut out = Vec::new();
    for pod in store.pods(&PodFilter::default()).unwrap() {
        let facts = store
            .timeline(&pod.cluster, &pod.uid)
            .unwrap()
            .into_iter()
            .map(|f| {
                (
                    f.ts,
                    f.audit_id,
                    f.seq,
                    serde_json::to_string(&f.fact).unwrap(),
                )
            })
            .collect();
        out.push((pod.uid, facts));
    }
    out.sort();
    let status = store.clusters().unwrap().remove(0);
    (out, status.stats, status.raw_events)
}

/// Equal, or a panic that shows only what differs.
fn assert_same(got: &[(String, Timeline)], want: &[(String, Timeline)]) {
    let g: std::collections::BTreeMap<_, _> = got.iter().cloned().collect();
    let w: std::collections::BTreeMap<_, _> = want.iter().cloned().collect();
    for (uid, wf) in &w {
        let gf = g.get(uid).cloned().unwrap_or_default();
        let missing: Vec<_> = wf.iter().filter(|f| !gf.contains(f)).collect();
        let extra: Vec<_> = gf.iter().filter(|f| !wf.contains(f)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "pod {uid}: missing {missing:#?}\nextra {extra:#?}"
        );
    }
    let unknown: Vec<_> = g.keys().filter(|k| !w.contains_key(*k)).collect();
    assert!(unknown.is_empty(), "pods not in the reference: {unknown:?}");
}

fn reference(
    lines: &[String],
) -> (
    tempfile::TempDir,
    Vec<(String, Timeline)>,
    loupe_timeline::Stats,
    u64,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig {
        lateness_us: 30_000_000,
        ..PipelineConfig::default()
    };
    let mut p = Pipeline::new(SqliteStore::open(dir.path()).unwrap(), config);
    for (i, l) in lines.iter().enumerate() {
        p.push("lab", l, "ref", i as u64).unwrap();
    }
    p.flush().unwrap();
    drop(p);
    let (t, s, r) = everything(dir.path());
    assert!(!t.is_empty(), "the reference has pods: {s:?}");
    (dir, t, s, r)
}

#[test]
fn kill_9_during_webhook_ingest_loses_and_doubles_nothing() {
    let lines = sample();
    let batches: Vec<&[String]> = lines.chunks(150).collect();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = serve(data.path(), &["--listen", &format!("127.0.0.1:{port}")]);
    wait_up(port);
    let kill_at = batches.len() / 2;
    let mut next = 0;
    let mut killed = false;
    while next < batches.len() {
        if next == kill_at && !killed {
            killed = true;
            // The batch is on the wire when the process dies: unacknowledged.
            let body = event_list(batches[next]);
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = write!(s, "POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            std::thread::sleep(Duration::from_millis(30));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            child = serve(data.path(), &["--listen", &format!("127.0.0.1:{port}")]);
            wait_up(port);
            // The apiserver resends what was not acknowledged, and we resend the batch
            // before it too, as a retry after a lost answer would.
            next -= 1;
        }
        match post(port, &event_list(batches[next])) {
            Some(200) => next += 1,
            other => panic!("batch {next}: {other:?}"),
        }
    }
    assert!(killed);
    interrupt(child);
    let (got, stats, raw) = everything(data.path());
    let (_ref_dir, want, want_stats, want_raw) = reference(&lines);
    assert_eq!(
        stats.analysed, want_stats.analysed,
        "every event analysed exactly once: {stats:?}"
    );
    assert_eq!(raw, want_raw, "raw events stored once");
    assert!(
        stats.duplicates >= batches[kill_at - 1].len() as u64 / 10,
        "the resent batch was seen as duplicates: {stats:?}"
    );
    assert_same(&got, &want);
}

#[test]
fn kill_9_while_tailing_resumes_from_the_checkpoint() {
    let lines = sample();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let mut f = std::fs::File::create(&log).unwrap();
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let data = tempfile::tempdir().unwrap();
    let args = ["--no-webhook", "--tail", log.to_str().unwrap()];
    let records = |data: &Path| -> u64 {
        SqliteStore::open(data)
            .ok()
            .and_then(|s| s.clusters().ok())
            .map_or(0, |c| c.iter().map(|c| c.stats.records).sum())
    };
    let mut child = serve(data.path(), &args);
    let total = lines.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while records(data.path()) < total / 3 {
        assert!(Instant::now() < deadline, "the tailer made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = records(data.path());
    assert!(at_kill < total, "killed mid-way ({at_kill} of {total})");
    let child = serve(data.path(), &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while records(data.path()) < total {
        assert!(
            Instant::now() < deadline,
            "stuck at {} of {total}",
            records(data.path())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(child);
    let (got, stats, raw) = everything(data.path());
    let (_ref_dir, want, want_stats, want_raw) = reference(&lines);
    assert_eq!(stats.records, total, "every line exactly once: {stats:?}");
    assert_eq!(stats.duplicates, 0);
    assert_eq!(raw, want_raw);
    assert_eq!(stats.analysed, want_stats.analysed);
    assert_same(&got, &want);
}
