//! The kubelet states a pull's own time and its wait; both must read for pulls of more
//! than a minute (`2m13.4s`), which a single-unit pattern once missed.

use loupe_facts::FactRecord;
use loupe_trace::{evaluate, Action, Pack};

fn record(ts: i64, id: &str, fact: serde_json::Value) -> FactRecord {
    let mut v = fact;
    v["ts"] = ts.into();
    v["audit_id"] = id.into();
    v["seq"] = 0.into();
    v["late"] = false.into();
    serde_json::from_value(v).unwrap()
}

fn event(reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"type": "event", "api": "v1", "reason": reason, "message": message,
        "event_type": "Normal", "component": "kubelet", "container": "app", "count": 1, "repeat": false})
}

#[test]
fn pulls_longer_than_a_minute_are_measured() {
    let s = 1_000_000i64;
    let facts = vec![
        record(0, "a", serde_json::json!({"type": "pod_created", "namespace": "ns", "name": "p",
            "scheduler": "default-scheduler", "containers": [{"name": "app", "image": "reg/app:1",
            "init": false, "sidecar": false, "probes": [], "post_start": false, "pre_stop": false,
            "privileged": false}], "volumes": [], "readiness_gates": [], "host_network": false,
            "by": {"user": "u", "component": "controller"}})),
        record(10 * s, "b", event("Pulling", "Pulling image \"reg/app:1\"")),
        record(150 * s, "c", event("Pulled", "Successfully pulled image \"reg/app:1\" in 2m13.4s (2m20s including waiting). Image size: 2147483648 bytes.")),
    ];
    let pack = Pack::defaults()
        .into_iter()
        .find(|p| p.def.action == Action::Create)
        .unwrap();
    let trace = &evaluate(&pack, &facts, 200 * s)[0];
    let span = |name: &str| {
        trace
            .spans
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(span("image_transfer").duration_us, 133_400_000);
    assert_eq!(span("image_queue").duration_us, 6_600_000);
}
