//! One audit event: decode, classify, observe. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(event) = loupe_audit::decode(text) {
            let _ = event.target();
            let _ = loupe_facts::observe(&event);
        }
    }
});
