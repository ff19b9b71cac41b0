//! Borrowed subsets of the Kubernetes objects found in audit bodies.
//!
//! The same structs read full objects (`responseObject`, PUT bodies) and strategic-merge
//! patches (`requestObject` of `patch`): every field is optional, a `null` in a patch map
//! means "removed", and the patch directives Loupe needs (`$deleteFromPrimitiveList`) are
//! named fields. Unknown fields are skipped without being built.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::event::Body;

pub type Str<'a> = Cow<'a, str>;
/// Integers as JSON numbers, or as strings (Cloud Logging renders int64 that way).
fn int<'de, D: serde::Deserializer<'de>, T: std::str::FromStr + Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<'a, T> {
        Num(T),
        #[serde(borrow)]
        Text(Cow<'a, str>),
    }
    match Option::<Either<T>>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Num(n)) => Ok(Some(n)),
        Some(Either::Text(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("not an integer: {s:?}"))),
    }
}

fn int0<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    Ok(int(d)?.unwrap_or(0))
}

/// A label or annotation map; `None` values are deletions in a patch.
pub type StrMap<'a> = BTreeMap<Str<'a>, Option<Str<'a>>>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference<'a> {
    #[serde(borrow, default)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub uid: Str<'a>,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub uid: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub resource_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub creation_timestamp: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub deletion_timestamp: Option<Str<'a>>,
    #[serde(default, deserialize_with = "int")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(borrow, default)]
    pub labels: Option<StrMap<'a>>,
    #[serde(borrow, default)]
    pub annotations: Option<StrMap<'a>>,
    #[serde(borrow, default)]
    pub owner_references: Option<Vec<OwnerReference<'a>>>,
    #[serde(borrow, default)]
    pub finalizers: Option<Vec<Str<'a>>>,
    /// Strategic-merge patch directive that removes finalizers.
    #[serde(borrow, default, rename = "$deleteFromPrimitiveList/finalizers")]
    pub delete_finalizers: Option<Vec<Str<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle<'a> {
    #[serde(borrow, default)]
    pub post_start: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub pre_stop: Option<Body<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub image: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub image_pull_policy: Option<Str<'a>>,
    /// `Always` on an init container makes it a sidecar.
    #[serde(borrow, default)]
    pub restart_policy: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub lifecycle: Option<Lifecycle<'a>>,
    #[serde(borrow, default)]
    pub startup_probe: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub readiness_probe: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub liveness_probe: Option<Body<'a>>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    /// Kept raw: read only when a pod's creation is normalized.
    #[serde(borrow, default)]
    pub resources: Option<Body<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SecurityContext {
    #[serde(default)]
    pub privileged: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef<'a> {
    #[serde(borrow, default)]
    pub claim_name: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub persistent_volume_claim: Option<ClaimRef<'a>>,
    #[serde(borrow, default)]
    pub secret: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub config_map: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub empty_dir: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub host_path: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub projected: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub csi: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub ephemeral: Option<Body<'a>>,
    #[serde(borrow, default, rename = "downwardAPI")]
    pub downward_api: Option<Body<'a>>,
}

impl Volume<'_> {
    /// The volume source's kind, as written in the spec (`persistentVolumeClaim`, `secret`, …).
    pub fn kind(&self) -> &'static str {
        if self.persistent_volume_claim.is_some() {
            "persistentVolumeClaim"
        } else if self.secret.is_some() {
            "secret"
        } else if self.config_map.is_some() {
            "configMap"
        } else if self.empty_dir.is_some() {
            "emptyDir"
        } else if self.host_path.is_some() {
            "hostPath"
        } else if self.projected.is_some() {
            "projected"
        } else if self.csi.is_some() {
            "csi"
        } else if self.ephemeral.is_some() {
            "ephemeral"
        } else if self.downward_api.is_some() {
            "downwardAPI"
        } else {
            "other"
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessGate<'a> {
    #[serde(borrow, default)]
    pub condition_type: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    #[serde(borrow, default)]
    pub node_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub scheduler_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Option<Vec<Volume<'a>>>,
    #[serde(borrow, default)]
    pub readiness_gates: Option<Vec<ReadinessGate<'a>>>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(borrow, default)]
    pub priority_class_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub restart_policy: Option<Str<'a>>,
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(borrow, default)]
    pub runtime_class_name: Option<Str<'a>>,
    /// Placement constraints, kept raw: only their presence is read.
    #[serde(borrow, default)]
    pub node_selector: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub affinity: Option<Body<'a>>,
    #[serde(borrow, default)]
    pub topology_spread_constraints: Option<Body<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition<'a> {
    #[serde(borrow, default, rename = "type")]
    pub type_: Str<'a>,
    #[serde(borrow, default)]
    pub status: Str<'a>,
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub last_transition_time: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateWaiting<'a> {
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRunning<'a> {
    #[serde(borrow, default)]
    pub started_at: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateTerminated<'a> {
    #[serde(default, deserialize_with = "int0")]
    pub exit_code: i32,
    #[serde(default, deserialize_with = "int")]
    pub signal: Option<i32>,
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub started_at: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub finished_at: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContainerState<'a> {
    #[serde(borrow, default)]
    pub waiting: Option<StateWaiting<'a>>,
    #[serde(borrow, default)]
    pub running: Option<StateRunning<'a>>,
    #[serde(borrow, default)]
    pub terminated: Option<StateTerminated<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub state: Option<ContainerState<'a>>,
    #[serde(borrow, default)]
    pub last_state: Option<ContainerState<'a>>,
    #[serde(default)]
    pub ready: Option<bool>,
    #[serde(default)]
    pub started: Option<bool>,
    #[serde(default, deserialize_with = "int")]
    pub restart_count: Option<i32>,
    #[serde(borrow, default)]
    pub image: Option<Str<'a>>,
    /// `imageID`, as the kubelet writes it (camelCase would say `imageId`).
    #[serde(borrow, default, rename = "imageID")]
    pub image_id: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus<'a> {
    #[serde(borrow, default)]
    pub phase: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub conditions: Option<Vec<PodCondition<'a>>>,
    #[serde(borrow, default, rename = "podIP")]
    pub pod_ip: Option<Str<'a>>,
    #[serde(borrow, default, rename = "hostIP")]
    pub host_ip: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub nominated_node_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub start_time: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub container_statuses: Option<Vec<ContainerStatus<'a>>>,
    #[serde(borrow, default)]
    pub init_container_statuses: Option<Vec<ContainerStatus<'a>>>,
}

/// A Pod, or a patch to one.
#[derive(Debug, Default, Deserialize)]
pub struct Pod<'a> {
    #[serde(borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub spec: Option<PodSpec<'a>>,
    #[serde(borrow, default)]
    pub status: Option<PodStatus<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BindingTarget<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
}

/// `pods/binding` request body.
#[derive(Debug, Default, Deserialize)]
pub struct Binding<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub target: BindingTarget<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Preconditions<'a> {
    #[serde(borrow, default)]
    pub uid: Option<Str<'a>>,
}

/// `delete` request body (`DeleteOptions`), also the `deleteOptions` of an `Eviction`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions<'a> {
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
    #[serde(borrow, default)]
    pub preconditions: Option<Preconditions<'a>>,
    #[serde(borrow, default)]
    pub propagation_policy: Option<Str<'a>>,
}

/// `pods/eviction` request body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eviction<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub delete_options: Option<DeleteOptions<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject<'a> {
    #[serde(borrow, default)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub namespace: Str<'a>,
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub uid: Str<'a>,
    #[serde(borrow, default)]
    pub field_path: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventSource<'a> {
    #[serde(borrow, default)]
    pub component: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub host: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeries<'a> {
    #[serde(default, deserialize_with = "int")]
    pub count: Option<i32>,
    #[serde(borrow, default)]
    pub last_observed_time: Option<Str<'a>>,
}

/// A core `v1` Event, or a patch to one (repeats bump `count` and `lastTimestamp`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreEvent<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub involved_object: Option<InvolvedObject<'a>>,
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
    #[serde(borrow, default, rename = "type")]
    pub type_: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub source: Option<EventSource<'a>>,
    #[serde(borrow, default)]
    pub reporting_component: Option<Str<'a>>,
    #[serde(default, deserialize_with = "int")]
    pub count: Option<i32>,
    #[serde(borrow, default)]
    pub first_timestamp: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub last_timestamp: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub event_time: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub series: Option<EventSeries<'a>>,
    #[serde(borrow, default)]
    pub action: Option<Str<'a>>,
}

/// An `events.k8s.io/v1` Event, or a patch to one.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEvent<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub regarding: Option<InvolvedObject<'a>>,
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub note: Option<Str<'a>>,
    #[serde(borrow, default, rename = "type")]
    pub type_: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub reporting_controller: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub reporting_instance: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub event_time: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub series: Option<EventSeries<'a>>,
    #[serde(borrow, default)]
    pub action: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub deprecated_source: Option<EventSource<'a>>,
    #[serde(default)]
    pub deprecated_count: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition<'a> {
    #[serde(borrow, default, rename = "type")]
    pub type_: Str<'a>,
    #[serde(borrow, default)]
    pub status: Str<'a>,
    #[serde(borrow, default)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeStatus<'a> {
    #[serde(borrow, default)]
    pub conditions: Option<Vec<NodeCondition<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeSpec {
    #[serde(default)]
    pub unschedulable: Option<bool>,
}

/// A Node, or a patch to one (kubelet heartbeats patch `nodes/status`).
#[derive(Debug, Default, Deserialize)]
pub struct Node<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(default)]
    pub spec: Option<NodeSpec>,
    #[serde(borrow, default)]
    pub status: Option<NodeStatus<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcSpec<'a> {
    #[serde(borrow, default)]
    pub storage_class_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub volume_name: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PvcStatus<'a> {
    #[serde(borrow, default)]
    pub phase: Option<Str<'a>>,
}

/// A PersistentVolumeClaim, or a patch to one.
#[derive(Debug, Default, Deserialize)]
pub struct Pvc<'a> {
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub spec: Option<PvcSpec<'a>>,
    #[serde(borrow, default)]
    pub status: Option<PvcStatus<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_kubelet_status_patch() {
        let patch = r#"{"metadata":{"uid":"c0b4"},"status":{"$setElementOrder/conditions":[{"type":"Ready"}],"conditions":[{"lastProbeTime":null,"lastTransitionTime":"2024-01-01T01:00:00Z","message":"containers with unready status: [nginx]","reason":"ContainersNotReady","status":"False","type":"Ready"}],"containerStatuses":[{"name":"nginx","restartCount":7,"ready":false,"lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled"}},"state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 5m0s"}}}]}}"#;
        let pod: Pod = serde_json::from_str(patch).unwrap();
        assert_eq!(pod.metadata.uid.as_deref(), Some("c0b4"));
        let status = pod.status.unwrap();
        let cond = &status.conditions.as_ref().unwrap()[0];
        assert_eq!((&*cond.type_, &*cond.status), ("Ready", "False"));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, Some(7));
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (137, Some("OOMKilled"))
        );
    }

    #[test]
    fn reads_patch_deletions() {
        let patch = r#"{"metadata":{"labels":{"a":null,"b":"2"},"$deleteFromPrimitiveList/finalizers":["example.com/x"]}}"#;
        let pod: Pod = serde_json::from_str(patch).unwrap();
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels.get("a"), Some(&None));
        assert_eq!(labels.get("b").cloned().flatten().as_deref(), Some("2"));
        assert_eq!(
            pod.metadata.delete_finalizers.unwrap(),
            vec!["example.com/x"]
        );
    }

    #[test]
    fn reads_integers_written_as_strings() {
        let cs: ContainerStatus = serde_json::from_str(
            r#"{"name":"a","restartCount":"3","state":{"terminated":{"exitCode":"137"}}}"#,
        )
        .unwrap();
        assert_eq!(cs.restart_count, Some(3));
        assert_eq!(cs.state.unwrap().terminated.unwrap().exit_code, 137);
        assert!(serde_json::from_str::<ContainerStatus>(r#"{"restartCount":"x"}"#).is_err());
    }

    #[test]
    fn names_volume_kinds() {
        let v: Vec<Volume> = serde_json::from_str(
            r#"[{"name":"d","persistentVolumeClaim":{"claimName":"data"}},{"name":"t","projected":{"sources":[]}},{"name":"x","nfs":{}}]"#,
        )
        .unwrap();
        let kinds: Vec<_> = v.iter().map(Volume::kind).collect();
        assert_eq!(kinds, ["persistentVolumeClaim", "projected", "other"]);
    }
}
