//! Lines through the whole processor: ordering, dedup, pod state. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = loupe_timeline::Processor::new(loupe_timeline::Config::new("fuzz"));
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if let Ok(text) = std::str::from_utf8(line) {
            p.push(text, "fuzz", i as u64);
        }
    }
    p.flush();
    let out = p.take_output();
    assert!(out.stats.records >= out.stats.malformed);
});
