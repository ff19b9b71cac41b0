//! Turns planned steps into the audit events a kube-apiserver writes for them: the
//! request as each component sends it, the response the apiserver returns (the full pod
//! at RequestResponse), and the envelope, field for field.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use loupe_audit::{format_micros, push_micros};
use serde_json::{json, Value};

use crate::cluster::{git_hash, Node, Workload, WorkloadKind, CONTROL_PLANE_MINOR, READINESS_GATE};
use crate::json::{self, Arr, Obj};
use crate::model::*;
use crate::plan::PodShape;
use crate::rng::Rng;

/// A value's JSON text (see [`json`]: the bytes serde_json writes, written faster).
pub fn to_json(value: &Value) -> String {
    thread_local! {
        // Grown once to the largest body; each result is then allocated at its exact size
        // (lines wait in memory for their time).
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        json::push_value(scratch, value);
        scratch.as_str().to_owned()
    })
}

const MS: i64 = 1_000;

/// Who sends a request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub uid: Option<String>,
    pub groups: &'static [&'static str],
    pub agent: String,
    pub ip: String,
    /// RBAC's `authorization.k8s.io/reason`; empty for the Node authorizer.
    pub authz: String,
    /// `X509SHA256=…` for certificates, `JTI=…` for service-account tokens.
    pub credential: String,
    /// Its JSON fragments, serialized once.
    cache: ActorJson,
}

#[derive(Debug, Clone, Default)]
struct ActorJson {
    identity: std::sync::OnceLock<String>,
    annotations: std::sync::OnceLock<String>,
}

impl Actor {
    /// `"user":{…},"sourceIPs":[…],"userAgent":"…"`, as in every event this actor causes.
    fn identity(&self) -> &str {
        self.cache.identity.get_or_init(|| self.identity_json())
    }

    fn annotations(&self) -> &str {
        self.cache
            .annotations
            .get_or_init(|| self.annotations_json())
    }

    fn identity_json(&self) -> String {
        let user = User {
            username: &self.user,
            uid: self.uid.as_deref(),
            groups: self.groups,
            extra: Extra {
                credential: [&self.credential],
            },
        };
        format!(
            "\"user\":{},\"sourceIPs\":{},\"userAgent\":{}",
            serde_json::to_string(&user).unwrap_or_default(),
            serde_json::to_string(&[&self.ip]).unwrap_or_default(),
            serde_json::to_string(&self.agent).unwrap_or_default()
        )
    }

    fn annotations_json(&self) -> String {
        let a = Annotations {
            decision: "allow",
            reason: &self.authz,
        };
        format!(
            "\"annotations\":{}",
            serde_json::to_string(&a).unwrap_or_default()
        )
    }
}

const SA_GROUPS: &[&str] = &[
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
    "system:authenticated",
];

impl Actor {
    pub fn kubelet(node: &Node) -> Actor {
        Actor {
            user: format!("system:node:{}", node.name),
            uid: None,
            groups: &["system:nodes", "system:authenticated"],
            agent: node.kubelet_agent(),
            ip: node.ip.clone(),
            authz: String::new(),
            credential: x509(&format!("system:node:{}", node.name)),
            cache: ActorJson::default(),
        }
    }

    pub fn controller(name: &str) -> Actor {
        let user = format!("system:serviceaccount:kube-system:{name}");
        Actor {
            uid: Some(uid_for(&user)),
            credential: format!("JTI={}", uid_for(&format!("jti:{user}"))),
            cache: ActorJson::default(),
            agent: format!(
                "kube-controller-manager/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{}/system:serviceaccount:kube-system:{name}",
                git_hash(CONTROL_PLANE_MINOR)
            ),
            authz: format!(
                "RBAC: allowed by ClusterRoleBinding \"system:controller:{name}\" of ClusterRole \"system:controller:{name}\" to ServiceAccount \"{name}/kube-system\""
            ),
            user,
            groups: SA_GROUPS,
            ip: "10.0.0.2".into(),
        }
    }

    pub fn scheduler() -> Actor {
        Actor {
            user: "system:kube-scheduler".into(),
            uid: None,
            groups: &["system:authenticated"],
            agent: format!(
                "kube-scheduler/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{}/scheduler",
                git_hash(CONTROL_PLANE_MINOR)
            ),
            ip: "10.0.0.2".into(),
            authz: "RBAC: allowed by ClusterRoleBinding \"system:kube-scheduler\" of ClusterRole \"system:kube-scheduler\" to User \"system:kube-scheduler\"".into(),
            credential: x509("system:kube-scheduler"),
            cache: ActorJson::default(),
        }
    }

    pub fn user() -> Actor {
        Actor {
            user: "alice@example.com".into(),
            uid: None,
            groups: &["platform-team", "system:authenticated"],
            agent: format!(
                "kubectl/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{}",
                git_hash(CONTROL_PLANE_MINOR)
            ),
            ip: "192.168.10.24".into(),
            credential: x509("alice@example.com"),
            cache: ActorJson::default(),
            authz: "RBAC: allowed by ClusterRoleBinding \"platform-admins\" of ClusterRole \"cluster-admin\" to Group \"platform-team\"".into(),
        }
    }

    pub fn service(namespace: &str, name: &str, agent: &str) -> Actor {
        let user = format!("system:serviceaccount:{namespace}:{name}");
        Actor {
            uid: Some(uid_for(&user)),
            credential: format!("JTI={}", uid_for(&format!("jti:{user}"))),
            cache: ActorJson::default(),
            user,
            groups: &["system:serviceaccounts", "system:authenticated"],
            agent: agent.into(),
            ip: "10.64.250.7".into(),
            authz: format!(
                "RBAC: allowed by ClusterRoleBinding \"{name}\" of ClusterRole \"{name}\" to ServiceAccount \"{name}/{namespace}\""
            ),
        }
    }
}

/// Actors are built once and shared: every request names one.
#[derive(Clone)]
pub struct Actors {
    kubelets: Vec<Arc<Actor>>,
    named: HashMap<String, Arc<Actor>>,
    /// The key being looked up, built without an allocation per request.
    key: String,
}

impl Actors {
    pub fn new(nodes: &[Node]) -> Actors {
        Actors {
            kubelets: nodes.iter().map(|n| Arc::new(Actor::kubelet(n))).collect(),
            named: HashMap::new(),
            key: String::new(),
        }
    }
    pub fn kubelet(&self, node: usize) -> Arc<Actor> {
        self.kubelets[node.min(self.kubelets.len().saturating_sub(1))].clone()
    }
    /// The actor of `kind` and `name` (joined by `/`), made on first use.
    fn named(&mut self, kind: &[&str], make: impl FnOnce() -> Actor) -> Arc<Actor> {
        self.key.clear();
        for (i, part) in kind.iter().enumerate() {
            if i > 0 {
                self.key.push('/');
            }
            self.key.push_str(part);
        }
        if let Some(a) = self.named.get(self.key.as_str()) {
            return a.clone();
        }
        let a = Arc::new(make());
        self.named.insert(self.key.clone(), a.clone());
        a
    }
    pub fn controller(&mut self, name: &str) -> Arc<Actor> {
        self.named(&["controller", name], || Actor::controller(name))
    }
    pub fn scheduler(&mut self) -> Arc<Actor> {
        self.named(&["scheduler"], Actor::scheduler)
    }
    pub fn user(&mut self) -> Arc<Actor> {
        self.named(&["user"], Actor::user)
    }
    /// A control-plane component's leader-election client (x509 user, `/leader-election`).
    pub fn leader_election(&mut self, component: &str, user: &str) -> Arc<Actor> {
        self.named(&["leader", component], || Actor {
            user: user.to_string(),
            uid: None,
            groups: &["system:authenticated"],
            agent: format!(
                "{component}/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{}/leader-election",
                git_hash(CONTROL_PLANE_MINOR)
            ),
            ip: "10.0.0.2".into(),
            authz: format!("RBAC: allowed by ClusterRoleBinding \"{user}\" of ClusterRole \"{user}\" to User \"{user}\""),
            credential: x509(user),
            cache: ActorJson::default(),
        })
    }

    /// The user running `kubectl drain`.
    pub fn drainer(&mut self) -> Arc<Actor> {
        self.named(&["drain"], || {
            let mut a = Actor::user();
            a.agent = format!(
                "kubectl/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{} drain",
                git_hash(CONTROL_PLANE_MINOR)
            );
            a
        })
    }
    pub fn service(&mut self, namespace: &str, name: &str, agent: &str) -> Arc<Actor> {
        self.named(&["service", namespace, name], || {
            Actor::service(namespace, name, agent)
        })
    }
}

/// A client certificate's fingerprint, as the authenticator records it.
fn x509(name: &str) -> String {
    let mut r = Rng::new(name.len() as u64 ^ 0x509);
    for b in name.bytes() {
        r = Rng::new(r.next_u64() ^ u64::from(b));
    }
    format!(
        "X509SHA256={:016x}{:016x}{:016x}{:016x}",
        r.next_u64(),
        r.next_u64(),
        r.next_u64(),
        r.next_u64()
    )
}

/// A stable UID for a named identity.
fn uid_for(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut r = Rng::new(h);
    r.uuid()
}

/// `,"key":"value"`, unless the value is empty.
fn push_field(j: &mut String, key: &str, value: &str) {
    if !value.is_empty() {
        j.push_str(",\"");
        j.push_str(key);
        j.push_str("\":");
        json::push_str(j, value);
    }
}

/// One API request as the apiserver records it.
pub struct Request {
    /// Completion (`stageTimestamp` of ResponseComplete), µs.
    pub at: i64,
    pub latency: i64,
    pub verb: &'static str,
    pub actor: Arc<Actor>,
    pub object: ObjectRef,
    pub code: u16,
    pub failure: Option<(&'static str, String)>,
    pub level: &'static str,
    pub request: Option<String>,
    pub response: Option<String>,
    /// Watches: the request stays open and reports `ResponseStarted`.
    pub watch_until: Option<i64>,
    pub non_resource: Option<&'static str>,
}

impl Request {
    /// A request that completes at `at` after `latency`; bodies and the rest are added.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        at: i64,
        latency: i64,
        verb: &'static str,
        actor: Arc<Actor>,
        object: ObjectRef,
        code: u16,
        level: &'static str,
    ) -> Request {
        Request {
            at,
            latency,
            verb,
            actor,
            object,
            code,
            failure: None,
            level,
            request: None,
            response: None,
            watch_until: None,
            non_resource: None,
        }
    }
    /// A refusal: the status reason and message.
    pub fn failed(self, failure: (&'static str, String)) -> Request {
        self.with_failure(Some(failure))
    }
    pub fn with_failure(mut self, failure: Option<(&'static str, String)>) -> Request {
        self.failure = failure;
        self
    }
    pub fn request(mut self, body: String) -> Request {
        self.request = Some(body);
        self
    }
    pub fn response(mut self, body: String) -> Request {
        self.response = Some(body);
        self
    }
    /// A watch: it reports ResponseStarted and completes at `until`.
    pub fn watch_until(mut self, until: i64) -> Request {
        self.watch_until = Some(until);
        self
    }
    /// A non-resource URL (`/healthz`): no objectRef.
    pub fn with_non_resource(mut self, path: Option<&'static str>) -> Request {
        self.non_resource = path;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct ObjectRef {
    pub resource: &'static str,
    pub namespace: String,
    pub name: String,
    pub api_group: &'static str,
    pub api_version: &'static str,
    /// Set by the apiserver from the request's object (create/update), as in `LogRequestObject`.
    pub uid: String,
    pub resource_version: String,
    pub subresource: &'static str,
}

impl ObjectRef {
    pub fn new(resource: &'static str, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
            api_version: "v1",
            ..ObjectRef::default()
        }
    }
    pub fn group(mut self, group: &'static str, version: &'static str) -> ObjectRef {
        self.api_group = group;
        self.api_version = version;
        self
    }
    pub fn object(mut self, uid: &str, resource_version: &str) -> ObjectRef {
        self.uid = uid.to_string();
        self.resource_version = resource_version.to_string();
        self
    }
    pub fn subresource(mut self, sub: &'static str) -> ObjectRef {
        self.subresource = sub;
        self
    }

    /// The envelope's `objectRef`, empty fields left out, in the apiserver's order.
    fn push_envelope_json(&self, j: &mut String) {
        // Resource, group, version and subresource are the simulator's literals.
        j.push_str("{\"resource\":\"");
        json::push_literal(j, self.resource);
        j.push('"');
        push_field(j, "namespace", &self.namespace);
        push_field(j, "name", &self.name);
        push_field(j, "uid", &self.uid);
        if !self.api_group.is_empty() {
            j.push_str(",\"apiGroup\":\"");
            json::push_literal(j, self.api_group);
            j.push('"');
        }
        j.push_str(",\"apiVersion\":\"");
        json::push_literal(j, self.api_version);
        j.push('"');
        push_field(j, "resourceVersion", &self.resource_version);
        if !self.subresource.is_empty() {
            j.push_str(",\"subresource\":\"");
            json::push_literal(j, self.subresource);
            j.push('"');
        }
        j.push('}');
    }

    /// The object's path, escaped for a JSON string (without the quotes).
    fn push_path(&self, j: &mut String) {
        if self.api_group.is_empty() {
            j.push_str("/api/v1");
        } else {
            j.push_str("/apis/");
            json::push_literal(j, self.api_group);
            j.push('/');
            json::push_literal(j, self.api_version);
        }
        if !self.namespace.is_empty() {
            j.push_str("/namespaces/");
            json::push_unquoted(j, &self.namespace);
        }
        j.push('/');
        json::push_literal(j, self.resource);
        if !self.name.is_empty() {
            j.push('/');
            json::push_unquoted(j, &self.name);
        }
        if !self.subresource.is_empty() {
            j.push('/');
            json::push_literal(j, self.subresource);
        }
    }
}

#[derive(serde::Serialize)]
struct User<'a> {
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    groups: &'a [&'a str],
    extra: Extra<'a>,
}

/// Since Kubernetes 1.32 the authenticator records which credential was used.
#[derive(serde::Serialize)]
struct Extra<'a> {
    #[serde(rename = "authentication.kubernetes.io/credential-id")]
    credential: [&'a str; 1],
}

#[derive(serde::Serialize)]
struct Annotations<'a> {
    #[serde(rename = "authorization.k8s.io/decision")]
    decision: &'a str,
    #[serde(rename = "authorization.k8s.io/reason")]
    reason: &'a str,
}

/// One line of output: its order key in the merged stream, and the JSON.
pub struct Line {
    pub key: i64,
    pub json: String,
}

/// Writes the audit events of `req` (RequestReceived unless omitted, ResponseStarted
/// for watches, then ResponseComplete) into `out`, fields in the apiserver's order.
pub fn write_request(
    req: &Request,
    audit_id: &str,
    request_received: bool,
    lag: &dyn Fn(i64) -> i64,
    stamps: &mut Stamps,
    out: &mut Vec<Line>,
) {
    let received_at = req.at - req.latency;
    let mut event = |stage: &Stage, at: i64| Line {
        key: lag(at),
        json: envelope(req, audit_id, stage, received_at, at, stamps),
    };
    if request_received {
        out.push(event(&RECEIVED, received_at));
    }
    if let Some(until) = req.watch_until {
        out.push(event(&STARTED, req.at));
        out.push(event(&COMPLETE_WITHOUT_BODIES, until));
        return;
    }
    out.push(event(&COMPLETE, req.at));
}

/// What an audit stage's event holds.
struct Stage {
    name: &'static str,
    /// A response exists: `responseStatus` and the authorization annotations.
    responded: bool,
    /// The request and response objects (a watch's stream is not logged).
    bodies: bool,
}

const RECEIVED: Stage = Stage {
    name: "RequestReceived",
    responded: false,
    bodies: false,
};
const STARTED: Stage = Stage {
    name: "ResponseStarted",
    responded: true,
    bodies: false,
};
const COMPLETE: Stage = Stage {
    name: "ResponseComplete",
    responded: true,
    bodies: true,
};
const COMPLETE_WITHOUT_BODIES: Stage = Stage {
    bodies: false,
    ..COMPLETE
};

/// One audit event, written in one pass into a string sized for it. The bodies are
/// spliced in verbatim (the simulator's own JSON).
fn envelope(
    req: &Request,
    audit_id: &str,
    stage: &Stage,
    received_at: i64,
    at: i64,
    stamps: &mut Stamps,
) -> String {
    let bodies = match (&req.request, &req.response) {
        _ if !stage.bodies => 0,
        (request, response) => {
            request.as_ref().map_or(0, String::len) + response.as_ref().map_or(0, String::len)
        }
    };
    let o = &req.object;
    // The literal keys, the URI's fixed parts, level, stage, verb and stamps take under
    // 640 bytes; namespace and name appear in both the URI and the objectRef.
    let capacity = 640
        + audit_id.len()
        + 2 * (o.namespace.len() + o.name.len())
        + o.uid.len()
        + o.resource_version.len()
        + req.failure.as_ref().map_or(0, |(_, m)| m.len())
        + req.actor.identity().len()
        + req.actor.annotations().len()
        + bodies;
    let mut j = String::with_capacity(capacity);
    j.push_str("{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"");
    j.push_str(req.level);
    j.push_str("\",\"auditID\":\"");
    j.push_str(audit_id);
    j.push_str("\",\"stage\":\"");
    j.push_str(stage.name);
    j.push_str("\",\"requestURI\":");
    push_uri(&mut j, req);
    j.push_str(",\"verb\":\"");
    j.push_str(req.verb);
    j.push_str("\",");
    j.push_str(req.actor.identity());
    if req.non_resource.is_none() {
        j.push_str(",\"objectRef\":");
        o.push_envelope_json(&mut j);
    }
    if stage.responded {
        j.push_str(",\"responseStatus\":");
        push_status(&mut j, req.code, req.failure.as_ref());
    }
    if stage.bodies {
        for (key, body) in [
            ("requestObject", &req.request),
            ("responseObject", &req.response),
        ] {
            if let Some(body) = body {
                j.push_str(",\"");
                j.push_str(key);
                j.push_str("\":");
                j.push_str(body);
            }
        }
    }
    j.push_str(",\"requestReceivedTimestamp\":\"");
    stamps.push(&mut j, received_at);
    j.push_str("\",\"stageTimestamp\":\"");
    stamps.push(&mut j, at);
    j.push('"');
    if stage.responded {
        j.push(',');
        j.push_str(req.actor.annotations());
    }
    j.push('}');
    debug_assert!(j.len() <= capacity, "the envelope outgrew its estimate");
    j
}

/// Writes `MicroTime` stamps, reusing the date and time of the last second written: an
/// event's two stamps, and the events after it, nearly always share it.
#[derive(Default)]
pub struct Stamps {
    second: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of that second.
    head: String,
}

impl Stamps {
    pub fn push(&mut self, out: &mut String, us: i64) {
        let second = us.div_euclid(1_000_000);
        if self.second != Some(second) {
            self.second = Some(second);
            self.head.clear();
            push_micros(&mut self.head, second * 1_000_000);
            // Years outside 0–9999 have another form: no reuse for them.
            if self.head.len() == 27 {
                self.head.truncate(20);
            }
        }
        if self.head.len() != 20 {
            push_micros(out, us);
            return;
        }
        out.push_str(&self.head);
        let micros = us.rem_euclid(1_000_000) as u32;
        let mut digits = *b"000000Z";
        let mut rest = micros;
        for d in digits[..6].iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.push_str(std::str::from_utf8(&digits).expect("digits are ASCII"));
    }
}

/// `requestURI`, quoted: a non-resource path, or the object's path (and a watch's query).
fn push_uri(j: &mut String, req: &Request) {
    j.push('"');
    match req.non_resource {
        Some(path) => json::push_unquoted(j, path),
        None => {
            req.object.push_path(j);
            if req.verb == "watch" {
                j.push_str("?allowWatchBookmarks=true&resourceVersion=1000&timeout=7m11s&timeoutSeconds=431&watch=true");
            }
        }
    }
    j.push('"');
}

/// `responseStatus`: `{"metadata":{},["status","message","reason",]"code"}`.
fn push_status(j: &mut String, code: u16, failure: Option<&(&'static str, String)>) {
    j.push_str("{\"metadata\":{},");
    if let Some((reason, message)) = failure {
        j.push_str("\"status\":\"Failure\",\"message\":");
        json::push_str(j, message);
        j.push_str(",\"reason\":");
        json::push_str(j, reason);
        j.push(',');
    }
    j.push_str("\"code\":");
    json::push_int(j, code);
    j.push('}');
}

/// Seconds-precision `metav1.Time`.
/// A resource quantity: `512Mi`, `250m`.
fn quantity(out: &mut String, value: u32, unit: &'static str) {
    json::push_int(out, value);
    json::push_literal(out, unit);
}

/// `value` as 16 lower-case hex digits.
pub(crate) fn push_hex(out: &mut String, value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"));
}

pub(crate) fn seconds(us: i64) -> String {
    let mut s = String::with_capacity(20);
    push_seconds(&mut s, us);
    s
}

/// A seconds-precision `metav1.Time` (`2026-01-01T00:00:00Z`). A pod's bodies repeat
/// the same few stamps (its conditions', its containers'), so recent seconds are kept
/// formatted, each in a slot of a small table.
pub(crate) fn push_seconds(out: &mut String, us: i64) {
    const SLOTS: usize = 64;
    thread_local! {
        static RECENT: std::cell::RefCell<[(i64, [u8; 20]); SLOTS]> =
            const { std::cell::RefCell::new([(i64::MIN, [0; 20]); SLOTS]) };
    }
    let second = us.div_euclid(1_000_000);
    RECENT.with_borrow_mut(|recent| {
        let slot = &mut recent[second.rem_euclid(SLOTS as i64) as usize];
        if slot.0 != second {
            let mut text = String::with_capacity(27);
            push_micros(&mut text, second * 1_000_000);
            // `…:SS.000000Z` → `…:SSZ`; years outside 0–9999 are not kept.
            match text.split_once('.') {
                Some((head, _)) if head.len() == 19 => {
                    slot.1[..19].copy_from_slice(head.as_bytes());
                    slot.1[19] = b'Z';
                    slot.0 = second;
                }
                Some((head, _)) => {
                    out.push_str(head);
                    out.push('Z');
                    return;
                }
                None => {
                    out.push_str(&text);
                    return;
                }
            }
        }
        out.push_str(std::str::from_utf8(&slot.1).expect("a stamp is ASCII"));
    })
}

#[derive(Debug, Clone)]
struct Condition {
    kind: &'static str,
    status: bool,
    reason: Option<&'static str>,
    message: Option<String>,
    at: i64,
}

#[derive(Debug, Clone)]
struct ContainerStatus {
    state: CState,
    last: Option<CState>,
    last_times: (i64, i64),
    restarts: u32,
    started_at: Option<i64>,
    image: String,
    image_id: Option<String>,
    container_id: Option<String>,
    ready: bool,
}

/// A pod as the apiserver stores it, updated by each step.
pub struct PodModel {
    pub shape: PodShape,
    pub workload: usize,
    spec: String,
    node_name: Option<String>,
    host_ip: Option<String>,
    phase: &'static str,
    conditions: Vec<Condition>,
    init: Vec<ContainerStatus>,
    main: Vec<ContainerStatus>,
    pod_ip: Option<String>,
    start_time: Option<i64>,
    reason: Option<(&'static str, String)>,
    nominated: Option<String>,
    deletion: Option<(i64, i64)>,
    finalizers: Vec<String>,
    rv: u64,
    rng: Rng,
}

impl PodModel {
    pub fn new(shape: PodShape, workload: usize, wl: &Workload) -> PodModel {
        let mut spec = String::with_capacity(4096);
        write_pod_spec(&mut spec, &shape, wl, true);
        let status = |image: &String| ContainerStatus {
            state: CState::Waiting {
                reason: "ContainerCreating",
                message: None,
            },
            last: None,
            last_times: (0, 0),
            restarts: 0,
            started_at: None,
            image: image.clone(),
            image_id: None,
            container_id: None,
            ready: false,
        };
        let init = shape.init_images.iter().map(status).collect();
        let main = shape.images.iter().map(status).collect();
        let mut rng = Rng::new(shape.created_at as u64 ^ 0x5eed);
        let rv = 10_000 + rng.below(1_000_000);
        PodModel {
            finalizers: shape.finalizer.iter().cloned().collect(),
            shape,
            workload,
            spec,
            node_name: None,
            host_ip: None,
            phase: "Pending",
            conditions: Vec::new(),
            init,
            main,
            pod_ip: None,
            start_time: None,
            reason: None,
            nominated: None,
            deletion: None,
            rv,
            rng,
        }
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1 + self.rng.below(40);
        self.rv
    }

    /// `metadata`, keys in order. `template`: as the controller sends it in the create
    /// (no identity, no finalizers, a null creation time).
    fn write_metadata(&self, o: &mut Obj<'_>, wl: &Workload, template: bool) {
        let name = self.shape.name.as_str();
        if wl.padding > 0 || self.shape.traceparent.is_some() {
            o.obj("annotations", |a| {
                if wl.padding > 0 {
                    a.str("example.com/owner-team", "shop-platform");
                    a.str("kubectl.kubernetes.io/restartedAt", "2025-12-30T09:12:44Z");
                }
                a.opt_str("traceparent", self.shape.traceparent.as_deref());
            });
        }
        if template {
            o.null("creationTimestamp");
        } else {
            o.text("creationTimestamp", |t| {
                push_seconds(t, self.shape.created_at)
            });
        }
        if let Some((deadline, grace)) = self.deletion {
            o.int("deletionGracePeriodSeconds", grace);
            o.text("deletionTimestamp", |t| push_seconds(t, deadline));
        }
        if !template && !self.finalizers.is_empty() {
            o.arr("finalizers", |a| {
                for f in &self.finalizers {
                    a.str(f);
                }
            });
        }
        o.opt_str("generateName", self.shape.generate_name.as_deref());
        o.obj("labels", |l| {
            for (key, value) in pod_labels(wl, name) {
                l.entry(key, &value);
            }
        });
        if !(template && self.shape.generate_name.is_some()) {
            o.str("name", name);
        }
        if !template {
            o.str("namespace", &wl.namespace);
        }
        o.arr("ownerReferences", |a| {
            a.obj(|r| {
                r.str("apiVersion", wl.kind.owner_api())
                    .bool("blockOwnerDeletion", true)
                    .bool("controller", true)
                    .str("kind", wl.kind.owner_kind())
                    .str("name", &wl.owner)
                    .str("uid", &wl.owner_uid);
            });
        });
        if !template {
            o.str("resourceVersion", itoa::Buffer::new().format(self.rv));
            o.str("uid", &self.shape.uid);
        }
    }

    fn write_container_status(a: &mut Arr<'_>, c: &ContainerStatus, name: &str) {
        a.obj(|o| {
            o.opt_str("containerID", c.container_id.as_deref())
                .str("image", &c.image)
                .str("imageID", c.image_id.as_deref().unwrap_or_default())
                .obj("lastState", |s| {
                    if let Some(last) = &c.last {
                        write_state(s, c, last, c.last_times, None);
                    }
                })
                .str("name", name)
                .bool("ready", c.ready)
                .int("restartCount", c.restarts)
                .bool("started", matches!(c.state, CState::Running { .. }))
                .obj("state", |s| {
                    write_state(s, c, &c.state, c.last_times, c.started_at)
                });
        });
    }

    fn write_container_statuses(&self, o: &mut Obj<'_>, wl: &Workload, init: bool) {
        let (key, list, specs) = if init {
            ("initContainerStatuses", &self.init, &wl.init)
        } else {
            ("containerStatuses", &self.main, &wl.containers)
        };
        o.arr(key, |a| {
            for (c, spec) in list.iter().zip(specs) {
                Self::write_container_status(a, c, &spec.name);
            }
        });
    }

    /// The whole `status`, keys in order.
    fn write_status(&self, o: &mut Obj<'_>, wl: &Workload) {
        if !self.conditions.is_empty() {
            o.arr("conditions", |a| {
                for c in &self.conditions {
                    write_condition(a, c);
                }
            });
        }
        let statuses = self.start_time.is_some();
        if statuses {
            self.write_container_statuses(o, wl, false);
        }
        if let Some(ip) = &self.host_ip {
            write_ips(o, "hostIP", "hostIPs", ip);
        }
        if statuses && !self.init.is_empty() {
            self.write_container_statuses(o, wl, true);
        }
        if let Some((_, message)) = &self.reason {
            o.str("message", message);
        }
        o.opt_str("nominatedNodeName", self.nominated.as_deref());
        o.str("phase", self.phase);
        if let Some(ip) = &self.pod_ip {
            write_ips(o, "podIP", "podIPs", ip);
        }
        o.str("qosClass", "Burstable");
        if let Some((reason, _)) = &self.reason {
            o.str("reason", reason);
        }
        if let Some(t) = self.start_time {
            o.text("startTime", |out| push_seconds(out, t));
        }
    }

    /// The whole pod, as in a RequestResponse response.
    pub fn pod_json(&self, wl: &Workload) -> String {
        let mut pod = String::with_capacity(self.spec.len() + 4096);
        pod.push_str("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":");
        let mut meta = Obj::new(&mut pod);
        self.write_metadata(&mut meta, wl, false);
        meta.end();
        pod.push_str(",\"spec\":");
        match &self.node_name {
            Some(node) => {
                pod.push_str("{\"nodeName\":");
                json::push_str(&mut pod, node);
                pod.push(',');
                pod.push_str(&self.spec[1..]);
            }
            None => pod.push_str(&self.spec),
        }
        pod.push_str(",\"status\":");
        let mut status = Obj::new(&mut pod);
        self.write_status(&mut status, wl);
        status.end();
        pod.push('}');
        pod
    }

    /// The pod as its controller sends it in the create: the template, before admission
    /// plugins (ServiceAccount, DefaultTolerationSeconds, Priority) add to it; no name.
    pub fn create_request(&self, wl: &Workload) -> String {
        let mut pod = String::with_capacity(self.spec.len() + 2048);
        pod.push_str("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":");
        let mut meta = Obj::new(&mut pod);
        self.write_metadata(&mut meta, wl, true);
        meta.end();
        pod.push_str(",\"spec\":");
        write_pod_spec(&mut pod, &self.shape, wl, false);
        pod.push_str(",\"status\":{}}");
        pod
    }

    pub fn bind(&mut self, node: &Node, at: i64) {
        self.node_name = Some(node.name.clone());
        self.set_condition("PodScheduled", true, None, None, at);
        self.nominated = None;
        self.bump();
    }

    fn set_condition(
        &mut self,
        kind: &'static str,
        status: bool,
        reason: Option<&'static str>,
        message: Option<String>,
        at: i64,
    ) -> bool {
        if let Some(c) = self.conditions.iter_mut().find(|c| c.kind == kind) {
            let changed = c.status != status || c.reason != reason || c.message != message;
            if c.status != status {
                c.at = at;
            }
            c.status = status;
            c.reason = reason;
            c.message = message;
            return changed;
        }
        self.conditions.push(Condition {
            kind,
            status,
            reason,
            message,
            at,
        });
        true
    }

    /// Applies a status change and returns the strategic-merge patch that carries it.
    pub fn apply_status(
        &mut self,
        change: &StatusChange,
        node: &mut Node,
        wl: &Workload,
        at: i64,
    ) -> String {
        let mut changed_conditions = Vec::new();
        for (kind, value, reason, message) in &change.conditions {
            // "Gate" stands for the pod's readiness-gate condition type.
            let kind: &'static str = if *kind == "Gate" {
                READINESS_GATE
            } else {
                kind
            };
            if self.set_condition(kind, *value, *reason, message.clone(), at) {
                changed_conditions.push(kind);
            }
        }
        // The kubelet keeps conditions in its own order.
        const ORDER: [&str; 7] = [
            READINESS_GATE,
            "DisruptionTarget",
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        self.conditions
            .sort_by_key(|c| ORDER.iter().position(|o| *o == c.kind).unwrap_or(0));
        let (mut init_changed, mut main_changed) = (false, false);
        for (slot, state) in &change.containers {
            let list = if slot.init {
                &mut self.init
            } else {
                &mut self.main
            };
            let Some(c) = list.get_mut(slot.index) else {
                continue;
            };
            let leaving_terminated = matches!(c.state, CState::Terminated { .. })
                && !matches!(state, CState::Terminated { .. });
            if leaving_terminated && self.deletion.is_none() {
                c.last = Some(c.state.clone());
                c.restarts += 1;
            }
            match state {
                CState::Running { ready } => {
                    if !matches!(c.state, CState::Running { .. }) {
                        c.started_at = Some(at);
                        c.last_times.0 = at;
                        let mut id = String::with_capacity(77);
                        id.push_str("containerd://");
                        for _ in 0..4 {
                            push_hex(&mut id, self.rng.next_u64());
                        }
                        c.container_id = Some(id);
                        let repository = c.image.split(':').next().unwrap_or("");
                        let mut digest = String::with_capacity(repository.len() + 72);
                        digest.push_str(repository);
                        digest.push_str("@sha256:");
                        for _ in 0..4 {
                            push_hex(&mut digest, self.rng.next_u64());
                        }
                        c.image_id = Some(digest);
                    }
                    c.ready = *ready;
                }
                CState::Terminated { .. } => {
                    c.last_times = (c.started_at.unwrap_or(at), at);
                    c.ready = false;
                }
                CState::Waiting { .. } => c.ready = false,
            }
            c.state = state.clone();
            if slot.init {
                init_changed = true;
            } else {
                main_changed = true;
            }
        }
        let mut new_phase = None;
        if let Some(phase) = change.phase {
            if phase != self.phase {
                self.phase = phase;
                new_phase = Some(phase);
            }
        }
        let host_ip = change.host_ip && self.host_ip.is_none();
        if host_ip {
            self.host_ip = Some(node.ip.clone());
        }
        let pod_ip = change.assign_ip && self.pod_ip.is_none();
        if pod_ip {
            self.pod_ip = Some(node.allocate_ip());
        }
        let started = change.start_time && self.start_time.is_none();
        if started {
            self.start_time = Some(at);
            init_changed = !self.init.is_empty();
            main_changed = true;
        }
        if let Some((reason, message)) = &change.pod_reason {
            self.reason = Some((reason, message.clone()));
        }
        if let Some(n) = &change.nominated {
            self.nominated = Some(n.clone());
        }
        self.bump();
        // The strategic-merge patch, keys in order.
        json::object(1024, |patch| {
            patch.obj("metadata", |m| {
                m.str("uid", &self.shape.uid);
            });
            patch.obj("status", |o| {
                if !changed_conditions.is_empty() {
                    o.arr("$setElementOrder/conditions", |a| {
                        for c in &self.conditions {
                            a.obj(|t| {
                                t.str("type", c.kind);
                            });
                        }
                    });
                    o.arr("conditions", |a| {
                        for c in &self.conditions {
                            if changed_conditions.contains(&c.kind) {
                                write_condition(a, c);
                            }
                        }
                    });
                }
                if main_changed {
                    self.write_container_statuses(o, wl, false);
                }
                if let (true, Some(ip)) = (host_ip, &self.host_ip) {
                    write_ips(o, "hostIP", "hostIPs", ip);
                }
                if init_changed && !self.init.is_empty() {
                    self.write_container_statuses(o, wl, true);
                }
                if let Some((_, message)) = &change.pod_reason {
                    o.str("message", message);
                }
                o.opt_str("nominatedNodeName", change.nominated.as_deref());
                o.opt_str("phase", new_phase);
                if let (true, Some(ip)) = (pod_ip, &self.pod_ip) {
                    write_ips(o, "podIP", "podIPs", ip);
                }
                if started {
                    o.str("qosClass", "Burstable");
                }
                if let Some((reason, _)) = &change.pod_reason {
                    o.str("reason", reason);
                }
                if started {
                    o.text("startTime", |t| push_seconds(t, at));
                }
            });
        })
    }

    /// A delete with `grace` seconds: the deadline only ever moves earlier, as in the
    /// apiserver; a pod never bound goes at once.
    pub fn request_delete(&mut self, at: i64, grace: i64) {
        let grace = if self.is_bound() { grace } else { 0 };
        let deadline = at + grace * 1_000_000;
        self.deletion = Some(match self.deletion {
            Some((d, g)) => (d.min(deadline), g.min(grace)),
            None => (deadline, grace),
        });
        self.bump();
    }

    pub fn remove_finalizer(&mut self) -> Option<String> {
        let f = self.finalizers.pop();
        self.bump();
        f
    }

    pub fn has_finalizers(&self) -> bool {
        !self.finalizers.is_empty()
    }

    pub fn set_image(&mut self, image: &str) {
        let old = std::mem::replace(&mut self.shape.images[0], image.to_string());
        self.main[0].image = image.to_string();
        self.spec = self.spec.replacen(
            &format!("\"image\":{}", json!(old)),
            &format!("\"image\":{}", json!(image)),
            1,
        );
        self.bump();
    }

    pub fn is_bound(&self) -> bool {
        self.node_name.is_some()
    }

    pub fn resource_version(&self) -> String {
        self.rv.to_string()
    }
}

/// A pod's labels: the workload's, then those its controller adds (which win), by key.
fn pod_labels<'a>(wl: &'a Workload, pod: &'a str) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut labels: Vec<(&str, Cow<'_, str>)> = wl
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
        .collect();
    let last = |s: &'a str| s.rsplit('-').next();
    match wl.kind {
        WorkloadKind::Deployment => {
            labels.push(("pod-template-hash", last(&wl.owner).unwrap_or("").into()));
        }
        WorkloadKind::StatefulSet => {
            labels.push((
                "apps.kubernetes.io/pod-index",
                last(pod).unwrap_or("0").into(),
            ));
            labels.push((
                "controller-revision-hash",
                format!("{}-6d8f7c9b5", wl.name).into(),
            ));
            labels.push(("statefulset.kubernetes.io/pod-name", pod.into()));
        }
        WorkloadKind::Job => {
            labels.push(("batch.kubernetes.io/job-name", wl.name.as_str().into()));
            labels.push(("job-name", wl.name.as_str().into()));
        }
        WorkloadKind::DaemonSet => {
            labels.push(("controller-revision-hash", "5f6d8c7b9".into()));
            labels.push(("pod-template-generation", "1".into()));
        }
    }
    // A stable sort of the reversed list puts the last value of a key first.
    labels.reverse();
    labels.sort_by(|a, b| a.0.cmp(b.0));
    labels.dedup_by(|later, first| later.0 == first.0);
    labels
}

/// The `FEATURE_FLAG_<i>` variables that pad a workload's main container (the bulk of
/// its spec), as JSON array items: the same for every pod, so written once per count.
fn padding_env(padding: usize) -> std::rc::Rc<str> {
    thread_local! {
        static MEMO: std::cell::RefCell<HashMap<usize, std::rc::Rc<str>>> = Default::default();
    }
    MEMO.with_borrow_mut(|memo| {
        memo.entry(padding)
            .or_insert_with(|| {
                let filler = "x".repeat(60);
                let mut items = String::with_capacity(padding * 100);
                let mut list = Arr::new(&mut items);
                for i in 0..padding {
                    list.obj(|e| {
                        e.str("name", &format!("FEATURE_FLAG_{i}"))
                            .str("value", &format!("enabled-{i}-{filler}"));
                    });
                }
                list.end();
                // Without the brackets: the items go into a longer list.
                items[1..items.len() - 1].into()
            })
            .clone()
    })
}

/// A container state (`waiting`, `running` or `terminated`) into its object.
fn write_state(
    o: &mut Obj<'_>,
    c: &ContainerStatus,
    state: &CState,
    times: (i64, i64),
    started: Option<i64>,
) {
    match state {
        CState::Waiting { reason, message } => {
            o.obj("waiting", |w| {
                w.opt_str("message", message.as_deref())
                    .str("reason", reason);
            });
        }
        CState::Running { .. } => {
            o.obj("running", |r| {
                r.text("startedAt", |t| push_seconds(t, started.unwrap_or(times.0)));
            });
        }
        CState::Terminated { exit, reason } => {
            o.obj("terminated", |t| {
                t.opt_str("containerID", c.container_id.as_deref())
                    .int("exitCode", *exit)
                    .text("finishedAt", |t| push_seconds(t, times.1))
                    .str("reason", reason)
                    .text("startedAt", |t| push_seconds(t, times.0));
            });
        }
    }
}

fn write_condition(a: &mut Arr<'_>, c: &Condition) {
    a.obj(|o| {
        o.null("lastProbeTime")
            .text("lastTransitionTime", |t| push_seconds(t, c.at))
            .opt_str("message", c.message.as_deref())
            .opt_str("reason", c.reason)
            .str("status", if c.status { "True" } else { "False" })
            .str("type", c.kind);
    });
}

/// `"hostIP":"…","hostIPs":[{"ip":"…"}]` (or the pod's).
fn write_ips(o: &mut Obj<'_>, one: &str, list: &str, ip: &str) {
    o.str(one, ip).arr(list, |a| {
        a.obj(|i| {
            i.str("ip", ip);
        });
    });
}

fn write_probe(o: &mut Obj<'_>, key: &str, path: &str, period: u32, failure: u32) {
    o.obj(key, |p| {
        p.int("failureThreshold", failure)
            .obj("httpGet", |h| {
                h.str("path", path).int("port", 8080).str("scheme", "HTTP");
            })
            .int("periodSeconds", period)
            .int("successThreshold", 1)
            .int("timeoutSeconds", 1);
    });
}

fn write_exec(o: &mut Obj<'_>, key: &str, command: &str) {
    o.obj(key, |h| {
        h.obj("exec", |e| {
            e.arr("command", |a| {
                a.str("/bin/sh").str("-c").str(command);
            });
        });
    });
}

/// A container of the spec, keys in order.
fn write_container_spec(
    a: &mut Arr<'_>,
    spec: &crate::cluster::ContainerSpec,
    image: &str,
    shape: &PodShape,
    main: bool,
    padding: usize,
    admitted: bool,
) {
    a.obj(|c| {
        if main && (padding > 0 || shape.secret_env.is_some()) {
            c.arr("env", |env| {
                if padding > 0 {
                    env.raw(&padding_env(padding));
                }
                if let Some(secret) = &shape.secret_env {
                    env.obj(|e| {
                        e.str("name", "DB_PASSWORD").obj("valueFrom", |v| {
                            v.obj("secretKeyRef", |r| {
                                r.str("key", "password").str("name", secret);
                            });
                        });
                    });
                }
            });
        }
        c.str("image", image).str("imagePullPolicy", "IfNotPresent");
        let post_start = spec.post_start || (main && shape.post_start);
        let pre_stop = spec.pre_stop || (main && shape.pre_stop);
        if main && (post_start || pre_stop) {
            c.obj("lifecycle", |l| {
                if post_start {
                    write_exec(l, "postStart", "/app/warmup.sh");
                }
                if pre_stop {
                    write_exec(l, "preStop", "sleep 5");
                }
            });
        }
        if main && spec.liveness {
            write_probe(c, "livenessProbe", "/livez", 10, 3);
        }
        c.str("name", &spec.name);
        if main {
            c.arr("ports", |p| {
                p.obj(|port| {
                    port.int("containerPort", 8080)
                        .str("name", "http")
                        .str("protocol", "TCP");
                });
            });
        }
        if main && shape.readiness_probe {
            write_probe(c, "readinessProbe", "/readyz", 5, 3);
        }
        c.obj("resources", |r| {
            r.obj("limits", |l| {
                l.text("memory", |t| quantity(t, spec.mem_mi * 2, "Mi"));
            })
            .obj("requests", |q| {
                q.text("cpu", |t| quantity(t, spec.cpu_m, "m"))
                    .text("memory", |t| quantity(t, spec.mem_mi, "Mi"));
            });
        });
        if spec.sidecar {
            c.str("restartPolicy", "Always");
        }
        if main && shape.startup_probe {
            write_probe(c, "startupProbe", "/startz", 10, 3);
        }
        c.str("terminationMessagePath", "/dev/termination-log")
            .str("terminationMessagePolicy", "File");
        let config = main && shape.config_map.is_some();
        let data = main && shape.claim.is_some();
        if admitted || config || data {
            c.arr("volumeMounts", |m| {
                if admitted {
                    m.obj(|v| {
                        v.str("mountPath", "/var/run/secrets/kubernetes.io/serviceaccount")
                            .str("name", "kube-api-access")
                            .bool("readOnly", true);
                    });
                }
                if config {
                    m.obj(|v| {
                        v.str("mountPath", "/etc/app").str("name", "config");
                    });
                }
                if data {
                    m.obj(|v| {
                        v.str("mountPath", "/var/lib/app").str("name", "data");
                    });
                }
            });
        }
    });
}

/// The pod's spec, keys in order (`admitted`: after the admission plugins' additions).
fn write_pod_spec(out: &mut String, shape: &PodShape, wl: &Workload, admitted: bool) {
    let mut spec = Obj::new(out);
    let s = &mut spec;
    s.arr("containers", |a| {
        for (i, (c, img)) in wl.containers.iter().zip(&shape.images).enumerate() {
            let padding = if i == 0 { wl.padding } else { 0 };
            write_container_spec(a, c, img, shape, i == 0, padding, admitted);
        }
    });
    s.str("dnsPolicy", "ClusterFirst")
        .bool("enableServiceLinks", true);
    if !wl.init.is_empty() {
        s.arr("initContainers", |a| {
            for (c, img) in wl.init.iter().zip(&shape.init_images) {
                write_container_spec(a, c, img, shape, false, 0, admitted);
            }
        });
    }
    if admitted {
        s.str("preemptionPolicy", "PreemptLowerPriority").int(
            "priority",
            if wl.priority_class.is_some() {
                1_000_000
            } else {
                0
            },
        );
    }
    s.opt_str("priorityClassName", wl.priority_class.as_deref());
    if let Some(gate) = &shape.readiness_gate {
        s.arr("readinessGates", |a| {
            a.obj(|g| {
                g.str("conditionType", gate);
            });
        });
    }
    s.str(
        "restartPolicy",
        if wl.restart_never() {
            "Never"
        } else {
            "Always"
        },
    )
    .str("schedulerName", "default-scheduler")
    .obj("securityContext", |_| {});
    if admitted {
        s.str("serviceAccount", "default")
            .str("serviceAccountName", "default");
    }
    s.int("terminationGracePeriodSeconds", wl.grace_seconds);
    if admitted {
        s.arr("tolerations", |a| {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                a.obj(|t| {
                    t.str("effect", "NoExecute")
                        .str("key", key)
                        .str("operator", "Exists")
                        .int("tolerationSeconds", 300);
                });
            }
        });
    }
    let config = shape.config_map.as_deref();
    if admitted || config.is_some() || shape.claim.is_some() {
        s.arr("volumes", |a| {
            if admitted {
                a.obj(write_api_access_volume);
            }
            if let Some(cm) = config {
                a.obj(|v| {
                    v.obj("configMap", |c| {
                        c.int("defaultMode", 420).str("name", cm);
                    })
                    .str("name", "config");
                });
            }
            if let Some(claim) = &shape.claim {
                a.obj(|v| {
                    v.str("name", "data").obj("persistentVolumeClaim", |p| {
                        p.str("claimName", &format!("{claim}-{}", shape.name));
                    });
                });
            }
        });
    }
    spec.end();
}

/// The projected service-account volume the ServiceAccount admission plugin adds.
fn write_api_access_volume(v: &mut Obj<'_>) {
    v.str("name", "kube-api-access").obj("projected", |p| {
        p.int("defaultMode", 420).arr("sources", |s| {
            s.obj(|t| {
                t.obj("serviceAccountToken", |a| {
                    a.int("expirationSeconds", 3607).str("path", "token");
                });
            })
            .obj(|c| {
                c.obj("configMap", |m| {
                    m.arr("items", |i| {
                        i.obj(|k| {
                            k.str("key", "ca.crt").str("path", "ca.crt");
                        });
                    })
                    .str("name", "kube-root-ca.crt");
                });
            })
            .obj(|d| {
                d.obj("downwardAPI", |m| {
                    m.arr("items", |i| {
                        i.obj(|k| {
                            k.obj("fieldRef", |f| {
                                f.str("apiVersion", "v1")
                                    .str("fieldPath", "metadata.namespace");
                            })
                            .str("path", "namespace");
                        });
                    });
                });
            });
        });
    });
}

/// A core `v1` Event body as a client sends it (create), or the patch that bumps it.
#[allow(clippy::too_many_arguments)]
pub fn core_event_body(
    name: &str,
    namespace: &str,
    involved: &str,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
    warning: bool,
    count: u32,
    first: i64,
    at: i64,
) -> String {
    if count > 1 {
        return json::object(64 + message.len(), |o| {
            o.int("count", count)
                .text("lastTimestamp", |t| push_seconds(t, at))
                .str("message", message);
        });
    }
    json::object(400 + involved.len() + message.len(), |o| {
        o.str("apiVersion", "v1")
            .int("count", 1)
            .null("eventTime")
            .text("firstTimestamp", |t| push_seconds(t, first))
            .raw("involvedObject", involved)
            .str("kind", "Event")
            .text("lastTimestamp", |t| push_seconds(t, at))
            .str("message", message)
            .obj("metadata", |m| {
                m.null("creationTimestamp")
                    .str("name", name)
                    .str("namespace", namespace);
            })
            .str("reason", reason)
            .str("reportingComponent", component)
            .str("reportingInstance", host.unwrap_or(""))
            .obj("source", |s| {
                s.str("component", component).opt_str("host", host);
            })
            .str("type", if warning { "Warning" } else { "Normal" });
    })
}

/// An `events.k8s.io/v1` Event by the scheduler, or its series patch.
#[allow(clippy::too_many_arguments)]
pub fn scheduler_event_body(
    name: &str,
    namespace: &str,
    regarding: &str,
    reason: &str,
    action: &str,
    note: &str,
    warning: bool,
    series: u32,
    at: i64,
) -> String {
    if series >= 2 {
        return json::object(96, |o| {
            o.obj("series", |s| {
                s.int("count", series)
                    .str("lastObservedTime", &format_micros(at));
            });
        });
    }
    json::object(512 + regarding.len() + note.len(), |o| {
        o.str("action", action)
            .str("apiVersion", "events.k8s.io/v1")
            .null("deprecatedFirstTimestamp")
            .null("deprecatedLastTimestamp")
            .obj("deprecatedSource", |_| {})
            .str("eventTime", &format_micros(at))
            .str("kind", "Event")
            .obj("metadata", |m| {
                m.null("creationTimestamp")
                    .str("name", name)
                    .str("namespace", namespace);
            })
            .str("note", note)
            .str("reason", reason)
            .raw("regarding", regarding)
            .str("reportingController", "default-scheduler")
            .str("reportingInstance", "default-scheduler-control-plane-1")
            .str("type", if warning { "Warning" } else { "Normal" });
    })
}

/// An `involvedObject`/`regarding` reference, as JSON text.
pub struct ObjectReference<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub resource_version: &'a str,
    pub field_path: Option<&'a str>,
}

impl ObjectReference<'_> {
    pub fn json(&self) -> String {
        json::object(192, |o| {
            o.str("apiVersion", self.api_version)
                .opt_str("fieldPath", self.field_path)
                .str("kind", self.kind)
                .str("name", self.name)
                .str("namespace", self.namespace)
                .str("resourceVersion", self.resource_version)
                .str("uid", self.uid);
        })
    }
}

/// The reference to a pod (and a container's fieldPath) in its Events.
pub fn pod_reference(model: &PodModel, wl: &Workload, field: Option<&str>) -> String {
    ObjectReference {
        api_version: "v1",
        kind: "Pod",
        namespace: &wl.namespace,
        name: &model.shape.name,
        uid: &model.shape.uid,
        resource_version: &model.resource_version(),
        field_path: field,
    }
    .json()
}

/// A realistic request latency: a few ms, longer for writes with bodies.
pub fn latency(rng: &mut Rng, write: bool) -> i64 {
    let base = if write { 4.0 } else { 1.5 };
    (rng.lognormal_us(base, 0.6)).clamp(300, 900 * MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_seconds_read_as_formatted_ones() {
        for v in [0, 1, 0xdead_beef, u64::MAX, 1 << 60] {
            let mut out = String::new();
            push_hex(&mut out, v);
            assert_eq!(out, format!("{v:016x}"));
        }
        assert_eq!(seconds(1_767_225_599_999_990), "2025-12-31T23:59:59Z");
        assert_eq!(seconds(-1), "1969-12-31T23:59:59Z");
        // Slots are shared by seconds 64 apart; a year past 9999 has the long form.
        assert_eq!(seconds(64_000_000 - 1), "1970-01-01T00:01:03Z");
        assert_eq!(seconds(-1), "1969-12-31T23:59:59Z");
        let far = 253_402_300_800_000_000;
        assert_eq!(seconds(far), format_micros(far).replace(".000000", ""));
    }

    #[test]
    fn reused_stamps_read_as_formatted_ones() {
        let mut stamps = Stamps::default();
        let base = 1_767_225_599_999_990; // ten µs before a new year
        let times = [
            base,
            base + 5,
            base + 10,
            base + 11,
            base - 1_000_000,
            -1,
            0,
            253_402_300_800_000_000, // year 10000: the general formatter's form
            253_402_300_800_000_001,
            base,
        ];
        for t in times {
            let mut out = String::from("x");
            stamps.push(&mut out, t);
            assert_eq!(out, format!("x{}", format_micros(t)), "{t}");
        }
    }
}
