//! An SLO config (`--slo FILE`): any text is loaded or refused with its file, line and
//! problem, never a panic; a loaded one gives every pod shape a deadline within its clamp.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match loupe_slo::Slo::load("fuzz.yaml", text) {
        Ok(slo) => {
            let pod = loupe_slo::PodShape {
                namespace: "ns".into(),
                cpu: data.len() as f64 / 7.0,
                containers: data.len() % 13,
                pvcs: data.len() % 3,
                ..loupe_slo::PodShape::default()
            };
            for profile in [loupe_slo::Profile::Delivery, loupe_slo::Profile::Sig] {
                let d = slo.deadline(&pod, profile);
                assert!(d.deadline_us >= 0, "{d:?}");
            }
        }
        Err(e) => assert!(e.line >= 1),
    }
});
