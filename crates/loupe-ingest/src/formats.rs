//! Record shapes other than a plain audit event, adapted to one.
//!
//! `AdmissionReview` records (as tools like kube-audit-rest log them) carry the request an
//! admission webhook saw: the object, the operation and the user, but no timestamp; the
//! object's own time (an Event's `lastTimestamp`, else `creationTimestamp`) stands in.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Whether a record is an `AdmissionReview`, judged from its first bytes only.
pub fn is_admission_review(record: &str) -> bool {
    let head = &record.as_bytes()[..record.len().min(96)];
    head.windows(15).any(|w| w == b"AdmissionReview")
}

#[derive(Deserialize)]
struct Review<'a> {
    #[serde(borrow)]
    request: ReviewRequest<'a>,
}

#[derive(Deserialize)]
struct GroupVersionResource<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    version: Cow<'a, str>,
    #[serde(borrow, default)]
    resource: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewRequest<'a> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    resource: GroupVersionResource<'a>,
    #[serde(borrow, default)]
    sub_resource: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Cow<'a, str>,
    #[serde(borrow)]
    operation: Cow<'a, str>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ObjectTimes<'a> {
    #[serde(borrow, default)]
    metadata: Option<MetaTimes<'a>>,
    #[serde(borrow, default)]
    last_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_time: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaTimes<'a> {
    #[serde(borrow, default)]
    creation_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRefOut<'a> {
    resource: &'a str,
    namespace: &'a str,
    name: &'a str,
    api_group: &'a str,
    api_version: &'a str,
    subresource: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditOut<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: &'static str,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: &'static str,
    verb: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a RawValue>,
    object_ref: ObjectRefOut<'a>,
    response_status: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<&'a RawValue>,
    request_received_timestamp: &'a str,
    stage_timestamp: &'a str,
    annotations: serde_json::Value,
}

/// Rewrites an `AdmissionReview` as the audit event of the request it reviewed.
pub fn admission_review_to_audit(record: &str) -> Result<String, String> {
    let review: Review = serde_json::from_str(record).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    let r = review.request;
    let body = r.object.or(r.old_object);
    let times: ObjectTimes = match body {
        Some(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
        None => ObjectTimes::default(),
    };
    let meta = times.metadata.unwrap_or_default();
    let ts = times
        .last_timestamp
        .or(times.event_time)
        .or(meta.creation_timestamp)
        .ok_or_else(|| format!("AdmissionReview {} carries no time (object has no timestamp)", r.uid))?;
    let name = if r.name.is_empty() { meta.name.unwrap_or_default() } else { r.name };
    let verb = r.operation.to_ascii_lowercase();
    let code = if verb == "create" { 201 } else { 200 };
    let out = AuditOut {
        kind: "Event",
        api_version: "audit.k8s.io/v1",
        level: "RequestResponse",
        audit_id: &r.uid,
        stage: "ResponseComplete",
        verb,
        user: r.user_info,
        object_ref: ObjectRefOut {
            resource: &r.resource.resource,
            namespace: &r.namespace,
            name: &name,
            api_group: &r.resource.group,
            api_version: &r.resource.version,
            subresource: &r.sub_resource,
        },
        response_status: serde_json::json!({"metadata": {}, "code": code}),
        request_object: r.object,
        response_object: r.object,
        request_received_timestamp: &ts,
        stage_timestamp: &ts,
        annotations: serde_json::json!({"loupe.dev/source": "AdmissionReview"}),
    };
    serde_json::to_string(&out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapts_an_admission_review_of_an_event() {
        let review = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"df41","kind":{"group":"","version":"v1","kind":"Event"},"resource":{"group":"","version":"v1","resource":"events"},"name":"coredns.172c","namespace":"kube-system","operation":"CREATE","userInfo":{"username":"system:node:n1"},"object":{"kind":"Event","apiVersion":"v1","metadata":{"name":"coredns.172c","creationTimestamp":"2022-11-30T17:46:51Z"},"involvedObject":{"kind":"Pod","namespace":"kube-system","name":"coredns","uid":"0108"},"reason":"SandboxChanged","message":"Pod sandbox changed, it will be killed and re-created.","source":{"component":"kubelet","host":"n1"},"lastTimestamp":"2022-11-30T17:46:37Z","count":1,"type":"Normal"}}}"#;
        assert!(is_admission_review(review));
        let audit = admission_review_to_audit(review).unwrap();
        let e = loupe_audit::decode(&audit).unwrap();
        assert_eq!(e.verb, "create");
        assert_eq!(e.object_ref.as_ref().unwrap().resource, "events");
        assert_eq!(e.time(), loupe_audit::parse_time_micros("2022-11-30T17:46:37Z"));
        assert!(!is_admission_review(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1"}"#));
        assert!(admission_review_to_audit(r#"{"kind":"AdmissionReview"}"#).is_err());
    }
}
