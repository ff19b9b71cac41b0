//! Every result code has a case: a pod's facts as the apiserver records them (messages in
//! the wording of the Kubernetes versions that differ), the code and detail expected.

use std::collections::BTreeSet;

use loupe_diagnose::{diagnose, ActionResult, RuleBook};
use loupe_facts::FactRecord;
use loupe_trace::Action;
use serde_json::{json, Value};

const S: i64 = 1_000_000;
const KUBELET: &str = "system:node:node-1";

/// A pod's timeline, written fact by fact at a moving clock.
struct Pod {
    facts: Vec<FactRecord>,
    t: i64,
}

fn by(user: &str, component: &str) -> Value {
    json!({"user": user, "component": component})
}

fn container(name: &str, init: bool) -> Value {
    json!({"name": name, "image": format!("reg.example.com/{name}:1"), "init": init,
           "sidecar": false, "probes": [], "post_start": false, "pre_stop": false, "privileged": false})
}

impl Pod {
    fn with(containers: Vec<Value>, volumes: Vec<Value>, gates: &[&str]) -> Pod {
        let mut p = Pod {
            facts: Vec::new(),
            t: 0,
        };
        p.fact(
            json!({"type": "pod_created", "namespace": "shop", "name": "web-1",
            "scheduler": "default-scheduler", "containers": containers, "volumes": volumes,
            "readiness_gates": gates, "host_network": false, "termination_grace_seconds": 30,
            "by": by("system:serviceaccount:kube-system:replicaset-controller", "controller")}),
        );
        p
    }
    fn new() -> Pod {
        Pod::with(vec![container("app", false)], vec![], &[])
    }
    fn refused() -> Pod {
        Pod {
            facts: Vec::new(),
            t: 0,
        }
    }
    fn at(&mut self, secs: f64) -> &mut Pod {
        self.t = (secs * S as f64) as i64;
        self
    }
    fn fact(&mut self, mut v: Value) -> &mut Pod {
        v["ts"] = self.t.into();
        v["audit_id"] = format!("a{:03}", self.facts.len()).into();
        v["seq"] = 0.into();
        v["late"] = false.into();
        let record: FactRecord =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        self.facts.push(record);
        self
    }
    fn event_by(
        &mut self,
        component: &str,
        reason: &str,
        message: &str,
        c: Option<&str>,
        count: i32,
    ) -> &mut Pod {
        let mut e = json!({"type": "event", "api": "v1", "reason": reason, "message": message,
            "event_type": "Warning", "component": component, "count": count, "repeat": count > 1});
        if let Some(c) = c {
            e["container"] = c.into();
        }
        self.fact(e)
    }
    fn ev(&mut self, reason: &str, message: &str) -> &mut Pod {
        self.event_by("kubelet", reason, message, None, 1)
    }
    fn ev_c(&mut self, reason: &str, message: &str, c: &str) -> &mut Pod {
        self.event_by("kubelet", reason, message, Some(c), 1)
    }
    fn sched(&mut self, message: &str) -> &mut Pod {
        self.event_by("default-scheduler", "FailedScheduling", message, None, 1)
    }
    fn rejected(&mut self, code: u16, reason: &str, message: &str) -> &mut Pod {
        self.fact(json!({"type": "create_rejected", "code": code, "reason": reason,
            "message": message, "by": by("system:serviceaccount:kube-system:replicaset-controller", "controller")}))
    }
    fn bound(&mut self) -> &mut Pod {
        self.fact(json!({"type": "bound", "node": "node-1", "by": by("system:kube-scheduler", "scheduler")}))
    }
    fn picked(&mut self) -> &mut Pod {
        self.fact(json!({"type": "host_ip", "ip": "10.0.0.1"}))
    }
    fn cond(
        &mut self,
        c: &str,
        status: &str,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> &mut Pod {
        self.fact(json!({"type": "condition", "condition": c, "status": status, "reason": reason, "message": message}))
    }
    fn phase(&mut self, phase: &str, reason: Option<&str>, message: Option<&str>) -> &mut Pod {
        self.fact(json!({"type": "phase", "phase": phase, "reason": reason, "message": message}))
    }
    fn waiting(&mut self, c: &str, init: bool, reason: &str, message: &str) -> &mut Pod {
        self.fact(json!({"type": "container_waiting", "container": c, "init": init, "reason": reason, "message": message}))
    }
    fn running(&mut self, c: &str, init: bool) -> &mut Pod {
        self.fact(json!({"type": "container_running", "container": c, "init": init}))
    }
    fn terminated(&mut self, c: &str, init: bool, reason: &str, exit: i32) -> &mut Pod {
        self.fact(json!({"type": "container_terminated", "container": c, "init": init, "reason": reason, "exit_code": exit}))
    }
    fn setup(&mut self) -> &mut Pod {
        self.cond("PodReadyToStartContainers", "True", None, None)
    }
    fn pulled(&mut self, c: &str) -> &mut Pod {
        self.ev_c(
            "Pulled",
            &format!("Container image \"reg.example.com/{c}:1\" already present on machine"),
            c,
        )
    }
    fn started(&mut self, c: &str) -> &mut Pod {
        self.ev_c("Created", &format!("Created container {c}"), c)
            .ev_c("Started", &format!("Started container {c}"), c)
    }
    fn ready(&mut self) -> &mut Pod {
        self.cond("ContainersReady", "True", None, None)
            .cond("Ready", "True", None, None)
    }
    /// Bound, picked up, set up, the app pulled, started, running and Ready.
    fn delivered(&mut self) -> &mut Pod {
        let t = self.t as f64 / S as f64;
        self.at(t + 0.02)
            .bound()
            .at(t + 0.1)
            .picked()
            .at(t + 0.8)
            .setup()
            .at(t + 0.9)
            .pulled("app")
            .at(t + 1.0)
            .started("app")
            .at(t + 1.1)
            .phase("Running", None, None)
            .running("app", false)
            .at(t + 1.5)
            .ready()
    }
    fn delete(&mut self, finalizers: &[&str]) -> &mut Pod {
        self.fact(
            json!({"type": "deletion_requested", "grace_seconds": 30, "finalizers": finalizers,
            "by": by("system:serviceaccount:kube-system:replicaset-controller", "controller")}),
        )
    }
    fn gone(&mut self) -> &mut Pod {
        self.fact(json!({"type": "gone", "by": by(KUBELET, "kubelet")}))
    }
    fn upgrade(&mut self) -> &mut Pod {
        self.fact(
            json!({"type": "image_changed", "container": "app", "from": "reg.example.com/app:1",
            "to": "reg.example.com/app:2", "by": by("admin", "user")}),
        )
    }
    fn result(&self, action: Action, now: f64) -> ActionResult {
        static BOOK: std::sync::OnceLock<RuleBook> = std::sync::OnceLock::new();
        let book = BOOK.get_or_init(RuleBook::defaults);
        diagnose(book, &self.facts, (now * S as f64) as i64)
            .into_iter()
            .find(|r| r.action == action)
            .unwrap_or_else(|| panic!("no {action:?} result"))
    }
}

struct Case {
    name: &'static str,
    action: Action,
    pod: Pod,
    now: f64,
    code: &'static str,
    detail: Option<&'static str>,
}

fn case(
    name: &'static str,
    pod: &mut Pod,
    now: f64,
    code: &'static str,
    detail: Option<&'static str>,
) -> Case {
    case_of(name, Action::Create, pod, now, code, detail)
}

fn case_of(
    name: &'static str,
    action: Action,
    pod: &mut Pod,
    now: f64,
    code: &'static str,
    detail: Option<&'static str>,
) -> Case {
    Case {
        name,
        action,
        pod: std::mem::replace(pod, Pod::refused()),
        now,
        code,
        detail,
    }
}

fn stuck() -> Pod {
    let mut p = Pod::new();
    p.at(0.02).bound().at(0.1).picked();
    p
}

fn create_cases() -> Vec<Case> {
    let pvc = json!({"name": "data", "kind": "persistentVolumeClaim", "claim": "data-web-1"});
    let mut post_start = container("app", false);
    post_start["post_start"] = true.into();
    vec![
        // API and admission
        case("quota (1.31+ wording)", Pod::refused().rejected(403, "Forbidden", "pods \"web-7d9c-x\" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=19, limited: limits.cpu=20").at(5.0).rejected(403, "Forbidden", "pods \"web-7d9c-y\" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=19, limited: limits.cpu=20"), 10.0, "ApiQuotaExceeded", Some("compute")),
        case("a validating webhook denies", Pod::refused().rejected(400, "BadRequest", "admission webhook \"validate.kyverno.svc-fail\" denied the request: policy require-labels: label app is required"), 1.0, "ApiAdmissionDenied", Some("validate.kyverno.svc-fail")),
        case("Pod Security admission", Pod::refused().rejected(403, "Forbidden", "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"), 1.0, "ApiAdmissionDenied", Some("restricted:latest")),
        case("a webhook times out", Pod::refused().rejected(500, "InternalError", "Internal error occurred: failed calling webhook \"mpod.kb.io\": failed to call webhook: Post \"https://webhook.svc:443/mutate\": context deadline exceeded"), 1.0, "ApiWebhookFailure", Some("mpod.kb.io")),
        case("an invalid spec", Pod::refused().rejected(422, "Invalid", "Pod \"x\" is invalid: spec.containers[0].image: Required value"), 1.0, "ApiInvalidSpec", None),
        case("the apiserver times out", Pod::refused().rejected(504, "Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded"), 1.0, "ApiServerError", None),
        case("a name conflict", Pod::refused().rejected(409, "AlreadyExists", "pods \"db-0\" already exists"), 1.0, "ApiRejected", Some("AlreadyExists")),
        // Scheduling
        case("preempted victims, then bound", Pod::new().at(0.01).sched("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 2 No preemption victims found for incoming pod, 1 Preemption is possible.").fact(json!({"type": "nominated", "node": "node-2"})).at(20.0).delivered(), 30.0, "PreemptionWait", Some("node-2")),
        case("scheduling gates", Pod::new().at(0.01).cond("PodScheduled", "False", Some("SchedulingGated"), Some("Scheduling is blocked due to non-empty scheduling gates")), 60.0, "SchedulingGated", None),
        case("provisioning fails in PreBind", Pod::new().at(1.0).sched("running PreBind plugin \"VolumeBinding\": binding volumes: provisioning failed for PVC \"data-web-1\""), 60.0, "PVProvisionFailed", None),
        case("a rejected binding", Pod::new().at(1.0).sched("Binding rejected: Operation cannot be fulfilled on pods/binding \"web-1\": pod web-1 is already assigned to node \"n1\""), 60.0, "SchedulerError", None),
        case("the scheduler's condition", Pod::new().at(1.0).cond("PodScheduled", "False", Some("SchedulerError"), Some("etcdserver: request timed out")), 60.0, "SchedulerError", None),
        case("a missing claim", Pod::new().at(0.01).sched("0/3 nodes are available: persistentvolumeclaim \"data-0\" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."), 60.0, "FailedScheduling_Volume", Some("data-0")),
        case("an unbound claim", Pod::new().at(0.01).sched("0/5 nodes are available: 5 pod has unbound immediate PersistentVolumeClaims. preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."), 60.0, "FailedScheduling_Volume", None),
        case("out of cpu and memory", Pod::new().at(0.01).sched("0/50 nodes are available: 12 Insufficient cpu, 38 Insufficient memory. preemption: 0/50 nodes are available: 50 No preemption victims found for incoming pod."), 60.0, "FailedScheduling_Insufficient", Some("Insufficient cpu")),
        case("the condition alone (no Events)", Pod::new().at(0.01).cond("PodScheduled", "False", Some("Unschedulable"), Some("0/4 nodes are available: 4 Too many pods.")), 60.0, "FailedScheduling_Insufficient", Some("Too many pods")),
        case("affinity outweighs one full node", Pod::new().at(0.01).sched("0/6 nodes are available: 1 Insufficient cpu, 5 node(s) didn't match Pod's node affinity/selector. preemption: 0/6 nodes are available: 6 Preemption is not helpful for scheduling."), 60.0, "FailedScheduling_Affinity", Some("didn't match Pod's node affinity/selector")),
        case("anti-affinity", Pod::new().at(0.01).sched("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."), 60.0, "FailedScheduling_Affinity", Some("didn't match pod anti-affinity rules")),
        case("an untolerated taint (1.25+)", Pod::new().at(0.01).sched("0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."), 60.0, "FailedScheduling_Taint", Some("dedicated: gpu")),
        case("a taint (before 1.25)", Pod::new().at(0.01).sched("0/3 nodes are available: 3 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate."), 60.0, "FailedScheduling_Taint", Some("node-role.kubernetes.io/master: ")),
        case("host ports", Pod::new().at(0.01).sched("0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports."), 60.0, "FailedScheduling_HostPort", None),
        case("cordoned nodes", Pod::new().at(0.01).sched("0/4 nodes are available: 4 node(s) were unschedulable."), 60.0, "FailedScheduling_Unschedulable", None),
        case("no scheduler at all", &mut Pod::new(), 60.0, "NoSchedulerActivity", None),
        case("a slow scheduler", Pod::new().at(8.0).delivered(), 20.0, "ScheduleTooMuchTime", None),
        // Kubelet
        case("the node goes NotReady", Pod::new().at(0.02).bound().at(41.0).event_by("node-controller", "NodeNotReady", "Node is not ready", None, 1), 60.0, "NodeNotReady", None),
        case("a device plugin cannot allocate", Pod::new().at(0.02).bound().at(0.1).ev("UnexpectedAdmissionError", "Allocate failed due to requested number of devices unavailable for nvidia.com/gpu. Requested: 1, Available: 0, which is unexpected").phase("Failed", Some("UnexpectedAdmissionError"), None), 60.0, "UnexpectedAdmissionError", Some("devices unavailable")),
        case("the kubelet is out of cpu", Pod::new().at(0.02).bound().at(0.1).ev("OutOfcpu", "Node didn't have enough resource: cpu, requested: 2000, used: 3500, capacity: 4000").phase("Failed", Some("OutOfcpu"), Some("Pod was rejected: Node didn't have enough resource: cpu")), 60.0, "AdmissionRejected_OutOfResource", Some("cpu")),
        case("node affinity at admission", Pod::new().at(0.02).bound().at(0.1).phase("Failed", Some("NodeAffinity"), Some("Pod was rejected: Predicate NodeAffinity failed")), 60.0, "AdmissionRejected_Other", Some("NodeAffinity")),
        case("a slow kubelet", Pod::new().at(0.02).bound().event_by("default-scheduler", "Scheduled", "Successfully assigned shop/web-1 to node-1", None, 1), 30.0, "KubeletDelay", None),
        // Volumes
        case("multi-attach", Pod::with(vec![container("app", false)], vec![pvc.clone()], &[]).at(0.02).bound().at(0.5).event_by("attachdetach-controller", "FailedAttachVolume", "Multi-Attach error for volume \"pvc-1\" Volume is already exclusively attached to one node and can't be attached to another", None, 1).at(0.6).picked(), 60.0, "VolumeMultiAttach", Some("pvc-1")),
        case("attach fails", stuck().at(2.0).event_by("attachdetach-controller", "FailedAttachVolume", "AttachVolume.Attach failed for volume \"pvc-1\" : rpc error: code = DeadlineExceeded desc = context deadline exceeded", None, 1), 60.0, "VolumeAttachFailed", Some("pvc-1")),
        case("a missing ConfigMap", stuck().at(1.0).ev("FailedMount", "MountVolume.SetUp failed for volume \"cfg\" : configmap \"app-config\" not found"), 60.0, "VolumeSourceMissing", Some("app-config")),
        case("a missing Secret, then the 2m3s timeout", stuck().at(1.0).ev("FailedMount", "MountVolume.SetUp failed for volume \"tls\" : secret \"web-tls\" not found").at(124.0).ev("FailedMount", "Unable to attach or mount volumes: unmounted volumes=[tls], unattached volumes=[], failed to process volumes=[]: timed out waiting for the condition"), 130.0, "VolumeSourceMissing", Some("web-tls")),
        case("a hostPath type check", stuck().at(1.0).ev("FailedMount", "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: /data is not a directory"), 60.0, "InvalidMountConfig", Some("/data is not a directory")),
        case("a CSI mount fails", stuck().at(1.0).ev("FailedMount", "MountVolume.MountDevice failed for volume \"pvc-9\" : rpc error: code = Internal desc = mount failed: exit status 32"), 60.0, "VolumeMountFailed", Some("pvc-9")),
        case("mount timeout (1.26+)", stuck().at(124.0).ev("FailedMount", "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[]: timed out waiting for the condition"), 130.0, "VolumeMountTimeout", Some("data")),
        case("mount timeout (older wording)", stuck().at(124.0).ev("FailedMount", "Unable to mount volumes for pod \"web-1_shop(uid)\": timeout expired waiting for volumes to attach or mount for pod \"shop\"/\"web-1\". list of unmounted volumes=[data]. list of unattached volumes=[data]"), 130.0, "VolumeMountTimeout", None),
        case("a slow attach", Pod::with(vec![container("app", false)], vec![pvc.clone()], &[]).at(0.02).bound().at(0.1).picked().at(45.0).event_by("attachdetach-controller", "SuccessfulAttachVolume", "AttachVolume.Attach succeeded for volume \"pvc-1\"", None, 1).at(46.0).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(47.0).ready(), 60.0, "VolumeAttachTooMuchTime", Some("data")),
        // Network and sandbox
        case("the CNI is not initialised", stuck().at(2.0).ev("NetworkNotReady", "network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"), 60.0, "NetworkNotReady", None),
        case("host-local range full", stuck().at(5.0).ev("FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"ab12\": plugin type=\"host-local\" failed (add): failed to allocate for range 0: no IP addresses available in range set: 10.244.1.1-10.244.1.254"), 60.0, "IPAllocationFailed", None),
        case("Calico IPAM", stuck().at(5.0).ev("FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"ab12\": plugin type=\"calico\" failed (add): failed to request IP addresses: Failed to assign an IP address to container"), 60.0, "IPAllocationFailed", None),
        case("a CNI certificate error", stuck().at(5.0).ev("FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"ab12\": plugin type=\"calico\" failed (add): error getting ClusterInformation: x509: certificate signed by unknown authority"), 60.0, "CNISetupFailed", None),
        case("RunPodSandbox times out", stuck().at(121.0).ev("FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = DeadlineExceeded desc = context deadline exceeded"), 130.0, "SandboxCreateTimeout", None),
        case("the pause image", stuck().at(5.0).ev("FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image \"registry.k8s.io/pause:3.9\": failed to pull image"), 60.0, "SandboxCreateFailed", Some("failed to get sandbox image")),
        case("a sandbox recreate loop", Pod::new().at(0.02).bound().at(0.1).picked().at(0.8).setup().at(10.0).ev("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.").at(20.0).event_by("kubelet", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.", None, 2).at(30.0).event_by("kubelet", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.", None, 3).at(31.0).pulled("app").started("app").phase("Running", None, None).running("app", false).at(32.0).ready(), 60.0, "SandboxRecreateLoop", None),
        case("slow sandbox and network", Pod::new().at(0.02).bound().at(0.1).picked().at(25.0).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(26.0).ready(), 60.0, "PodSetupTooMuchTime", None),
        // Init containers
        case("an init container exits 1", Pod::with(vec![container("migrate", true), container("app", false)], vec![], &[]).at(0.02).bound().at(0.1).picked().at(0.8).setup().at(2.0).running("migrate", true).at(3.0).terminated("migrate", true, "Error", 1).at(4.0).waiting("migrate", true, "CrashLoopBackOff", "back-off 10s restarting failed container=migrate"), 60.0, "InitContainerFailed", Some("migrate")),
        // Images
        case("an invalid reference", stuck().at(1.0).ev_c("InspectFailed", "Failed to apply default image tag \"Nginx:latest\": couldn't parse image name \"Nginx:latest\": invalid reference format: repository name must be lowercase", "app").waiting("app", false, "InvalidImageName", "Failed to apply default image tag"), 60.0, "InvalidImageName", Some("Nginx:latest")),
        case("pull policy Never", stuck().at(1.0).ev_c("ErrImageNeverPull", "Container image \"app:dev\" is not present with pull policy of Never", "app"), 60.0, "ImageNeverPullAbsent", Some("app:dev")),
        case("a missing tag (containerd)", stuck().at(1.0).ev_c("Failed", "Failed to pull image \"nginx:1.99\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:1.99\": failed to resolve reference \"docker.io/library/nginx:1.99\": docker.io/library/nginx:1.99: not found", "app"), 60.0, "ImageNotFound", Some("nginx:1.99")),
        case("a missing tag (docker)", stuck().at(1.0).ev_c("Failed", "Failed to pull image \"app:9\": rpc error: code = Unknown desc = Error response from daemon: manifest for app:9 not found: manifest unknown: manifest unknown", "app"), 60.0, "ImageNotFound", Some("app:9")),
        case("a missing tag, status only", stuck().at(1.0).waiting("app", false, "ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"x:1\": not found"), 60.0, "ImageNotFound", None),
        case("registry auth", stuck().at(1.0).ev_c("Failed", "Failed to pull image \"private/app:1\": rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/private/app:1\": failed to resolve reference: pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed", "app"), 60.0, "ImagePullAuthFailed", Some("private/app:1")),
        case("a signature policy", stuck().at(1.0).waiting("app", false, "SignatureValidationFailed", "image pull failed for app:1 because the signature validation failed"), 60.0, "ImageSignatureInvalid", None),
        case("registry unreachable", stuck().at(1.0).ev_c("Failed", "Failed to pull image \"reg.internal/app:1\": rpc error: code = Unknown desc = failed to do request: Head \"https://reg.internal/v2/app/manifests/1\": dial tcp 10.0.0.5:443: i/o timeout", "app"), 60.0, "ImageRegistryUnavailable", Some("reg.internal/app:1")),
        case("a corrupt image store", stuck().at(1.0).ev_c("InspectFailed", "Failed to inspect image \"app:1\": rpc error: code = Unknown desc = failed to get image info", "app"), 60.0, "ImageInspectFailed", Some("app:1")),
        case("any other pull failure", stuck().at(1.0).ev_c("Failed", "Failed to pull image \"app:1\": rpc error: code = Unknown desc = failed to copy: httpReadSeeker: failed open: unexpected status code 500", "app").at(3.0).ev_c("BackOff", "Back-off pulling image \"app:1\"", "app"), 60.0, "ImagePullFailed", Some("app:1")),
        case("a pull waiting in the queue", Pod::new().at(0.02).bound().at(0.1).picked().at(0.8).setup().ev_c("Pulling", "Pulling image \"reg.example.com/app:1\"", "app").at(46.0).ev_c("Pulled", "Successfully pulled image \"reg.example.com/app:1\" in 2.1s (45.2s including waiting). Image size: 1000 bytes.", "app").started("app").phase("Running", None, None).running("app", false).at(47.0).ready(), 60.0, "ImagePullQueueTooMuchTime", Some("app")),
        case("a large image", Pod::new().at(0.02).bound().at(0.1).picked().at(0.8).setup().ev_c("Pulling", "Pulling image \"reg.example.com/app:1\"", "app").at(134.0).ev_c("Pulled", "Successfully pulled image \"reg.example.com/app:1\" in 2m13.4s (2m13.4s including waiting). Image size: 2147483648 bytes.", "app").started("app").phase("Running", None, None).running("app", false).at(135.0).ready(), 150.0, "ImagePullTooMuchTime", Some("app")),
        // Containers
        case("a missing Secret in env", stuck().at(1.0).setup().pulled("app").ev_c("Failed", "Error: secret \"db-pass\" not found", "app").waiting("app", false, "CreateContainerConfigError", "secret \"db-pass\" not found"), 60.0, "CreateContainerConfigError", Some("secret \"db-pass\" not found")),
        case("a missing key in a ConfigMap", stuck().at(1.0).setup().pulled("app").ev_c("Failed", "Error: couldn't find key LOG_LEVEL in ConfigMap shop/app", "app"), 60.0, "CreateContainerConfigError", Some("couldn't find key LOG_LEVEL in ConfigMap shop/app")),
        case("an internal hook", stuck().at(1.0).setup().pulled("app").ev_c("Failed", "Internal PreStartContainer hook failed: device plugin error", "app"), 60.0, "RuntimeHookError", Some("PreStartContainer")),
        case("a reserved name", stuck().at(1.0).setup().pulled("app").ev_c("Failed", "Error: failed to reserve container name \"app_web-1_shop_uid_0\": name \"app_web-1_shop_uid_0\" is reserved for \"abc\"", "app").waiting("app", false, "CreateContainerError", "failed to reserve container name"), 60.0, "CreateContainerError", Some("app")),
        case("no entrypoint", stuck().at(1.0).setup().pulled("app").ev_c("Created", "Created container app", "app").ev_c("Failed", "Error: failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/app\": stat /app: no such file or directory: unknown", "app").terminated("app", false, "StartError", 128), 60.0, "RunContainerError", Some("app")),
        case("a slow create", Pod::new().at(0.02).bound().at(0.1).picked().at(0.8).setup().pulled("app").at(15.0).ev_c("Created", "Container created", "app").ev_c("Started", "Container started", "app").phase("Running", None, None).running("app", false).at(16.0).ready(), 60.0, "ContainerCreateTooMuchTime", Some("app")),
        case("a slow start (1.34 wording)", Pod::new().at(0.02).bound().at(0.1).picked().at(0.8).setup().pulled("app").ev_c("Created", "Container created", "app").at(20.0).ev_c("Started", "Container started", "app").phase("Running", None, None).running("app", false).at(21.0).ready(), 60.0, "ContainerStartTooMuchTime", Some("app")),
        // Hooks
        case("postStart fails", stuck().at(1.0).setup().pulled("app").started("app").at(2.0).ev_c("FailedPostStartHook", "PostStartHook failed", "app").ev_c("Killing", "FailedPostStartHook", "app"), 60.0, "FailedPostStartHook", Some("app")),
        case("a long postStart", Pod::with(vec![post_start.clone()], vec![], &[]).at(0.02).bound().at(0.1).picked().at(0.8).setup().pulled("app").started("app").at(60.0).phase("Running", None, None).running("app", false).at(61.0).ready(), 90.0, "PostStartHookTooMuchTime", Some("app")),
        // Probes and running
        case("a startup probe", stuck().at(1.0).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(11.0).ev_c("Unhealthy", "Startup probe failed: dial tcp 10.42.0.7:3000: connect: connection refused", "app").at(41.0).ev_c("Killing", "Container app failed startup probe, will be restarted", "app"), 60.0, "StartupProbeFailed", None),
        case("a readiness probe", stuck().at(1.0).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(6.0).ev_c("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", "app"), 60.0, "ContainerReadinessFailed", None),
        case("slow to be ready", Pod::new().at(0.02).bound().at(0.1).picked().at(0.8).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(75.0).ready(), 90.0, "ContainerReadyTooMuchTime", None),
        case("OOM-killed after Ready", Pod::new().delivered().at(5.0).terminated("app", false, "OOMKilled", 137).cond("Ready", "False", Some("ContainersNotReady"), None).at(6.0).waiting("app", false, "CrashLoopBackOff", "back-off 10s restarting failed container=app"), 60.0, "OOMKilled", Some("app")),
        case("a liveness probe restarts it", Pod::new().delivered().at(30.0).ev_c("Killing", "Container app failed liveness probe, will be restarted", "app").cond("Ready", "False", Some("ContainersNotReady"), None), 60.0, "LivenessProbeRestart", None),
        case("a crash loop (1.32+ wording)", Pod::new().delivered().at(3.0).terminated("app", false, "Error", 1).cond("Ready", "False", Some("ContainersNotReady"), None).at(4.0).ev_c("BackOff", "Back-off restarting failed container app in pod web-1_shop(uid)", "app").waiting("app", false, "CrashLoopBackOff", "back-off 10s restarting failed container=app pod=web-1_shop(uid)"), 60.0, "CrashLoopBackOff", Some("app")),
        case("a crash loop (1.31 wording, no status)", stuck().at(1.0).setup().pulled("app").started("app").at(4.0).ev("BackOff", "Back-off restarting failed container"), 60.0, "CrashLoopBackOff", None),
        case("evicted, node memory (1.31+ wording)", Pod::new().delivered().at(60.0).ev("Evicted", "The node was low on resource: memory. Threshold quantity: 100Mi, available: 90Mi. Container app was using 1432Mi, request is 256Mi, has larger consumption of memory. ").phase("Failed", Some("Evicted"), Some("The node was low on resource: memory. ")).cond("Ready", "False", Some("PodFailed"), None), 90.0, "Evicted", Some("memory")),
        case("evicted, node condition (older wording)", Pod::new().delivered().at(60.0).phase("Failed", Some("Evicted"), Some("The node had condition: [DiskPressure]. ")).cond("Ready", "False", Some("PodFailed"), None), 90.0, "Evicted", Some("DiskPressure")),
        case("evicted for its own ephemeral storage", Pod::new().delivered().at(60.0).ev("Evicted", "Pod ephemeral local storage usage exceeds the total limit of containers 1Gi. ").phase("Failed", Some("Evicted"), None).cond("Ready", "False", Some("PodFailed"), None), 90.0, "Evicted", None),
        case("a run-once container fails", stuck().at(1.0).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(9.0).terminated("app", false, "Error", 2).phase("Failed", None, None), 60.0, "ContainerFailed", Some("app")),
        // Readiness gates
        case("a gate never set", Pod::with(vec![container("app", false)], vec![], &["cloud.example.com/lb-ready"]).at(0.02).bound().at(0.1).picked().at(0.8).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(1.5).cond("ContainersReady", "True", None, None).cond("Ready", "False", Some("ReadinessGatesNotReady"), Some("corresponding condition of pod readiness gate \"cloud.example.com/lb-ready\" does not exist.")), 90.0, "ReadinessGateNotReady", Some("cloud.example.com/lb-ready")),
        case("a slow gate", Pod::with(vec![container("app", false)], vec![], &["cloud.example.com/lb-ready"]).at(0.02).bound().at(0.1).picked().at(0.8).setup().pulled("app").started("app").phase("Running", None, None).running("app", false).at(1.5).cond("ContainersReady", "True", None, None).at(50.0).cond("Ready", "True", None, None), 90.0, "PodReadyTooMuchTime", None),
        // Outcomes
        case("delivered", Pod::new().delivered(), 10.0, "Success", None),
        case("deleted while pulling", stuck().at(0.8).setup().ev_c("Pulling", "Pulling image \"reg.example.com/app:1\"", "app").at(5.0).delete(&[]), 10.0, "DeletedBeforeFinish", None),
        case("no Events in the policy", stuck().at(0.8).setup(), 400.0, "NoEvent", None),
        case("past the deadline, nothing known", stuck().at(0.8).setup().ev_c("Pulling", "Pulling image \"reg.example.com/app:1\"", "app"), 400.0, "TimeoutUnknown", None),
        case("still pulling", stuck().at(0.8).setup().ev_c("Pulling", "Pulling image \"reg.example.com/app:1\"", "app"), 5.0, "InProgress", None),
    ]
}

fn delete_cases() -> Vec<Case> {
    let d = Action::Delete;
    let deleting = || {
        let mut p = Pod::new();
        p.delivered().at(100.0).delete(&[]);
        p
    };
    let mut pre_stop = container("app", false);
    pre_stop["pre_stop"] = true.into();
    vec![
        case_of("a PodDisruptionBudget", d, Pod::new().delivered().at(100.0).fact(json!({"type": "eviction_refused", "code": 429, "message": "Cannot evict pod as it would violate the pod's disruption budget.", "by": by("drain", "user")})).at(105.0).fact(json!({"type": "eviction_refused", "code": 429, "message": "Cannot evict pod as it would violate the pod's disruption budget.", "by": by("drain", "user")})), 120.0, "EvictionBlockedByPDB", None),
        case_of("the node is unreachable", d, deleting().at(141.0).event_by("node-controller", "NodeNotReady", "Node is not ready", None, 1).at(600.0).cond("DisruptionTarget", "True", Some("DeletionByPodGC"), Some("PodGC: node no longer exists")).gone(), 700.0, "NodeUnreachableTerminating", None),
        case_of("killing fails", d, deleting().at(100.5).ev("FailedKillPod", "error killing pod: failed to \"KillPodSandbox\" for \"uid\" with KillPodSandboxError: \"rpc error: code = Unknown\"").at(101.0).ev_c("Killing", "Stopping container app", "app").at(102.0).phase("Succeeded", None, None).gone(), 120.0, "FailedKillPod", None),
        case_of("a slow kubelet", d, deleting().at(140.0).ev_c("Killing", "Stopping container app", "app").at(141.0).phase("Succeeded", None, None).gone(), 150.0, "KubeletKillDelay", None),
        case_of("preStop fails", d, Pod::with(vec![pre_stop], vec![], &[]).delivered().at(100.0).delete(&[]).at(100.2).ev_c("Killing", "Stopping container app", "app").at(101.0).ev_c("FailedPreStopHook", "PreStopHook failed", "app").at(102.0).terminated("app", false, "Completed", 0).phase("Succeeded", None, None).gone(), 120.0, "PreStopHookFailed", Some("app")),
        case_of("SIGTERM ignored (event)", d, deleting().at(100.2).ev_c("Killing", "Stopping container app", "app").at(130.0).ev("ExceededGracePeriod", "Container runtime did not kill the pod within specified grace period.").gone(), 140.0, "GracePeriodExceeded", None),
        case_of("SIGTERM ignored (exit 137)", d, deleting().at(100.2).ev_c("Killing", "Stopping container app", "app").at(130.1).terminated("app", false, "Error", 137).phase("Failed", None, None).gone(), 140.0, "GracePeriodExceeded", Some("app")),
        case_of("a finalizer", d, Pod::new().delivered().at(100.0).delete(&["example.com/protect"]).at(100.2).ev_c("Killing", "Stopping container app", "app").at(101.0).phase("Succeeded", None, None), 200.0, "FinalizerBlocked", Some("example.com/protect")),
        case_of("a slow teardown", d, deleting().at(100.2).ev_c("Killing", "Stopping container app", "app").at(101.0).phase("Succeeded", None, None).at(180.0).gone(), 200.0, "VolumeTeardownStuck", None),
        case_of("deleted", d, deleting().at(100.2).ev_c("Killing", "Stopping container app", "app").at(101.0).phase("Succeeded", None, None).gone(), 120.0, "DeleteSuccess", None),
        case_of("deleting without Events", d, &mut { let mut p = Pod::new(); p.at(0.02).bound().at(0.1).picked().at(0.8).setup().phase("Running", None, None).running("app", false).at(1.0).ready().at(100.0).delete(&[]); p }, 150.0, "NoEvent", None),
        case_of("stuck Terminating, no cause", d, deleting().at(100.2).ev_c("Killing", "Stopping container app", "app"), 1000.0, "DeleteTimeout", None),
        case_of("stopping", d, deleting().at(100.2).ev_c("Killing", "Stopping container app", "app"), 103.0, "InProgress", None),
    ]
}

fn upgrade_cases() -> Vec<Case> {
    let u = Action::Upgrade;
    let upgrading = || {
        let mut p = Pod::new();
        p.delivered().at(100.0).upgrade();
        p
    };
    vec![
        case_of("a slow kill", u, upgrading().at(140.0).ev_c("Killing", "Container app definition changed, will be restarted", "app").at(141.0).ev_c("Pulled", "Successfully pulled image \"reg.example.com/app:2\" in 1s (1s including waiting). Image size: 1 bytes.", "app").started("app").at(142.0).ready(), 150.0, "UpgradeKillTooMuchTime", None),
        case_of("the new tag is missing", u, upgrading().at(100.3).ev_c("Killing", "Container app definition changed, will be restarted", "app").cond("Ready", "False", Some("ContainersNotReady"), None).at(101.0).ev_c("Failed", "Failed to pull image \"reg.example.com/app:2\": rpc error: code = NotFound desc = failed to pull and unpack image: reg.example.com/app:2: not found", "app"), 150.0, "UpgradeImageNotFound", Some("reg.example.com/app:2")),
        case_of("the new image needs credentials", u, upgrading().at(101.0).ev_c("Failed", "Failed to pull image \"reg.example.com/app:2\": rpc error: code = Unknown desc = pull access denied, repository does not exist or may require authorization", "app"), 150.0, "UpgradeImagePullAuthFailed", Some("reg.example.com/app:2")),
        case_of("the new image fails to pull", u, upgrading().at(101.0).waiting("app", false, "ImagePullBackOff", "Back-off pulling image"), 150.0, "UpgradeImagePullFailed", None),
        case_of("the new version crashes", u, upgrading().at(100.3).ev_c("Killing", "Container app definition changed, will be restarted", "app").cond("Ready", "False", Some("ContainersNotReady"), None).at(101.0).started("app").at(103.0).terminated("app", false, "Error", 1).at(104.0).waiting("app", false, "CrashLoopBackOff", "back-off 10s restarting failed container=app"), 150.0, "UpgradeRunContainerError", Some("app")),
        case_of("a resize that can never fit", u, upgrading().at(101.0).cond("PodResizePending", "True", Some("Infeasible"), Some("Node didn't have enough capacity: cpu, requested: 8000, capacity: 4000")), 150.0, "ResizeInfeasible", None),
        case_of("a resize waiting for room", u, upgrading().at(101.0).cond("PodResizePending", "True", Some("Deferred"), None), 150.0, "ResizeDeferred", None),
        case_of("a resize the runtime fails", u, upgrading().at(101.0).cond("PodResizeInProgress", "True", Some("Error"), Some("failed to update resources")), 150.0, "ResizeError", None),
        case_of("upgraded", u, upgrading().at(100.3).ev_c("Killing", "Container app definition changed, will be restarted", "app").cond("Ready", "False", Some("ContainersNotReady"), None).at(103.0).started("app").at(104.0).ready(), 150.0, "UpgradeSuccess", None),
        case_of("deleted mid-upgrade", u, upgrading().at(100.3).ev_c("Killing", "Container app definition changed, will be restarted", "app").at(102.0).delete(&[]), 150.0, "UpgradeAborted", None),
        case_of("upgrading without Events", u, &mut { let mut p = Pod::new(); p.at(0.02).bound().at(0.1).picked().at(0.8).setup().phase("Running", None, None).running("app", false).at(1.0).ready().at(100.0).upgrade().at(100.5).cond("Ready", "False", Some("ContainersNotReady"), None); p }, 200.0, "NoEvent", None),
        case_of("stalled, no cause", u, upgrading().at(100.3).ev_c("Killing", "Container app definition changed, will be restarted", "app"), 800.0, "UpgradeTimeout", None),
        case_of("pulling the new image", u, upgrading().at(100.3).ev_c("Killing", "Container app definition changed, will be restarted", "app").at(101.0).ev_c("Pulling", "Pulling image \"reg.example.com/app:2\"", "app"), 105.0, "InProgress", None),
    ]
}

#[test]
fn every_code_has_a_case_and_every_case_its_code() {
    let cases: Vec<Case> = create_cases()
        .into_iter()
        .chain(delete_cases())
        .chain(upgrade_cases())
        .collect();
    let mut failures = Vec::new();
    for c in &cases {
        let r = c.pod.result(c.action, c.now);
        if r.code != c.code || (c.detail.is_some() && r.detail.as_deref() != c.detail) {
            failures.push(format!(
                "{:?} {}: got {} ({:?}), want {} ({:?}): {}",
                c.action, c.name, r.code, r.detail, c.code, c.detail, r.summary
            ));
        }
        assert!(
            !r.remedy.is_empty() && !r.summary.contains('{'),
            "{}: {}",
            c.name,
            r.summary
        );
    }
    let covered: BTreeSet<(Action, &str)> = cases.iter().map(|c| (c.action, c.code)).collect();
    for code in RuleBook::defaults().codes() {
        if !covered.contains(&(code.lifecycle, code.code.as_str())) {
            failures.push(format!("{:?} {} has no case", code.lifecycle, code.code));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
