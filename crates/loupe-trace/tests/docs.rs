//! docs/spans.md shows every built-in pack as shipped.

#[test]
fn the_guide_holds_the_built_in_packs_verbatim() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spans.md"))
        .unwrap();
    for (file, text) in loupe_trace::DEFAULT_PACKS {
        assert!(
            doc.contains(text),
            "docs/spans.md does not hold {file} as shipped; regenerate that section"
        );
    }
}
