//! `--faults CODE=RATE,…`: any text is accepted or refused with an error, never a panic,
//! and an accepted mix always validates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mix) = loupe_sim::FaultMix::parse(text) {
            assert!(mix.check().is_ok());
            let mut rng = loupe_sim::rng::Rng::new(data.len() as u64);
            for life in [loupe_sim::Lifecycle::Create, loupe_sim::Lifecycle::Delete, loupe_sim::Lifecycle::Upgrade] {
                assert_eq!(mix.draw(&mut rng, life).info().lifecycle, life);
            }
        }
    }
});
