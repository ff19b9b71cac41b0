//! What `loupe_audit::decode` means, written over `serde_json::Value`: the hand scanner
//! must agree with it on every input. Shared by `tests/decode.rs` and the `audit_event`
//! fuzz target.

use loupe_audit::{decode, parse_time_micros, AuditEvent, Level, Stage};
use serde_json::Value;

/// A pod body read by the scanner (`Pod::from_json`) against serde's derive: whatever the
/// scanner accepts, serde reads the same. Returns whether the scanner accepted it.
pub fn check_pod(body: &str) -> bool {
    use loupe_audit::objects::Pod;
    agrees(
        body,
        Pod::from_json(body),
        serde_json::from_str::<Pod>(body),
    )
}

/// The same for Event bodies, core `v1` and `events.k8s.io/v1`.
pub fn check_events(body: &str) -> (bool, bool) {
    use loupe_audit::objects::{ApiEvent, CoreEvent};
    (
        agrees(
            body,
            CoreEvent::from_json(body),
            serde_json::from_str::<CoreEvent>(body),
        ),
        agrees(
            body,
            ApiEvent::from_json(body),
            serde_json::from_str::<ApiEvent>(body),
        ),
    )
}

fn agrees<T: std::fmt::Debug, E: std::fmt::Display>(
    body: &str,
    ours: Result<T, loupe_audit::DecodeError>,
    theirs: Result<T, E>,
) -> bool {
    let Ok(ours) = ours else {
        return false;
    };
    match theirs {
        Ok(theirs) => assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{body}"),
        Err(e) => panic!("accepted a body serde refuses ({e}): {body:?}"),
    }
    true
}

/// Decodes `text` both ways and panics where they disagree; its bodies are also read as
/// pods both ways.
pub fn check(text: &str) {
    let decoded = decode(text);
    if let Ok(event) = &decoded {
        for body in [event.request_object, event.response_object]
            .into_iter()
            .flatten()
        {
            check_pod(body.get());
            check_events(body.get());
        }
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        assert!(decoded.is_err(), "accepted invalid JSON: {text:?}");
        return;
    }
    // Valid syntax that serde_json still cannot hold as a value (a number out of range,
    // a lone surrogate in an escape): only the syntax is compared.
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let want = if repeats_a_known_field(text) {
        None
    } else {
        expected(&value)
    };
    match (&decoded, want) {
        (Ok(event), Some(want)) => compare(event, &want, text),
        (Err(_), None) => {}
        (Ok(_), None) => panic!("accepted what is not an audit event: {text:?}"),
        (Err(e), Some(_)) => panic!("refused ({e}): {text:?}"),
    }
}

/// The fields `decode` reads: at the top, and inside the objects it reads.
const ENVELOPE: [&str; 18] = [
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "userAgent",
    "user",
    "impersonatedUser",
    "objectRef",
    "responseStatus",
    "requestObject",
    "responseObject",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "timestamp",
    "metadata",
];
const NESTED: [(&str, &[&str]); 5] = [
    ("user", &["username"]),
    ("impersonatedUser", &["username"]),
    (
        "objectRef",
        &[
            "resource",
            "namespace",
            "name",
            "uid",
            "apiGroup",
            "apiVersion",
            "subresource",
        ],
    ),
    ("responseStatus", &["code", "status", "reason", "message"]),
    ("metadata", &["creationTimestamp"]),
];

/// An object's members in order, duplicates kept (a `Value` keeps only the last).
struct Pairs(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Pairs, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Pairs(members))
            }
        }
        d.deserialize_map(Members)
    }
}

fn repeats(members: &[(String, Box<serde_json::value::RawValue>)], known: &[&str]) -> bool {
    known
        .iter()
        .any(|k| members.iter().filter(|(m, _)| m == k).count() > 1)
}

/// Whether a field `decode` reads is given twice: then it must refuse the event.
fn repeats_a_known_field(text: &str) -> bool {
    let Ok(Pairs(top)) = serde_json::from_str::<Pairs>(text) else {
        return false;
    };
    repeats(&top, &ENVELOPE)
        || top.iter().any(|(key, raw)| {
            NESTED.iter().any(|(name, known)| {
                name == key
                    && serde_json::from_str::<Pairs>(raw.get())
                        .is_ok_and(|Pairs(inner)| repeats(&inner, known))
            })
        })
}

#[derive(Debug, Default)]
struct Expected {
    kind: Option<String>,
    api_version: Option<String>,
    level: String,
    audit_id: String,
    stage: String,
    strings: [String; 3],
    username: String,
    impersonated: Option<String>,
    object_ref: Option<[String; 7]>,
    status: Option<(u16, [String; 3])>,
    request_object: Option<Value>,
    response_object: Option<Value>,
    ts: i64,
    received: i64,
}

/// `None` where absence and `null` mean no value; `Err` for any other type.
fn opt_str(v: Option<&Value>) -> Result<Option<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

fn text(v: Option<&Value>) -> Result<String, ()> {
    Ok(opt_str(v)?.unwrap_or_default())
}

fn object(v: Option<&Value>) -> Result<Option<&serde_json::Map<String, Value>>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(()),
    }
}

fn required(m: &serde_json::Map<String, Value>, key: &str) -> Result<String, ()> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(()),
    }
}

fn username(v: Option<&Value>) -> Result<Option<String>, ()> {
    object(v)?.map(|u| text(u.get("username"))).transpose()
}

fn expected(value: &Value) -> Option<Expected> {
    let parse = || -> Result<Expected, ()> {
        let m = value.as_object().ok_or(())?;
        let kind = opt_str(m.get("kind"))?;
        if kind.as_deref().is_some_and(|k| k != "Event") {
            return Err(());
        }
        let object_ref = object(m.get("objectRef"))?
            .map(|r| -> Result<[String; 7], ()> {
                let f = |k| text(r.get(k));
                Ok([
                    f("resource")?,
                    f("namespace")?,
                    f("name")?,
                    f("uid")?,
                    f("apiGroup")?,
                    f("apiVersion")?,
                    f("subresource")?,
                ])
            })
            .transpose()?;
        let status = object(m.get("responseStatus"))?
            .map(|s| -> Result<(u16, [String; 3]), ()> {
                let code = match s.get("code") {
                    None | Some(Value::Null) => 0,
                    Some(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or(())?,
                };
                let f = |k| text(s.get(k));
                Ok((code, [f("status")?, f("reason")?, f("message")?]))
            })
            .transpose()?;
        let body = |k: &str| match m.get(k) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
        };
        let created = match object(m.get("metadata"))? {
            Some(meta) => opt_str(meta.get("creationTimestamp"))?,
            None => None,
        };
        let stage_ts = opt_str(m.get("stageTimestamp"))?;
        let old_ts = opt_str(m.get("timestamp"))?;
        let received = opt_str(m.get("requestReceivedTimestamp"))?;
        let ts = stage_ts
            .or(old_ts)
            .or(created)
            .and_then(|t| parse_time_micros(&t))
            .ok_or(())?;
        Ok(Expected {
            api_version: opt_str(m.get("apiVersion"))?,
            level: required(m, "level")?,
            audit_id: required(m, "auditID")?,
            stage: required(m, "stage")?,
            strings: [
                text(m.get("requestURI"))?,
                text(m.get("verb"))?,
                text(m.get("userAgent"))?,
            ],
            username: username(m.get("user"))?.unwrap_or_default(),
            impersonated: username(m.get("impersonatedUser"))?,
            object_ref,
            status,
            request_object: body("requestObject"),
            response_object: body("responseObject"),
            received: received.and_then(|t| parse_time_micros(&t)).unwrap_or(ts),
            ts,
            kind,
        })
    };
    parse().ok()
}

fn compare(e: &AuditEvent<'_>, want: &Expected, text: &str) {
    let body = |b: Option<loupe_audit::Body<'_>>| {
        b.map(|b| serde_json::from_str::<Value>(b.get()).expect("a body is one JSON value"))
    };
    let object_ref = e.object_ref.as_ref().map(|r| {
        [
            &r.resource,
            &r.namespace,
            &r.name,
            &r.uid,
            &r.api_group,
            &r.api_version,
            &r.subresource,
        ]
        .map(|s| s.to_string())
    });
    let status = e.response_status.as_ref().map(|s| {
        (
            s.code,
            [&s.status, &s.reason, &s.message].map(|s| s.to_string()),
        )
    });
    assert_eq!(e.kind.as_deref(), want.kind.as_deref(), "{text}");
    assert_eq!(
        e.api_version.as_deref(),
        want.api_version.as_deref(),
        "{text}"
    );
    assert_eq!(e.level, Level::from_name(&want.level), "{text}");
    assert_eq!(e.audit_id, want.audit_id, "{text}");
    assert_eq!(e.stage, Stage::from_name(&want.stage), "{text}");
    assert_eq!(
        [&e.request_uri, &e.verb, &e.user_agent].map(|s| s.to_string()),
        want.strings,
        "{text}"
    );
    assert_eq!(e.user.username, want.username, "{text}");
    assert_eq!(
        e.impersonated_user.as_ref().map(|u| u.username.to_string()),
        want.impersonated,
        "{text}"
    );
    assert_eq!(object_ref, want.object_ref, "{text}");
    assert_eq!(status, want.status, "{text}");
    assert_eq!(body(e.request_object), want.request_object, "{text}");
    assert_eq!(body(e.response_object), want.response_object, "{text}");
    assert_eq!(e.time(), Some(want.ts), "{text}");
    assert_eq!(e.received_time(), Some(want.received), "{text}");
}
