//! The files shipped in deploy/ are what kube-apiserver will read: check their shape.

fn read(name: &str) -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/").to_string() + name;
    let text = std::fs::read_to_string(&path).expect("deploy/ is in the repository");
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_audit_policy_logs_what_loupe_reads() {
    let p = read("audit-policy.yaml");
    assert_eq!(
        p["apiVersion"], "audit.k8s.io/v1",
        "v1beta1 does not load on Kubernetes 1.24+"
    );
    assert_eq!(p["kind"], "Policy");
    let rules = p["rules"].as_array().unwrap();
    let level_of = |group: &str, resource: &str| {
        rules.iter().find_map(|r| {
            let hit = r["resources"].as_array()?.iter().any(|g| {
                g["group"].as_str().unwrap_or("") == group
                    && g["resources"]
                        .as_array()
                        .is_some_and(|rs| rs.iter().any(|x| x == resource))
            });
            hit.then(|| r["level"].as_str().unwrap_or("").to_string())
        })
    };
    assert_eq!(level_of("", "pods").as_deref(), Some("RequestResponse"));
    assert_eq!(level_of("", "pods/status").as_deref(), Some("Request"));
    assert_eq!(level_of("", "pods/binding").as_deref(), Some("Request"));
    assert_eq!(
        level_of("events.k8s.io", "events").as_deref(),
        Some("Request"),
        "the scheduler's events"
    );
    assert_eq!(level_of("", "events").as_deref(), Some("Request"));
}

#[test]
fn the_webhook_kubeconfig_points_at_the_receiver() {
    let k = read("audit-webhook-kubeconfig.yaml");
    let server = k["clusters"][0]["cluster"]["server"].as_str().unwrap();
    assert!(
        server.starts_with("https://") && server.contains("/audit/"),
        "{server}"
    );
    let user = &k["users"][0]["user"];
    assert!(user["client-certificate"].is_string() && user["client-key"].is_string());
    assert_eq!(k["current-context"], k["contexts"][0]["name"]);
}
