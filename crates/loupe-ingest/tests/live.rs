//! Live sources end to end: the webhook receiver over real HTTP(S) (curl as the client,
//! openssl for certificates), and the tailer across rotation and restart.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loupe_ingest::metrics::IngestMetrics;
use loupe_ingest::webhook::{self, TlsFiles, WebhookConfig};
use loupe_ingest::writer::{self, WriterConfig};
use loupe_ingest::{tail, Pipeline, PipelineConfig};
use loupe_sample::{generate, SampleConfig};
use loupe_store::{SqliteStore, Store, StoreReader};

fn sample(pods: usize) -> Vec<String> {
    let mut lines = Vec::new();
    generate(
        &SampleConfig {
            pods,
            seed: 21,
            ..SampleConfig::default()
        },
        |l| lines.push(l.to_string()),
    );
    lines
}

fn event_list(lines: &[String]) -> String {
    format!("{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{{}},\"items\":[{}]}}", lines.join(","))
}

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(data: &Path, token: Option<&str>, tls: Option<TlsFiles>) -> Server {
    let store = SqliteStore::open(data).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let registry = Arc::new(Mutex::new(registry));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = WebhookConfig {
        listen: listener.local_addr().unwrap(),
        default_cluster: "lab".into(),
        token: token.map(str::to_string),
        tls,
        max_body_bytes: 64 << 20,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let (writer, writer_thread) = writer::spawn(
            Pipeline::new(store, PipelineConfig::default()),
            WriterConfig::default(),
            metrics.clone(),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let router = webhook::router(writer.clone(), &config, metrics, registry);
        rt.block_on(webhook::serve_on(listener, router, &config, async {
            let _ = stop_rx.await;
        }))
        .unwrap();
        drop(writer);
        writer_thread.join().unwrap();
    });
    Server {
        url: format!("{scheme}://127.0.0.1:{port}"),
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// POSTs with curl; returns (HTTP status, body). Status 0 when the connection failed.
fn post(url: &str, body: &str, extra: &[&str]) -> (u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait_ready(url: &str, extra: &[&str]) {
    for _ in 0..100 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(format!("{url}/healthz"))
            .output()
            .unwrap();
        if out.stdout == b"200" {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the receiver did not come up at {url}");
}

#[test]
fn the_webhook_takes_event_lists_and_reports_bad_bodies() {
    let data = tempfile::tempdir().unwrap();
    let lines = sample(12);
    {
        let server = start(data.path(), None, None);
        wait_ready(&server.url, &[]);
        let mut items = 0;
        for chunk in lines.chunks(400) {
            let (code, body) = post(&format!("{}/audit", server.url), &event_list(chunk), &[]);
            assert_eq!(code, 200, "{body}");
            assert!(body.contains("\"accepted\""), "{body}");
            items += chunk.len();
        }
        assert_eq!(items, lines.len());
        // The apiserver retries a batch on any error: a resent batch doubles nothing.
        let (code, _) = post(
            &format!("{}/audit", server.url),
            &event_list(&lines[..400]),
            &[],
        );
        assert_eq!(code, 200);
        let (code, body) = post(&format!("{}/audit", server.url), "this is not json", &[]);
        assert_eq!(code, 400);
        assert!(body.contains("not an audit.k8s.io EventList"), "{body}");
        let (code, body) = post(
            &format!("{}/audit/other", server.url),
            &event_list(&["{\"kind\":0}".to_string(), lines[0].clone()]),
            &[],
        );
        assert_eq!(code, 200, "one bad item does not lose the batch");
        assert!(
            body.contains("\"malformed\":1") && body.contains("\"cluster\":\"other\""),
            "{body}"
        );
        let metrics = Command::new("curl")
            .args(["-s", &format!("{}/metrics", server.url)])
            .output()
            .unwrap();
        let metrics = String::from_utf8_lossy(&metrics.stdout);
        assert!(
            metrics.contains("loupe_webhook_requests_total{code=\"200\"}"),
            "{metrics}"
        );
        assert!(metrics.contains("loupe_ingest_records_total"), "{metrics}");
    }
    let store = SqliteStore::open(data.path()).unwrap();
    let clusters = store.clusters().unwrap();
    let lab = clusters.iter().find(|c| c.cluster == "lab").unwrap();
    assert_eq!(lab.stats.records as usize, lines.len() + 400 + 1);
    assert_eq!(lab.stats.malformed, 1, "the non-JSON body is recorded");
    // Noise is only counted; every analysed event of the resent batch is a duplicate.
    let mut first = loupe_timeline::Processor::new(loupe_timeline::Config::new("x"));
    for l in &lines[..400] {
        first.push(l, "x", 0);
    }
    assert_eq!(
        lab.stats.duplicates,
        first.stats().analysed,
        "{:?}",
        lab.stats
    );
    let other = clusters.iter().find(|c| c.cluster == "other").unwrap();
    assert_eq!(other.stats.malformed, 1);
    let stored = store.malformed(Some("lab"), 10).unwrap();
    assert!(stored[0].error.contains("EventList") && stored[0].source == "webhook");
}

#[test]
fn the_webhook_requires_the_bearer_token() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), Some("s3cret"), None);
    wait_ready(&server.url, &[]);
    let body = event_list(&sample(1)[..3]);
    assert_eq!(post(&format!("{}/audit", server.url), &body, &[]).0, 401);
    assert_eq!(
        post(
            &format!("{}/audit", server.url),
            &body,
            &["-H", "Authorization: Bearer wrong"]
        )
        .0,
        401
    );
    assert_eq!(
        post(
            &format!("{}/audit", server.url),
            &body,
            &["-H", "Authorization: Bearer s3cret"]
        )
        .0,
        200
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        ok.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn the_webhook_serves_tls_and_checks_client_certificates() {
    let pki = tempfile::tempdir().unwrap();
    let d = pki.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=loupe-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=kube-apiserver",
        ],
    );
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.crt",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
    );
    let data = tempfile::tempdir().unwrap();
    let tls = TlsFiles {
        cert: d.join("server.crt"),
        key: d.join("server.key"),
        client_ca: Some(d.join("ca.crt")),
    };
    let server = start(data.path(), None, Some(tls));
    let ca = d.join("ca.crt").display().to_string();
    let cert = d.join("client.crt").display().to_string();
    let key = d.join("client.key").display().to_string();
    let with_cert = [
        "--cacert",
        ca.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
    ];
    wait_ready(&server.url, &with_cert);
    let body = event_list(&sample(1)[..3]);
    let (code, reply) = post(&format!("{}/audit", server.url), &body, &with_cert);
    assert_eq!(code, 200, "{reply}");
    let (code, _) = post(
        &format!("{}/audit", server.url),
        &body,
        &["--cacert", ca.as_str()],
    );
    assert_ne!(code, 200, "no client certificate, no entry");
}

fn append(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn run_tailer(data: &Path, log: &Path, until: impl Fn(&SqliteStore) -> bool) {
    let store = SqliteStore::open(data).unwrap();
    let saved = store.checkpoint("lab", &tail::source_name(log)).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = IngestMetrics::register(&mut registry);
    let (writer, writer_thread) = writer::spawn(
        Pipeline::new(store, PipelineConfig::default()),
        WriterConfig::default(),
        metrics,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let config = tail::TailConfig {
        path: log.to_path_buf(),
        cluster: "lab".into(),
        poll: Duration::from_millis(20),
        batch_lines: 97,
    };
    let (w, s) = (writer.clone(), stop.clone());
    let t = std::thread::spawn(move || tail::run(config, saved, w, s).unwrap());
    let reader = SqliteStore::open(data).unwrap();
    for _ in 0..500 {
        if until(&reader) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    drop(writer);
    writer_thread.join().unwrap();
}

fn records(store: &SqliteStore) -> u64 {
    store
        .clusters()
        .unwrap()
        .iter()
        .map(|c| c.stats.records)
        .sum()
}

#[test]
fn the_tailer_follows_rotation_and_resumes_from_its_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let lines = sample(30);
    let (a, rest) = lines.split_at(lines.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    append(&log, a);
    run_tailer(data.path(), &log, |s| records(s) >= a.len() as u64);
    // Down while the apiserver writes more and rotates: the rest of the old file is in
    // the rotated backup, the new lines in a fresh audit.log.
    append(&log, b);
    std::fs::rename(&log, logs.path().join("audit-2026-01-01T00-01-00.000.log")).unwrap();
    append(&log, c);
    let total = lines.len() as u64;
    run_tailer(data.path(), &log, |s| records(s) >= total);
    let store = SqliteStore::open(data.path()).unwrap();
    let status = &store.clusters().unwrap()[0];
    assert_eq!(
        status.stats.records, total,
        "nothing lost: {:?}",
        status.stats
    );
    assert_eq!(status.stats.duplicates, 0, "nothing read twice");
    let mut reference = Pipeline::new(
        SqliteStore::open(tempfile::tempdir().unwrap().path()).unwrap(),
        PipelineConfig::default(),
    );
    for (i, l) in lines.iter().enumerate() {
        reference.push("lab", l, "ref", i as u64).unwrap();
    }
    reference.flush().unwrap();
    assert_eq!(status.stats.analysed, reference.totals()["lab"].analysed);
}
