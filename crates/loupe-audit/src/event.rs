use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::scan::{Scan, Scanner, Seen};
use crate::target::Target;
use crate::time::{parse_time_micros, Micros};

/// Why an input could not be read as an audit event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an audit event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not an audit event: {what} at byte {at}")]
    Syntax { what: &'static str, at: usize },
    #[error("not an audit event: no {0:?} field")]
    MissingField(&'static str),
    #[error("not an audit event: kind is {0:?}, expected \"Event\"")]
    WrongKind(String),
    #[error("audit event {audit_id} has no usable timestamp")]
    NoTimestamp { audit_id: String },
}

/// Audit level the event was recorded at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
    Unknown,
}

impl Level {
    /// A level a newer apiserver may add is `Unknown`, not an error.
    pub fn from_name(name: &str) -> Level {
        match name {
            "None" => Level::None,
            "Metadata" => Level::Metadata,
            "Request" => Level::Request,
            "RequestResponse" => Level::RequestResponse,
            _ => Level::Unknown,
        }
    }
}

/// The stage of request handling that produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
    Unknown,
}

impl Stage {
    /// A stage a newer apiserver may add is `Unknown`, not an error.
    pub fn from_name(name: &str) -> Stage {
        match name {
            "RequestReceived" => Stage::RequestReceived,
            "ResponseStarted" => Stage::ResponseStarted,
            "ResponseComplete" => Stage::ResponseComplete,
            "Panic" => Stage::Panic,
            _ => Stage::Unknown,
        }
    }
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
#[derive(Debug, Clone, Default)]
pub struct UserInfo<'a> {
    pub username: Cow<'a, str>,
}

#[derive(Debug, Clone, Default)]
pub struct ObjectRef<'a> {
    pub resource: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub uid: Cow<'a, str>,
    pub api_group: Cow<'a, str>,
    pub api_version: Cow<'a, str>,
    pub subresource: Cow<'a, str>,
}

#[derive(Debug, Clone, Default)]
pub struct ResponseStatus<'a> {
    pub code: u16,
    pub status: Cow<'a, str>,
    pub reason: Cow<'a, str>,
    pub message: Cow<'a, str>,
}

/// A request or response body, kept as its JSON text until an analysis decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body<'a>(&'a str);

impl<'a> Body<'a> {
    /// The body's JSON text, exactly as in the input.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

impl<'a> Body<'a> {
    /// A value's text as the scanner found it (so valid JSON).
    pub(crate) fn scanned(text: &'a str) -> Body<'a> {
        Body(text)
    }
}

/// A nested value kept as text, as `&RawValue` would be (serde_json checks it).
impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Body<'a>, D::Error> {
        <&'a RawValue>::deserialize(d).map(Body::from)
    }
}

impl<'a> From<&'a RawValue> for Body<'a> {
    fn from(raw: &'a RawValue) -> Body<'a> {
        Body(raw.get())
    }
}

/// One audit event, borrowing from the line it was read from. Fields absent (or `null`)
/// in the input are empty.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub level: Level,
    pub audit_id: Cow<'a, str>,
    pub stage: Stage,
    pub request_uri: Cow<'a, str>,
    pub verb: Cow<'a, str>,
    pub user: UserInfo<'a>,
    pub impersonated_user: Option<UserInfo<'a>>,
    pub user_agent: Cow<'a, str>,
    pub object_ref: Option<ObjectRef<'a>>,
    pub response_status: Option<ResponseStatus<'a>>,
    pub request_object: Option<Body<'a>>,
    pub response_object: Option<Body<'a>>,
    request_received_timestamp: Option<Cow<'a, str>>,
    stage_timestamp: Option<Cow<'a, str>>,
    /// Pre-v1 files (2017–2018) carry `timestamp` and `metadata.creationTimestamp` instead.
    timestamp: Option<Cow<'a, str>>,
    creation_timestamp: Option<Cow<'a, str>>,
    /// The audit clock of this event, computed once by [`decode`].
    ts: Micros,
}

/// Decodes one audit event in one pass over its text. Bodies are kept as text; see
/// [`AuditEvent::request`]. Unknown fields are skipped (but must be valid JSON); a known
/// field given twice is an error.
pub fn decode(input: &str) -> Result<AuditEvent<'_>, DecodeError> {
    let mut scan = Scanner::new(input);
    let mut event = AuditEvent {
        kind: None,
        api_version: None,
        level: Level::Unknown,
        audit_id: Cow::Borrowed(""),
        stage: Stage::Unknown,
        request_uri: Cow::Borrowed(""),
        verb: Cow::Borrowed(""),
        user: UserInfo::default(),
        impersonated_user: None,
        user_agent: Cow::Borrowed(""),
        object_ref: None,
        response_status: None,
        request_object: None,
        response_object: None,
        request_received_timestamp: None,
        stage_timestamp: None,
        timestamp: None,
        creation_timestamp: None,
        ts: 0,
    };
    let mut seen = Seen::default();
    let scanned = scan.object(|scan, key| {
        let Some(field) = envelope_field(key) else {
            return scan.raw().map(drop);
        };
        seen.first(scan, field)?;
        match field {
            0 => event.kind = scan.opt_string()?,
            1 => event.api_version = scan.opt_string()?,
            2 => event.level = Level::from_name(&scan.string()?),
            3 => event.audit_id = scan.string()?,
            4 => event.stage = Stage::from_name(&scan.string()?),
            5 => event.request_uri = text(scan)?,
            6 => event.verb = text(scan)?,
            7 => event.user_agent = text(scan)?,
            8 => event.user = user(scan)?.unwrap_or_default(),
            9 => event.impersonated_user = user(scan)?,
            10 => event.object_ref = object_ref(scan)?,
            11 => event.response_status = response_status(scan)?,
            12 => event.request_object = body(scan)?,
            13 => event.response_object = body(scan)?,
            14 => event.request_received_timestamp = scan.opt_string()?,
            15 => event.stage_timestamp = scan.opt_string()?,
            16 => event.timestamp = scan.opt_string()?,
            _ => event.creation_timestamp = creation_timestamp(scan)?,
        }
        Ok(())
    });
    if scanned.and_then(|()| scan.end()).is_err() {
        return Err(scan.error());
    }
    // Required, as kube-apiserver always writes them.
    for field in [2, 3, 4] {
        if !seen.has(field) {
            return Err(DecodeError::MissingField(ENVELOPE[field]));
        }
    }
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

/// The envelope fields [`decode`] reads, by index; the rest are skipped.
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

/// The index of `key` in [`ENVELOPE`] (a `match`: compiled to a switch on the length).
fn envelope_field(key: &str) -> Option<usize> {
    Some(match key {
        "kind" => 0,
        "apiVersion" => 1,
        "level" => 2,
        "auditID" => 3,
        "stage" => 4,
        "requestURI" => 5,
        "verb" => 6,
        "userAgent" => 7,
        "user" => 8,
        "impersonatedUser" => 9,
        "objectRef" => 10,
        "responseStatus" => 11,
        "requestObject" => 12,
        "responseObject" => 13,
        "requestReceivedTimestamp" => 14,
        "stageTimestamp" => 15,
        "timestamp" => 16,
        "metadata" => 17,
        _ => return None,
    })
}

/// A string field whose absence (or `null`) is the empty string.
fn text<'a>(scan: &mut Scanner<'a>) -> Scan<Cow<'a, str>> {
    Ok(scan.opt_string()?.unwrap_or_default())
}

fn user<'a>(scan: &mut Scanner<'a>) -> Scan<Option<UserInfo<'a>>> {
    if scan.null()? {
        return Ok(None);
    }
    let mut user = UserInfo::default();
    let mut seen = Seen::default();
    scan.object(|scan, key| match key {
        "username" => {
            seen.first(scan, 0)?;
            user.username = text(scan)?;
            Ok(())
        }
        _ => scan.raw().map(drop),
    })?;
    Ok(Some(user))
}

fn object_ref<'a>(scan: &mut Scanner<'a>) -> Scan<Option<ObjectRef<'a>>> {
    if scan.null()? {
        return Ok(None);
    }
    let mut r = ObjectRef::default();
    let mut seen = Seen::default();
    scan.object(|scan, key| {
        let (index, field) = match key {
            "resource" => (0, &mut r.resource),
            "namespace" => (1, &mut r.namespace),
            "name" => (2, &mut r.name),
            "uid" => (3, &mut r.uid),
            "apiGroup" => (4, &mut r.api_group),
            "apiVersion" => (5, &mut r.api_version),
            "subresource" => (6, &mut r.subresource),
            _ => return scan.raw().map(drop),
        };
        seen.first(scan, index)?;
        *field = text(scan)?;
        Ok(())
    })?;
    Ok(Some(r))
}

fn response_status<'a>(scan: &mut Scanner<'a>) -> Scan<Option<ResponseStatus<'a>>> {
    if scan.null()? {
        return Ok(None);
    }
    let mut status = ResponseStatus::default();
    let mut seen = Seen::default();
    scan.object(|scan, key| {
        let index = match key {
            "code" => 0,
            "status" => 1,
            "reason" => 2,
            "message" => 3,
            _ => return scan.raw().map(drop),
        };
        seen.first(scan, index)?;
        match index {
            0 => status.code = scan.u16()?,
            1 => status.status = text(scan)?,
            2 => status.reason = text(scan)?,
            _ => status.message = text(scan)?,
        }
        Ok(())
    })?;
    Ok(Some(status))
}

fn body<'a>(scan: &mut Scanner<'a>) -> Scan<Option<Body<'a>>> {
    if scan.null()? {
        return Ok(None);
    }
    scan.raw().map(|text| Some(Body(text)))
}

/// `metadata.creationTimestamp` of pre-v1 events.
fn creation_timestamp<'a>(scan: &mut Scanner<'a>) -> Scan<Option<Cow<'a, str>>> {
    if scan.null()? {
        return Ok(None);
    }
    let mut created = None;
    let mut seen = Seen::default();
    scan.object(|scan, key| match key {
        "creationTimestamp" => {
            seen.first(scan, 0)?;
            created = scan.opt_string()?;
            Ok(())
        }
        _ => scan.raw().map(drop),
    })?;
    Ok(created)
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
            .or(self.creation_timestamp.as_deref())
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
            Err(DecodeError::Syntax { at: 9, .. })
        ));
        assert!(matches!(
            decode(r#"{"kind":"Event","stage":"Panic"}"#),
            Err(DecodeError::MissingField("level"))
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
    fn envelope_names_and_indices_agree() {
        for (i, name) in ENVELOPE.iter().enumerate() {
            assert_eq!(envelope_field(name), Some(i));
        }
        assert_eq!(envelope_field("annotations"), None);
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        let twice = KUBELET_PATCH.replace(r#""verb":"patch""#, r#""verb":"get","verb":"patch""#);
        assert!(matches!(
            decode(&twice),
            Err(DecodeError::Syntax {
                what: "duplicate field",
                ..
            })
        ));
        let nested = KUBELET_PATCH.replace(r#""code":200"#, r#""code":200,"code":201"#);
        assert!(decode(&nested).is_err());
        // Unknown fields may repeat: they are not read.
        let unknown = KUBELET_PATCH.replace(r#""sourceIPs""#, r#""x":1,"x":2,"sourceIPs""#);
        assert!(decode(&unknown).is_ok());
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
