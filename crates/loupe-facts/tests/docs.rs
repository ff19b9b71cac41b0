//! docs/facts.md is the public vocabulary: every example in it must read as a fact record,
//! and every fact type must have an example.

use loupe_facts::FactRecord;

#[test]
fn every_documented_example_is_a_valid_fact_record() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/facts.md"))
        .expect("docs/facts.md is in the repository");
    let mut seen = std::collections::BTreeSet::new();
    for block in doc.split("```json").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        let mut pending = String::new();
        for line in block.lines() {
            pending.push_str(line);
            if let Ok(record) = serde_json::from_str::<FactRecord>(&pending) {
                seen.insert(record.fact.type_name());
                let again = serde_json::to_value(&record).unwrap();
                let given: serde_json::Value = serde_json::from_str(&pending).unwrap();
                assert_eq!(again, given, "the example is exactly how Loupe writes it");
                pending.clear();
            }
        }
        assert!(pending.trim().is_empty(), "not a fact record: {pending}");
    }
    assert_eq!(seen.len(), 26, "one example per fact type: {seen:?}");
}
