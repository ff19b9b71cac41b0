//! Pod object versions: rebuild each stored body into a whole object and diff neighbours.
//!
//! Full bodies (responses, PUTs) replace the object; patches are applied the way the
//! apiserver's strategic merge does for the fields pods use: maps merge, `null` deletes,
//! lists of conditions and container statuses merge by their key, other lists replace.

use serde::Serialize;
use serde_json::{Map, Value};

use loupe_store::StoredVersion;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub ts: String,
    pub audit_id: String,
    pub verb: String,
    pub user: String,
    pub full: bool,
    pub changes: Vec<Change>,
    pub object: Value,
}

/// The merge key of a list field in a pod, as in the API's `patchMergeKey`.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "readinessGates" => Some("type"),
        "containerStatuses"
        | "initContainerStatuses"
        | "ephemeralContainerStatuses"
        | "containers"
        | "initContainers"
        | "volumes"
        | "env" => Some("name"),
        "podIPs" | "hostIPs" => Some("ip"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Applies a strategic-merge patch (the subset pods need) to `target`.
pub fn apply_patch(target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    for (key, pv) in p {
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (t.get_mut(list), pv) {
                cur.retain(|v| !del.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                t.remove(key);
            }
            Value::Object(_) => {
                let entry = t
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                apply_patch(entry, pv);
            }
            Value::Array(items) => match (merge_key(key), t.get_mut(key)) {
                (Some(mk), Some(Value::Array(cur))) => {
                    for item in items {
                        let id = item.get(mk);
                        match cur.iter_mut().find(|c| id.is_some() && c.get(mk) == id) {
                            Some(existing) => apply_patch(existing, item),
                            None => cur.push(item.clone()),
                        }
                    }
                }
                _ => {
                    t.insert(key.clone(), pv.clone());
                }
            },
            _ => {
                t.insert(key.clone(), pv.clone());
            }
        }
    }
}

/// Differences between two objects, as JSON paths (`status.conditions[Ready].status`).
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff_at("", None, old, new, &mut out);
    out
}

fn diff_at(path: &str, field: Option<&str>, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                let p = join(path, k);
                match b.get(k) {
                    Some(bv) => diff_at(&p, Some(k), av, bv, out),
                    None => out.push(Change {
                        path: p,
                        op: "remove",
                        from: Some(av.clone()),
                        to: None,
                    }),
                }
            }
            for (k, bv) in b {
                if !a.contains_key(k) {
                    out.push(Change {
                        path: join(path, k),
                        op: "add",
                        from: None,
                        to: Some(bv.clone()),
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if field.and_then(merge_key).is_some() => {
            let mk = field.and_then(merge_key).unwrap_or("name");
            let label = |v: &Value| v.get(mk).and_then(Value::as_str).unwrap_or("?").to_string();
            for av in a {
                let p = format!("{path}[{}]", label(av));
                match b.iter().find(|bv| bv.get(mk) == av.get(mk)) {
                    Some(bv) => diff_at(&p, None, av, bv, out),
                    None => out.push(Change {
                        path: p,
                        op: "remove",
                        from: Some(av.clone()),
                        to: None,
                    }),
                }
            }
            for bv in b {
                if !a.iter().any(|av| av.get(mk) == bv.get(mk)) {
                    out.push(Change {
                        path: format!("{path}[{}]", label(bv)),
                        op: "add",
                        from: None,
                        to: Some(bv.clone()),
                    });
                }
            }
        }
        _ if old != new => out.push(Change {
            path: path.to_string(),
            op: "replace",
            from: Some(old.clone()),
            to: Some(new.clone()),
        }),
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Fields that change on every write and say nothing about the pod.
fn strip_noise(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        meta.remove("generation");
    }
}

/// Rebuilds every version of a pod from its stored bodies, oldest first.
pub fn build(stored: &[StoredVersion]) -> Vec<Version> {
    let mut current = Value::Object(Map::new());
    let mut out = Vec::new();
    for s in stored {
        let Ok(body) = serde_json::from_str::<Value>(&s.body) else {
            continue;
        };
        let mut next = current.clone();
        if s.full {
            next = body;
        } else {
            apply_patch(&mut next, &body);
        }
        strip_noise(&mut next);
        let changes = diff(&current, &next);
        out.push(Version {
            ts: loupe_audit::format_micros(s.ts),
            audit_id: s.audit_id.clone(),
            verb: s.verb.clone(),
            user: s.user.clone(),
            full: s.full,
            changes,
            object: next.clone(),
        });
        current = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_conditions_by_type_and_deletes_nulls() {
        let mut pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}, "$deleteFromPrimitiveList/finalizers": ["x"]},
            "status": {"$setElementOrder/conditions": [], "conditions": [{"type": "Ready", "status": "True"}]}});
        let before = pod.clone();
        apply_patch(&mut pod, &patch);
        assert_eq!(pod["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(pod["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(
            pod["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        let changes = diff(&before, &pod);
        let paths: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.op)).collect();
        assert!(paths.contains(&("metadata.labels.a", "remove")));
        assert!(paths.contains(&("status.conditions[Ready].status", "replace")));
    }

    #[test]
    fn builds_versions_from_full_bodies_and_patches() {
        let v = |full: bool, body: &str| StoredVersion {
            ts: 1,
            audit_id: "a".into(),
            full,
            verb: "patch".into(),
            user: "u".into(),
            body: body.into(),
        };
        let versions = build(&[
            v(
                true,
                r#"{"metadata":{"name":"p","resourceVersion":"1"},"status":{"phase":"Pending"}}"#,
            ),
            v(false, r#"{"status":{"phase":"Running"}}"#),
        ]);
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[1].object["status"]["phase"], "Running");
        assert_eq!(versions[1].changes.len(), 1);
        assert_eq!(versions[1].changes[0].path, "status.phase");
    }
}
