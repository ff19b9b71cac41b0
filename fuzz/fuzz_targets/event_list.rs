//! A webhook body: split into items, each decoded.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(items) = loupe_audit::decode_event_list(text) {
            for item in items {
                let _ = loupe_audit::decode(item.get());
            }
        }
    }
});
