//! What the live-server tests share: the tools they need, free ports, daemons that stop
//! with the test, and a loopback capture by tcpdump that is known to be live before the
//! traffic starts and known to have lost nothing when it stops.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether every program in `tools` is installed. Without one the test says SKIPPED,
/// unless LOUPE_REQUIRE_LIVE_SERVERS is set (scripts/test installs them and sets it).
pub fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find(t).is_none())
        .collect();
    available(
        missing.is_empty(),
        &format!("{missing:?} not installed (scripts/test installs them)"),
    )
}

/// `ok`, or else SKIPPED saying what is missing (a failure when LOUPE_REQUIRE_LIVE_SERVERS
/// is set).
pub fn available(ok: bool, missing: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("LOUPE_REQUIRE_LIVE_SERVERS").is_none(),
            "LOUPE_REQUIRE_LIVE_SERVERS is set but: {missing}"
        );
        eprintln!("SKIPPED: {missing}");
    }
    ok
}

/// A program on PATH, or in the server directories Debian uses.
pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .chain(postgres_bins())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// `/usr/lib/postgresql/<version>/bin`, newest first.
fn postgres_bins() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs
}

pub fn tool(name: &str) -> Command {
    Command::new(find(name).unwrap_or_else(|| PathBuf::from(name)))
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("bound").port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process, killed when the test ends (however it ends).
pub struct Daemon(pub Child);

impl Daemon {
    pub fn start(cmd: &mut Command, log: &Path) -> Daemon {
        let out = std::fs::File::create(log).expect("server log");
        let err = out.try_clone().expect("server log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a client to completion; its stdout (it must succeed).
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a client with `input` on its stdin; (stdout, stderr), whatever its exit status.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> (String, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("client output");
    let _ = writer.join();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// tcpdump on the loopback interface, filtered to some ports.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing TCP on `ports` into `file`; returns once packets are being written.
    pub fn start(file: PathBuf, ports: &[u16]) -> Capture {
        // A port nobody listens on: connecting to it makes a SYN and a RST, which show
        // the capture is live (tcpdump says "listening" a little before it is).
        let probe = free_port();
        let filter = ports
            .iter()
            .chain([&probe])
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = tool("tcpdump")
            // Root keeps writing the file in a private directory; immediate delivery and
            // a big kernel ring (frames of the snap length: loopback's 64 KiB packets)
            // keep bursts from being dropped.
            .args(["-i", "lo", "-Z", "root", "-B", "262144", "--immediate-mode"])
            .args(["-U", "-s", "65600", "-w"])
            .arg(&file)
            .arg(&filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcpdump");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let capture = Capture {
            child: Some(child),
            file,
            stderr,
            reader: Some(reader),
        };
        let start = Instant::now();
        // The pcap header alone is 24 bytes: more means the probe's packets arrived.
        while std::fs::metadata(&capture.file).map_or(0, |m| m.len()) <= 24 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "tcpdump captured nothing: {}",
                capture.stderr()
            );
            let _ = TcpStream::connect(("127.0.0.1", probe));
            std::thread::sleep(Duration::from_millis(50));
        }
        capture
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the capture; the file, or why it is incomplete (the kernel dropped packets).
    pub fn stop(mut self) -> Result<PathBuf, String> {
        std::thread::sleep(Duration::from_millis(300));
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let report = self.stderr();
        let dropped = report
            .lines()
            .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        match dropped {
            Some(0) => Ok(self.file.clone()),
            _ => Err(format!("the capture is incomplete: {report}")),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One live test at a time: four servers, their load and four captures at once on two
/// cores made the kernel drop packets.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `traffic` under a capture of `ports` until a capture is complete: a loaded
/// machine can still make tcpdump drop packets, which is the capture's failure, not the
/// engine's, so the traffic runs again (3 tries; `traffic` resets what it compares with).
/// The capture file and what `traffic` returned.
pub fn recorded<T>(dir: &Path, ports: &[u16], mut traffic: impl FnMut() -> T) -> (PathBuf, T) {
    for attempt in 1..=3 {
        let capture = Capture::start(dir.join(format!("capture-{attempt}.pcap")), ports);
        let said = traffic();
        match capture.stop() {
            Ok(file) => return (file, said),
            Err(why) if attempt < 3 => eprintln!("capture {attempt} redone: {why}"),
            Err(why) => panic!("no complete capture in 3 tries, so nothing to compare: {why}"),
        }
    }
    unreachable!("the last try returns or panics")
}

/// `loupe pcap FILE -o json`: the report, which must have read the whole file.
pub fn analyze(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["pcap", "-o", "json"])
        .arg(file)
        .output()
        .expect("running loupe pcap");
    assert!(
        out.status.success(),
        "loupe pcap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("loupe pcap -o json");
    assert!(report.get("damaged").is_none(), "{}", report["damaged"]);
    // Segments can reach the capture out of order even on loopback: with two CPUs,
    // tcpdump sees each CPU's packets in its own order when the machine is loaded (a CI
    // run hit it). Reassembly by sequence number puts them back, so the counts the tests
    // compare must come out exact all the same.
    let reordered = report["out_of_order_segments"].as_u64().unwrap_or(0);
    if reordered > 0 {
        eprintln!(
            "{}: {reordered} segments captured out of order",
            file.display()
        );
    }
    report
}

/// The records of a report counted by `key`.
pub fn count(report: &Value, key: impl Fn(&Value) -> String) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in report["records"].as_array().expect("records") {
        assert!(
            r.get("partial").is_none(),
            "every request was captured: {r}"
        );
        *counts.entry(key(r)).or_default() += 1;
    }
    counts
}

/// `"text: 123"` in a client's report: the number.
pub fn number_after(text: &str, label: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(label)?;
        let word = rest.split_whitespace().next()?;
        word.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()
    })
}

pub fn add(counts: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    if n > 0 {
        *counts.entry(key.to_string()).or_default() += n;
    }
}
