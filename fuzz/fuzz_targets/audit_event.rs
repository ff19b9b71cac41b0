//! One audit event: decode, classify, observe. Must never panic, and the hand scanner
//! behind `decode` must agree with its meaning over `serde_json::Value` (the oracle the
//! crate's tests use).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/loupe-audit/tests/oracle/mod.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        oracle::check(text);
        if let Ok(event) = loupe_audit::decode(text) {
            let _ = event.target();
            let _ = loupe_facts::observe(&event);
        }
    }
});
