//! docs/simulator.md lists every code and every profile the simulator has.

use loupe_sim::{CODES, PROFILES};

#[test]
fn the_guide_lists_every_code_and_profile() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/simulator.md"
    ))
    .unwrap();
    for c in CODES {
        let row = format!(
            "| `{}` | {} | {} |",
            c.name,
            format!("{:?}", c.lifecycle).to_lowercase(),
            c.stage
        );
        assert!(
            doc.contains(&row),
            "docs/simulator.md lacks the row for {}",
            c.name
        );
    }
    for p in PROFILES {
        assert!(
            doc.contains(&format!("| `{}` | {} |", p.name, p.about)),
            "docs/simulator.md lacks profile {}",
            p.name
        );
    }
}
