use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::target::Target;
use crate::time::{parse_time_micros, Micros};

/// Why an input could not be read as an audit event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an audit event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not an audit event: kind is {0:?}, expected \"Event\"")]
    WrongKind(String),
    #[error("audit event {audit_id} has no usable timestamp")]
    NoTimestamp { audit_id: String },
}

/// Audit level the event was recorded at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
    #[serde(other)]
    Unknown,
}

/// The stage of request handling that produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
    #[serde(other)]
    Unknown,
}

impl Stage {
    /// Only completed (or panicked) requests carry an outcome worth analysing.
    pub fn is_final(self) -> bool {
        matches!(self, Stage::ResponseComplete | Stage::Panic)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
            Stage::Unknown => "Unknown",
        }
    }
}

/// The requesting user. Only the name is read: groups and extras are skipped unbuilt.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserInfo<'a> {
    #[serde(borrow, default)]
    pub username: Cow<'a, str>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef<'a> {
    #[serde(borrow, default)]
    pub resource: Cow<'a, str>,
    #[serde(borrow, default)]
    pub namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub uid: Cow<'a, str>,
    #[serde(borrow, default)]
    pub api_group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub api_version: Cow<'a, str>,
    #[serde(borrow, default)]
    pub subresource: Cow<'a, str>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseStatus<'a> {
    #[serde(default)]
    pub code: u16,
    #[serde(borrow, default)]
    pub status: Cow<'a, str>,
    #[serde(borrow, default)]
    pub reason: Cow<'a, str>,
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
struct OldMetadata<'a> {
    #[serde(borrow, rename = "creationTimestamp")]
    creation_timestamp: Option<Cow<'a, str>>,
}

/// One audit event, borrowing from the line it was read from.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent<'a> {
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub api_version: Option<Cow<'a, str>>,
    pub level: Level,
    #[serde(borrow, rename = "auditID")]
    pub audit_id: Cow<'a, str>,
    pub stage: Stage,
    #[serde(borrow, default, rename = "requestURI")]
    pub request_uri: Cow<'a, str>,
    #[serde(borrow, default)]
    pub verb: Cow<'a, str>,
    #[serde(borrow, default)]
    pub user: UserInfo<'a>,
    #[serde(borrow, default)]
    pub impersonated_user: Option<UserInfo<'a>>,
    #[serde(borrow, default)]
    pub user_agent: Cow<'a, str>,
    #[serde(borrow, default)]
    pub object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow, default)]
    pub response_status: Option<ResponseStatus<'a>>,
    #[serde(borrow, default)]
    pub request_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub response_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    request_received_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stage_timestamp: Option<Cow<'a, str>>,
    /// Pre-v1 files (2017–2018) carry `timestamp` and `metadata.creationTimestamp` instead.
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    metadata: Option<OldMetadata<'a>>,
    /// The audit clock of this event, computed once by [`decode`].
    #[serde(skip)]
    ts: Micros,
}

/// Decodes one audit event. Bodies are kept raw; see [`AuditEvent::request`].
pub fn decode(input: &str) -> Result<AuditEvent<'_>, DecodeError> {
    let mut event: AuditEvent<'_> = serde_json::from_str(input)?;
    if let Some(kind) = &event.kind {
        if kind != "Event" {
            return Err(DecodeError::WrongKind(kind.to_string()));
        }
    }
    match event.parse_time() {
        Some(ts) => event.ts = ts,
        None => {
            return Err(DecodeError::NoTimestamp {
                audit_id: event.audit_id.to_string(),
            })
        }
    }
    Ok(event)
}

#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// Splits an `EventList` (the audit webhook's POST body) into its raw items, so that one bad
/// item can be reported without losing the batch.
pub fn decode_event_list(input: &str) -> Result<Vec<&RawValue>, DecodeError> {
    let list: EventList<'_> = serde_json::from_str(input)?;
    match list.kind.as_deref() {
        None | Some("EventList") => Ok(list.items),
        Some(other) => Err(DecodeError::WrongKind(other.to_string())),
    }
}

impl<'a> AuditEvent<'a> {
    /// The audit clock: when the apiserver reached this stage, in µs.
    pub fn time(&self) -> Option<Micros> {
        Some(self.ts)
    }

    fn parse_time(&self) -> Option<Micros> {
        self.stage_timestamp
            .as_deref()
            .or(self.timestamp.as_deref())
            .or_else(|| self.metadata.as_ref()?.creation_timestamp.as_deref())
            .and_then(parse_time_micros)
    }

    /// When the request reached the apiserver; falls back to [`AuditEvent::time`].
    pub fn received_time(&self) -> Option<Micros> {
        self.request_received_timestamp
            .as_deref()
            .and_then(parse_time_micros)
            .or(Some(self.ts))
    }

    pub fn target(&self) -> Target {
        Target::of(self)
    }

    /// HTTP status of the response; 0 when the event has none (e.g. `RequestReceived`).
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.code())
    }

    /// The user the request acted as: the impersonated one if any.
    pub fn acting_user(&self) -> &str {
        match &self.impersonated_user {
            Some(u) if !u.username.is_empty() => &u.username,
            _ => &self.user.username,
        }
    }

    /// Decodes the request body into `T`. `None` when the event has no body.
    pub fn request<T: Deserialize<'a>>(&self) -> Option<Result<T, serde_json::Error>> {
        self.request_object
            .map(|raw| serde_json::from_str(raw.get()))
    }

    /// Decodes the response body into `T`. `None` when the event has no body.
    pub fn response<T: Deserialize<'a>>(&self) -> Option<Result<T, serde_json::Error>> {
        self.response_object
            .map(|raw| serde_json::from_str(raw.get()))
    }

    /// Decodes a body into an owned value; for callers that keep it beyond the input line.
    pub fn response_owned<T: DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        self.response_object
            .map(|raw| serde_json::from_str(raw.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET_PATCH: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"f3e1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/oom-7d/status","verb":"patch","user":{"username":"system:node:worker-node-1","groups":["system:nodes","system:authenticated"]},"sourceIPs":["10.146.0.8"],"userAgent":"kubelet/v1.30.12 (linux/amd64) kubernetes/d5c6cb5","objectRef":{"resource":"pods","namespace":"default","name":"oom-7d","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":200},"requestObject":{"metadata":{"uid":"u-1"},"status":{"phase":"Running"}},"requestReceivedTimestamp":"2025-09-03T12:55:44.819014Z","stageTimestamp":"2025-09-03T12:55:44.912345Z","annotations":{"authorization.k8s.io/decision":"allow"}}"#;

    #[test]
    fn decodes_a_v1_event_and_keeps_bodies_raw() {
        let e = decode(KUBELET_PATCH).unwrap();
        assert_eq!(e.audit_id, "f3e1");
        assert_eq!(e.stage, Stage::ResponseComplete);
        assert_eq!(e.level, Level::Request);
        assert_eq!(e.code(), 200);
        assert_eq!(e.user.username, "system:node:worker-node-1");
        assert_eq!(e.time(), Some(1_756_904_144_912_345));
        assert_eq!(e.received_time(), Some(1_756_904_144_819_014));
        assert!(e
            .request_object
            .unwrap()
            .get()
            .starts_with(r#"{"metadata""#));
        assert!(e.response_object.is_none());
    }

    #[test]
    fn accepts_escaped_strings_in_borrowed_fields() {
        let line = KUBELET_PATCH.replace("oom-7d/status", "oom-7d/status?x=\\\"y\\\"");
        let e = decode(&line).unwrap();
        assert!(e.request_uri.ends_with("x=\"y\""));
    }

    #[test]
    fn reads_old_events_without_api_version_or_stage_timestamp() {
        let line = r#"{"kind":"Event","metadata":{"creationTimestamp":"2018-10-25T14:09:12Z"},"level":"Metadata","timestamp":"2018-10-25T14:09:13Z","auditID":"a","stage":"ResponseComplete","verb":"get","user":{"username":"x"}}"#;
        let e = decode(line).unwrap();
        assert!(e.api_version.is_none());
        assert_eq!(e.time(), Some(1_540_476_553_000_000));
        let no_kind = r#"{"level":"Metadata","metadata":{"creationTimestamp":"2018-10-25T14:09:12Z"},"auditID":"a","stage":"ResponseComplete"}"#;
        assert_eq!(decode(no_kind).unwrap().time(), Some(1_540_476_552_000_000));
    }

    #[test]
    fn rejects_what_is_not_an_audit_event() {
        assert!(matches!(
            decode(r#"{"kind": 0}"#),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode(r#"{"kind":"Pod","level":"None","auditID":"a","stage":"Panic"}"#),
            Err(DecodeError::WrongKind(_))
        ));
        assert!(matches!(
            decode(r#"{"level":"None","auditID":"a","stage":"Panic"}"#),
            Err(DecodeError::NoTimestamp { .. })
        ));
        assert!(decode("{\"level\":").is_err());
        assert!(decode("").is_err());
    }

    #[test]
    fn unknown_stages_and_levels_do_not_fail() {
        let line = KUBELET_PATCH
            .replace("ResponseComplete", "SomeFutureStage")
            .replace("\"Request\"", "\"Verbose\"");
        let e = decode(&line).unwrap();
        assert_eq!(e.stage, Stage::Unknown);
        assert_eq!(e.level, Level::Unknown);
    }

    #[test]
    fn splits_an_event_list() {
        let body = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{KUBELET_PATCH},{{"kind":0}}]}}"#
        );
        let items = decode_event_list(&body).unwrap();
        assert_eq!(items.len(), 2);
        assert!(decode(items[0].get()).is_ok());
        assert!(decode(items[1].get()).is_err());
        assert!(decode_event_list(r#"{"kind":"PodList","items":[]}"#).is_err());
        assert!(decode_event_list("not json").is_err());
    }
}
