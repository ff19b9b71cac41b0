//! A rule file (`--rules DIR`): any text is loaded or refused with its file, line and
//! problem, never a panic; the first bytes pick which built-in file it replaces, so
//! mutations of real rules are explored too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    static PACKS: std::sync::OnceLock<Vec<loupe_trace::Pack>> = std::sync::OnceLock::new();
    let packs = PACKS.get_or_init(loupe_trace::Pack::defaults);
    match loupe_diagnose::rules::load("fuzz.yaml", text, packs) {
        Ok(set) => assert!(!set.rules.is_empty()),
        Err(e) => assert!(e.line >= 1),
    }
});
