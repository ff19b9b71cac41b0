//! `docs/diagnosis.md` lists every code of the built-in rules.

use loupe_diagnose::RuleBook;

#[test]
fn the_docs_list_every_code() {
    let docs = include_str!("../../../docs/diagnosis.md");
    for c in RuleBook::defaults().codes() {
        let row = format!("| {} | `{}` |", c.lifecycle.as_str(), c.code);
        assert!(docs.contains(&row), "docs/diagnosis.md lacks {row}");
    }
}
