//! Turns planned steps into the audit events a kube-apiserver writes for them: the
//! request as each component sends it, the response the apiserver returns (the full pod
//! at RequestResponse), and the envelope, field for field.

use std::collections::HashMap;
use std::rc::Rc;

use loupe_audit::{format_micros, push_micros};
use serde_json::{json, Value};

use crate::cluster::{git_hash, Node, Workload, WorkloadKind, CONTROL_PLANE_MINOR, READINESS_GATE};
use crate::json;
use crate::model::*;
use crate::plan::PodShape;
use crate::rng::Rng;

/// JSON text put together from literal pieces and serialized values, in one buffer.
struct JsonText(String);

impl JsonText {
    fn with_capacity(n: usize) -> JsonText {
        JsonText(String::with_capacity(n))
    }

    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn value(&mut self, value: &Value) {
        json::push_value(&mut self.0, value);
    }

    fn finish(self) -> String {
        self.0
    }
}

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
    identity: std::cell::OnceCell<String>,
    annotations: std::cell::OnceCell<String>,
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
pub struct Actors {
    kubelets: Vec<Rc<Actor>>,
    named: HashMap<String, Rc<Actor>>,
}

impl Actors {
    pub fn new(nodes: &[Node]) -> Actors {
        Actors {
            kubelets: nodes.iter().map(|n| Rc::new(Actor::kubelet(n))).collect(),
            named: HashMap::new(),
        }
    }
    pub fn kubelet(&self, node: usize) -> Rc<Actor> {
        self.kubelets[node.min(self.kubelets.len().saturating_sub(1))].clone()
    }
    fn named(&mut self, key: &str, make: impl FnOnce() -> Actor) -> Rc<Actor> {
        if let Some(a) = self.named.get(key) {
            return a.clone();
        }
        let a = Rc::new(make());
        self.named.insert(key.to_string(), a.clone());
        a
    }
    pub fn controller(&mut self, name: &str) -> Rc<Actor> {
        self.named(&format!("controller/{name}"), || Actor::controller(name))
    }
    pub fn scheduler(&mut self) -> Rc<Actor> {
        self.named("scheduler", Actor::scheduler)
    }
    pub fn user(&mut self) -> Rc<Actor> {
        self.named("user", Actor::user)
    }
    /// A control-plane component's leader-election client (x509 user, `/leader-election`).
    pub fn leader_election(&mut self, component: &str, user: &str) -> Rc<Actor> {
        self.named(&format!("leader/{component}"), || Actor {
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
    pub fn drainer(&mut self) -> Rc<Actor> {
        self.named("drain", || {
            let mut a = Actor::user();
            a.agent = format!(
                "kubectl/v1.{CONTROL_PLANE_MINOR}.2 (linux/amd64) kubernetes/{} drain",
                git_hash(CONTROL_PLANE_MINOR)
            );
            a
        })
    }
    pub fn service(&mut self, namespace: &str, name: &str, agent: &str) -> Rc<Actor> {
        self.named(&format!("service/{namespace}/{name}"), || {
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
    pub actor: Rc<Actor>,
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
        actor: Rc<Actor>,
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
        j.push_str("{\"resource\":");
        json::push_str(j, self.resource);
        for (key, value) in [
            ("namespace", self.namespace.as_str()),
            ("name", &self.name),
            ("uid", &self.uid),
            ("apiGroup", self.api_group),
        ] {
            push_field(j, key, value);
        }
        j.push_str(",\"apiVersion\":");
        json::push_str(j, self.api_version);
        push_field(j, "resourceVersion", &self.resource_version);
        push_field(j, "subresource", self.subresource);
        j.push('}');
    }

    /// The object's path, escaped for a JSON string (without the quotes).
    fn push_path(&self, j: &mut String) {
        if self.api_group.is_empty() {
            j.push_str("/api/v1");
        } else {
            j.push_str("/apis/");
            json::push_unquoted(j, self.api_group);
            j.push('/');
            json::push_unquoted(j, self.api_version);
        }
        for (head, piece) in [
            ("/namespaces/", self.namespace.as_str()),
            ("/", self.resource),
            ("/", &self.name),
            ("/", self.subresource),
        ] {
            if !piece.is_empty() {
                j.push_str(head);
                json::push_unquoted(j, piece);
            }
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
    out: &mut Vec<Line>,
) {
    let received_at = req.at - req.latency;
    let event = |stage: &Stage, at: i64| Line {
        key: lag(at),
        json: envelope(req, audit_id, stage, received_at, at),
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
fn envelope(req: &Request, audit_id: &str, stage: &Stage, received_at: i64, at: i64) -> String {
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
    push_micros(&mut j, received_at);
    j.push_str("\",\"stageTimestamp\":\"");
    push_micros(&mut j, at);
    j.push('"');
    if stage.responded {
        j.push(',');
        j.push_str(req.actor.annotations());
    }
    j.push('}');
    debug_assert!(j.len() <= capacity, "the envelope outgrew its estimate");
    j
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
fn seconds(us: i64) -> String {
    let s = format_micros(us.div_euclid(1_000_000) * 1_000_000);
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s,
    }
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
        let spec = to_json(&pod_spec(&shape, wl, true));
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

    fn metadata(&self, wl: &Workload) -> Value {
        let mut labels = serde_json::Map::new();
        for (k, v) in &wl.labels {
            labels.insert(k.clone(), json!(v));
        }
        match wl.kind {
            WorkloadKind::Deployment => {
                let hash = wl.owner.rsplit('-').next().unwrap_or("");
                labels.insert("pod-template-hash".into(), json!(hash));
            }
            WorkloadKind::StatefulSet => {
                labels.insert(
                    "apps.kubernetes.io/pod-index".into(),
                    json!(self.shape.name.rsplit('-').next().unwrap_or("0")),
                );
                labels.insert(
                    "controller-revision-hash".into(),
                    json!(format!("{}-6d8f7c9b5", wl.name)),
                );
                labels.insert(
                    "statefulset.kubernetes.io/pod-name".into(),
                    json!(self.shape.name),
                );
            }
            WorkloadKind::Job => {
                labels.insert("batch.kubernetes.io/job-name".into(), json!(wl.name));
                labels.insert("job-name".into(), json!(wl.name));
            }
            WorkloadKind::DaemonSet => {
                labels.insert("controller-revision-hash".into(), json!("5f6d8c7b9"));
                labels.insert("pod-template-generation".into(), json!("1"));
            }
        }
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!(self.shape.name));
        if let Some(g) = &self.shape.generate_name {
            m.insert("generateName".into(), json!(g));
        }
        m.insert("namespace".into(), json!(wl.namespace));
        m.insert("uid".into(), json!(self.shape.uid));
        m.insert("resourceVersion".into(), json!(self.rv.to_string()));
        m.insert(
            "creationTimestamp".into(),
            json!(seconds(self.shape.created_at)),
        );
        if let Some((deadline, grace)) = self.deletion {
            m.insert("deletionTimestamp".into(), json!(seconds(deadline)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        m.insert("labels".into(), Value::Object(labels));
        let mut annotations = serde_json::Map::new();
        if wl.padding > 0 {
            annotations.insert(
                "kubectl.kubernetes.io/restartedAt".into(),
                json!("2025-12-30T09:12:44Z"),
            );
            annotations.insert("example.com/owner-team".into(), json!("shop-platform"));
        }
        if let Some(tp) = &self.shape.traceparent {
            annotations.insert("traceparent".into(), json!(tp));
        }
        if !annotations.is_empty() {
            m.insert("annotations".into(), Value::Object(annotations));
        }
        m.insert(
            "ownerReferences".into(),
            json!([{"apiVersion": wl.kind.owner_api(), "kind": wl.kind.owner_kind(), "name": wl.owner,
                    "uid": wl.owner_uid, "controller": true, "blockOwnerDeletion": true}]),
        );
        if !self.finalizers.is_empty() {
            m.insert("finalizers".into(), json!(self.finalizers));
        }
        Value::Object(m)
    }

    fn container_json(c: &ContainerStatus, name: &str) -> Value {
        let state = |s: &CState, times: (i64, i64), started: Option<i64>| match s {
            CState::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            CState::Running { .. } => {
                json!({"running": {"startedAt": seconds(started.unwrap_or(times.0))}})
            }
            CState::Terminated { exit, reason } => {
                let mut t = json!({"exitCode": exit, "reason": reason,
                    "startedAt": seconds(times.0), "finishedAt": seconds(times.1)});
                if let Some(id) = &c.container_id {
                    t["containerID"] = json!(id);
                }
                json!({"terminated": t})
            }
        };
        let mut v = json!({
            "name": name,
            "state": state(&c.state, c.last_times, c.started_at),
            "lastState": c.last.as_ref().map_or(json!({}), |l| state(l, c.last_times, None)),
            "ready": c.ready,
            "restartCount": c.restarts,
            "image": c.image,
            "imageID": c.image_id.clone().unwrap_or_default(),
            "started": matches!(c.state, CState::Running { .. }),
        });
        if let Some(id) = &c.container_id {
            v["containerID"] = json!(id);
        }
        v
    }

    fn status_json(&self, wl: &Workload) -> Value {
        let mut s = serde_json::Map::new();
        s.insert("phase".into(), json!(self.phase));
        if !self.conditions.is_empty() {
            s.insert(
                "conditions".into(),
                Value::Array(self.conditions.iter().map(condition_json).collect()),
            );
        }
        if let Some(n) = &self.nominated {
            s.insert("nominatedNodeName".into(), json!(n));
        }
        if let Some((reason, message)) = &self.reason {
            s.insert("message".into(), json!(message));
            s.insert("reason".into(), json!(reason));
        }
        if let Some(ip) = &self.host_ip {
            s.insert("hostIP".into(), json!(ip));
            s.insert("hostIPs".into(), json!([{"ip": ip}]));
        }
        if let Some(ip) = &self.pod_ip {
            s.insert("podIP".into(), json!(ip));
            s.insert("podIPs".into(), json!([{"ip": ip}]));
        }
        if let Some(t) = self.start_time {
            s.insert("startTime".into(), json!(seconds(t)));
        }
        if self.start_time.is_some() {
            if !self.init.is_empty() {
                let list = self
                    .init
                    .iter()
                    .zip(&wl.init)
                    .map(|(c, spec)| Self::container_json(c, &spec.name));
                s.insert("initContainerStatuses".into(), Value::Array(list.collect()));
            }
            let list = self
                .main
                .iter()
                .zip(&wl.containers)
                .map(|(c, spec)| Self::container_json(c, &spec.name));
            s.insert("containerStatuses".into(), Value::Array(list.collect()));
        }
        s.insert("qosClass".into(), json!("Burstable"));
        Value::Object(s)
    }

    /// The whole pod, as in a RequestResponse response.
    pub fn pod_json(&self, wl: &Workload) -> String {
        let mut pod = JsonText::with_capacity(self.spec.len() + 4096);
        pod.raw("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":");
        pod.value(&self.metadata(wl));
        pod.raw(",\"spec\":");
        match &self.node_name {
            Some(node) => {
                pod.raw("{\"nodeName\":");
                pod.value(&json!(node));
                pod.raw(",");
                pod.raw(&self.spec[1..]);
            }
            None => pod.raw(&self.spec),
        }
        pod.raw(",\"status\":");
        pod.value(&self.status_json(wl));
        pod.raw("}");
        pod.finish()
    }

    /// The pod as its controller sends it in the create: the template, before admission
    /// plugins (ServiceAccount, DefaultTolerationSeconds, Priority) add to it; no name.
    pub fn create_request(&self, wl: &Workload) -> String {
        let mut meta = self.metadata(wl);
        if let Some(m) = meta.as_object_mut() {
            if self.shape.generate_name.is_some() {
                m.remove("name");
            }
            m.remove("uid");
            m.remove("resourceVersion");
            // Finalizers are added at admission (a mutating webhook), not in the template.
            m.remove("finalizers");
            m.remove("namespace");
            m.insert("creationTimestamp".into(), Value::Null);
        }
        let (meta, spec) = (to_json(&meta), to_json(&pod_spec(&self.shape, wl, false)));
        let mut pod = String::with_capacity(meta.len() + spec.len() + 96);
        pod.push_str("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":");
        pod.push_str(&meta);
        pod.push_str(",\"spec\":");
        pod.push_str(&spec);
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
        let mut status = serde_json::Map::new();
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
        if !changed_conditions.is_empty() {
            status.insert(
                "$setElementOrder/conditions".into(),
                Value::Array(
                    self.conditions
                        .iter()
                        .map(|c| json!({"type": c.kind}))
                        .collect(),
                ),
            );
            status.insert(
                "conditions".into(),
                Value::Array(
                    self.conditions
                        .iter()
                        .filter(|c| changed_conditions.contains(&c.kind))
                        .map(condition_json)
                        .collect(),
                ),
            );
        }
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
                        c.container_id = Some(format!(
                            "containerd://{:016x}{:016x}{:016x}{:016x}",
                            self.rng.next_u64(),
                            self.rng.next_u64(),
                            self.rng.next_u64(),
                            self.rng.next_u64()
                        ));
                        c.image_id = Some(format!(
                            "{}@sha256:{:016x}{:016x}{:016x}{:016x}",
                            c.image.split(':').next().unwrap_or(""),
                            self.rng.next_u64(),
                            self.rng.next_u64(),
                            self.rng.next_u64(),
                            self.rng.next_u64()
                        ));
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
        if let Some(phase) = change.phase {
            if phase != self.phase {
                self.phase = phase;
                status.insert("phase".into(), json!(phase));
            }
        }
        if change.host_ip && self.host_ip.is_none() {
            self.host_ip = Some(node.ip.clone());
            status.insert("hostIP".into(), json!(node.ip));
            status.insert("hostIPs".into(), json!([{"ip": node.ip}]));
        }
        if change.assign_ip && self.pod_ip.is_none() {
            let ip = node.allocate_ip();
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{"ip": ip}]));
            self.pod_ip = Some(ip);
        }
        if change.start_time && self.start_time.is_none() {
            self.start_time = Some(at);
            status.insert("startTime".into(), json!(seconds(at)));
            init_changed = !self.init.is_empty();
            main_changed = true;
            status.insert("qosClass".into(), json!("Burstable"));
        }
        if let Some((reason, message)) = &change.pod_reason {
            self.reason = Some((reason, message.clone()));
            status.insert("message".into(), json!(message));
            status.insert("reason".into(), json!(reason));
        }
        if let Some(n) = &change.nominated {
            self.nominated = Some(n.clone());
            status.insert("nominatedNodeName".into(), json!(n));
        }
        if init_changed && !self.init.is_empty() {
            let list = self
                .init
                .iter()
                .zip(&wl.init)
                .map(|(c, spec)| Self::container_json(c, &spec.name));
            status.insert("initContainerStatuses".into(), Value::Array(list.collect()));
        }
        if main_changed {
            let list = self
                .main
                .iter()
                .zip(&wl.containers)
                .map(|(c, spec)| Self::container_json(c, &spec.name));
            status.insert("containerStatuses".into(), Value::Array(list.collect()));
        }
        self.bump();
        to_json(&json!({"metadata": {"uid": self.shape.uid}, "status": status}))
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

fn condition_json(c: &Condition) -> Value {
    let mut v = json!({"type": c.kind, "status": if c.status { "True" } else { "False" },
        "lastProbeTime": null, "lastTransitionTime": seconds(c.at)});
    if let Some(r) = c.reason {
        v["reason"] = json!(r);
    }
    if let Some(m) = &c.message {
        v["message"] = json!(m);
    }
    v
}

fn probe(path: &str, period: u32, failure: u32) -> Value {
    json!({"httpGet": {"path": path, "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1,
           "periodSeconds": period, "successThreshold": 1, "failureThreshold": failure})
}

fn container_spec(
    spec: &crate::cluster::ContainerSpec,
    image: &str,
    shape: &PodShape,
    main: bool,
    padding: usize,
    admitted: bool,
) -> Value {
    let mut c = serde_json::Map::new();
    c.insert("name".into(), json!(spec.name));
    c.insert("image".into(), json!(image));
    if main {
        c.insert(
            "ports".into(),
            json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}]),
        );
        let mut env: Vec<Value> = (0..padding)
            .map(|i| json!({"name": format!("FEATURE_FLAG_{i}"), "value": format!("enabled-{i}-{}", "x".repeat(60))}))
            .collect();
        if let Some(secret) = &shape.secret_env {
            env.push(json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}));
        }
        if !env.is_empty() {
            c.insert("env".into(), Value::Array(env));
        }
    }
    c.insert(
        "resources".into(),
        json!({"limits": {"memory": format!("{}Mi", spec.mem_mi * 2)},
               "requests": {"cpu": format!("{}m", spec.cpu_m), "memory": format!("{}Mi", spec.mem_mi)}}),
    );
    if spec.sidecar {
        c.insert("restartPolicy".into(), json!("Always"));
    }
    let mut mounts = Vec::new();
    if admitted {
        mounts.push(json!({"name": "kube-api-access", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}));
    }
    if main && shape.config_map.is_some() {
        mounts.push(json!({"name": "config", "mountPath": "/etc/app"}));
    }
    if main && shape.claim.is_some() {
        mounts.push(json!({"name": "data", "mountPath": "/var/lib/app"}));
    }
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), Value::Array(mounts));
    }
    if main && spec.liveness {
        c.insert("livenessProbe".into(), probe("/livez", 10, 3));
    }
    if main && shape.readiness_probe {
        c.insert("readinessProbe".into(), probe("/readyz", 5, 3));
    }
    if main && shape.startup_probe {
        c.insert("startupProbe".into(), probe("/startz", 10, 3));
    }
    let post_start = spec.post_start || (main && shape.post_start);
    let pre_stop = spec.pre_stop || (main && shape.pre_stop);
    if main && (post_start || pre_stop) {
        let mut l = serde_json::Map::new();
        if post_start {
            l.insert(
                "postStart".into(),
                json!({"exec": {"command": ["/bin/sh", "-c", "/app/warmup.sh"]}}),
            );
        }
        if pre_stop {
            l.insert(
                "preStop".into(),
                json!({"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}),
            );
        }
        c.insert("lifecycle".into(), Value::Object(l));
    }
    c.insert(
        "terminationMessagePath".into(),
        json!("/dev/termination-log"),
    );
    c.insert("terminationMessagePolicy".into(), json!("File"));
    c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    Value::Object(c)
}

fn pod_spec(shape: &PodShape, wl: &Workload, admitted: bool) -> Value {
    let mut volumes = Vec::new();
    if admitted {
        volumes.push(json!({"name": "kube-api-access", "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
            "defaultMode": 420}}));
    }
    if let Some(cm) = &shape.config_map {
        volumes.push(json!({"name": "config", "configMap": {"name": cm, "defaultMode": 420}}));
    }
    if let Some(claim) = &shape.claim {
        volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("{claim}-{}", shape.name)}}));
    }
    let mut spec = serde_json::Map::new();
    if !volumes.is_empty() {
        spec.insert("volumes".into(), Value::Array(volumes));
    }
    if !wl.init.is_empty() {
        let init: Vec<Value> = wl
            .init
            .iter()
            .zip(&shape.init_images)
            .map(|(c, img)| container_spec(c, img, shape, false, 0, admitted))
            .collect();
        spec.insert("initContainers".into(), Value::Array(init));
    }
    let containers: Vec<Value> = wl
        .containers
        .iter()
        .zip(&shape.images)
        .enumerate()
        .map(|(i, (c, img))| {
            container_spec(
                c,
                img,
                shape,
                i == 0,
                if i == 0 { wl.padding } else { 0 },
                admitted,
            )
        })
        .collect();
    spec.insert("containers".into(), Value::Array(containers));
    spec.insert(
        "restartPolicy".into(),
        json!(if wl.restart_never() {
            "Never"
        } else {
            "Always"
        }),
    );
    spec.insert(
        "terminationGracePeriodSeconds".into(),
        json!(wl.grace_seconds),
    );
    spec.insert("dnsPolicy".into(), json!("ClusterFirst"));
    if admitted {
        spec.insert("serviceAccountName".into(), json!("default"));
        spec.insert("serviceAccount".into(), json!("default"));
    }
    spec.insert("securityContext".into(), json!({}));
    spec.insert("schedulerName".into(), json!("default-scheduler"));
    if admitted {
        spec.insert(
            "tolerations".into(),
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                   {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
    }
    if let Some(pc) = &wl.priority_class {
        spec.insert("priorityClassName".into(), json!(pc));
    }
    if admitted {
        spec.insert(
            "priority".into(),
            json!(if wl.priority_class.is_some() {
                1_000_000
            } else {
                0
            }),
        );
        spec.insert("preemptionPolicy".into(), json!("PreemptLowerPriority"));
    }
    spec.insert("enableServiceLinks".into(), json!(true));
    if let Some(gate) = &shape.readiness_gate {
        spec.insert("readinessGates".into(), json!([{"conditionType": gate}]));
    }
    Value::Object(spec)
}

/// A core `v1` Event body as a client sends it (create), or the patch that bumps it.
#[allow(clippy::too_many_arguments)]
pub fn core_event_body(
    name: &str,
    namespace: &str,
    involved: Value,
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
        return to_json(&json!({"count": count, "lastTimestamp": seconds(at), "message": message}));
    }
    let mut source = json!({"component": component});
    if let Some(h) = host {
        source["host"] = json!(h);
    }
    to_json(&json!({"kind": "Event", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "involvedObject": involved, "reason": reason, "message": message, "source": source,
        "firstTimestamp": seconds(first), "lastTimestamp": seconds(at), "count": 1,
        "type": if warning { "Warning" } else { "Normal" }, "eventTime": null,
        "reportingComponent": component, "reportingInstance": host.unwrap_or("")}))
}

/// An `events.k8s.io/v1` Event by the scheduler, or its series patch.
#[allow(clippy::too_many_arguments)]
pub fn scheduler_event_body(
    name: &str,
    namespace: &str,
    regarding: Value,
    reason: &str,
    action: &str,
    note: &str,
    warning: bool,
    series: u32,
    at: i64,
) -> String {
    if series >= 2 {
        return to_json(
            &json!({"series": {"count": series, "lastObservedTime": format_micros(at)}}),
        );
    }
    to_json(&json!({"kind": "Event", "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "eventTime": format_micros(at), "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-control-plane-1", "action": action, "reason": reason,
        "regarding": regarding, "note": note, "type": if warning { "Warning" } else { "Normal" },
        "deprecatedSource": {}, "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null}))
}

/// The `involvedObject`/`regarding` reference to a pod (and a container's fieldPath).
pub fn pod_reference(model: &PodModel, wl: &Workload, field: Option<String>) -> Value {
    let mut v = json!({"kind": "Pod", "namespace": wl.namespace, "name": model.shape.name,
        "uid": model.shape.uid, "apiVersion": "v1", "resourceVersion": model.resource_version()});
    if let Some(f) = field {
        v["fieldPath"] = json!(f);
    }
    v
}

/// A realistic request latency: a few ms, longer for writes with bodies.
pub fn latency(rng: &mut Rng, write: bool) -> i64 {
    let base = if write { 4.0 } else { 1.5 };
    (rng.lognormal_us(base, 0.6)).clamp(300, 900 * MS)
}
