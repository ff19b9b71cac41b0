//! A pack with a mistake is refused with the file, the line and the problem.

use loupe_trace::Pack;

fn error(text: &str) -> String {
    Pack::load("my-spans.yaml", text)
        .expect_err("refused")
        .to_string()
}

const GOOD: &str = "action: create
root:
  name: delivery
  start: {fact: pod_created}
  end: {fact: condition, condition: Ready, status: \"True\"}
  children:
    - name: schedule
      owner: platform
      start: {fact: pod_created}
      end: {fact: bound}
";

#[test]
fn a_good_pack_loads_and_lists_its_spans() {
    let pack = Pack::load("my-spans.yaml", GOOD).unwrap();
    assert_eq!(pack.span_names(), ["delivery", "delivery/schedule"]);
    for p in Pack::defaults() {
        assert!(p.span_names().len() >= 5, "{}", p.file);
    }
}

#[test]
fn mistakes_name_the_file_line_and_problem() {
    let e = error(&GOOD.replace("fact: bound", "fact: bonud"));
    assert!(
        e.starts_with("my-spans.yaml:7: span \"schedule\": unknown fact type \"bonud\""),
        "{e}"
    );
    let e = error(&GOOD.replace(
        "end: {fact: bound}",
        "end: {fact: event, message: '/(unclosed/'}",
    ));
    assert!(
        e.starts_with("my-spans.yaml:7:") && e.contains("bad regex"),
        "{e}"
    );
    let e = error(&GOOD.replace("      end: {fact: bound}\n", ""));
    assert!(
        e.contains("span \"schedule\": give `start` and `end`, or `point`"),
        "{e}"
    );
    let e = error(&GOOD.replace("owner: platform", "owner: everyone"));
    assert!(
        e.starts_with("my-spans.yaml:8:") && e.contains("unknown variant `everyone`"),
        "{e}"
    );
    let e = error(&GOOD.replace(
        "end: {fact: bound}",
        "end: {fact: event, container: $container}",
    ));
    assert!(
        e.contains("$container has no value for this span (check `per:`)"),
        "{e}"
    );
    let e = error(&GOOD.replace("    - name: schedule", "    - name: delivery"));
    assert!(e.contains("the name is used twice"), "{e}");
    let e = error("action: create\nroot: [");
    assert!(e.starts_with("my-spans.yaml:2:"), "{e}");
}
