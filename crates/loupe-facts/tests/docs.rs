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

/// `Fact::field` reads the JSON form without building it: it must agree with serde on
/// every key of every documented example (and say `None` for keys the JSON lacks).
#[test]
fn borrowed_fields_agree_with_the_json() {
    use loupe_facts::Field;
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/facts.md"))
        .expect("docs/facts.md is in the repository");
    let mut checked = 0;
    for block in doc.split("```json").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        let mut pending = String::new();
        for line in block.lines() {
            pending.push_str(line);
            let Ok(record) = serde_json::from_str::<FactRecord>(&pending) else {
                continue;
            };
            pending.clear();
            let json = serde_json::to_value(&record.fact).unwrap();
            for (key, value) in json.as_object().unwrap() {
                let want = match value {
                    serde_json::Value::String(s) => Some(Field::Str(s)),
                    serde_json::Value::Number(n) => Some(Field::Int(n.as_i64().unwrap())),
                    serde_json::Value::Bool(b) => Some(Field::Bool(*b)),
                    _ => Some(Field::Other),
                };
                assert_eq!(record.fact.field(key), want, "{key} of {json}");
                checked += 1;
            }
            for absent in ["reason", "message", "container", "node", "nothing"] {
                if json.get(absent).is_none() {
                    assert_eq!(record.fact.field(absent), None, "{absent} of {json}");
                }
            }
        }
    }
    assert!(checked > 100, "{checked} fields checked");
}
