//! `loupe pcap FILE` as a user runs it: records as a table and as JSON, and a clear
//! error for a file that is not a capture. Uses ../shared/corpus (SKIPPED without it,
//! unless LOUPE_REQUIRE_CORPUS is set).

mod common;

use std::path::{Path, PathBuf};

use common::{json, loupe};

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcap");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("LOUPE_REQUIRE_CORPUS").is_none(),
        "the corpus is not at {}",
        dir.display()
    );
    eprintln!("SKIPPED: the shared corpus is not at {}", dir.display());
    None
}

#[test]
fn pcap_prints_request_records_and_refuses_what_is_not_a_capture() {
    let Some(dir) = corpus() else { return };
    let none = Path::new("unused");
    let file = dir.join("deepflow/http/sw8.pcap");
    let report = json(none, &["pcap", file.to_str().unwrap(), "-o", "json"]);
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for r in records {
        assert_eq!(
            (
                r["method"].as_str(),
                r["route"].as_str(),
                r["status"].as_u64()
            ),
            (Some("POST"), Some("/createOrder"), Some(200))
        );
        assert_eq!(r["server"], "10.100.18.175:20880");
        assert!(r["response_end"].as_i64() >= r["request_start"].as_i64());
    }
    assert_eq!(report["frames"], 20);
    let table = loupe(none, &["pcap", file.to_str().unwrap()]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("/createOrder") && text.contains("3 records"),
        "{text}"
    );

    let bad = dir.join("pcap-parser-formats/err-eof.bin");
    let out = loupe(none, &["pcap", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("err-eof.bin") && err.contains("not a pcap"),
        "{err}"
    );
}
