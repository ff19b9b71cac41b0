//! Pod and Event bodies read by the scanner instead of serde's derive.
//!
//! A pod event's body is the bulk of its line (16 KB with a large `env`), and serde spent a
//! seventh of a replay walking it through its visitors (Events, smaller, another 2.5 %).
//! This reads the same [`Pod`], [`CoreEvent`] and [`ApiEvent`] as the
//! derive does, field for field: the same names, `null` as absent where the derive has an
//! `Option`, an error for a field given twice, integers as numbers (or as strings where the
//! derive takes both), unknown fields skipped (still checked). Only stricter in one way: an
//! array where an object belongs is refused (the derive reads it as the fields in order).
//! Tests hold it to serde's result on every pod body of the corpus and of the simulator, and
//! a fuzz target on any input: whatever it accepts, serde reads the same.

use std::borrow::Cow;
use std::str::FromStr;

use crate::event::{Body, DecodeError};
use crate::objects::*;
use crate::scan::{Scan, Scanner, Seen};

impl<'a> Pod<'a> {
    /// Decodes a Pod, or a patch to one, borrowing from `text`.
    pub fn from_json(text: &'a str) -> Result<Pod<'a>, DecodeError> {
        whole(Scanner::new(text), pod)
    }
}

impl<'a> CoreEvent<'a> {
    /// Decodes a core `v1` Event, or a patch to one, as serde's derive does.
    pub fn from_json(text: &'a str) -> Result<CoreEvent<'a>, DecodeError> {
        whole(Scanner::new(text), core_event)
    }
}

impl<'a> ApiEvent<'a> {
    /// Decodes an `events.k8s.io/v1` Event, or a patch to one, as serde's derive does.
    pub fn from_json(text: &'a str) -> Result<ApiEvent<'a>, DecodeError> {
        whole(Scanner::new(text), api_event)
    }
}

/// Reads one value with `read`, and nothing after it.
fn whole<'a, T>(
    mut scan: Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Scan<T>,
) -> Result<T, DecodeError> {
    match read(&mut scan).and_then(|v| scan.end().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(_) => Err(scan.error()),
    }
}

/// An object of type `$ty` whose listed keys are read by their expressions (each given
/// once); other keys are skipped.
macro_rules! object {
    ($scan:ident, $out:ident: $ty:ty { $($key:literal => $read:expr,)* }) => {{
        let mut $out = <$ty>::default();
        let mut seen = Seen::default();
        $scan.object(|$scan, key| {
            let mut index = 0usize;
            $(
                if key == $key {
                    seen.first($scan, index)?;
                    $read;
                    return Ok(());
                }
                index += 1;
            )*
            let _ = index;
            $scan.raw().map(drop)
        })?;
        Ok($out)
    }};
}

fn opt<'a, T>(
    scan: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Scan<T>,
) -> Scan<Option<T>> {
    if scan.null()? {
        return Ok(None);
    }
    read(scan).map(Some)
}

fn opt_list<'a, T>(
    scan: &mut Scanner<'a>,
    item: impl FnMut(&mut Scanner<'a>) -> Scan<T>,
) -> Scan<Option<Vec<T>>> {
    opt(scan, |scan| scan.array(item))
}

fn opt_body<'a>(scan: &mut Scanner<'a>) -> Scan<Option<Body<'a>>> {
    opt(scan, |scan| scan.raw().map(Body::scanned))
}

fn opt_integer<T: FromStr>(scan: &mut Scanner<'_>) -> Scan<Option<T>> {
    opt(scan, Scanner::integer)
}

/// An integer as a number or as a string (Cloud Logging writes int64 as text).
fn int<T: FromStr>(scan: &mut Scanner<'_>) -> Scan<Option<T>> {
    match scan.next_byte() {
        Some(b'"') => {
            let text = scan.string()?;
            match text.parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => scan.fail("not an integer"),
            }
        }
        _ => opt(scan, Scanner::integer),
    }
}

fn str_map<'a>(scan: &mut Scanner<'a>) -> Scan<Option<StrMap<'a>>> {
    opt(scan, |scan| {
        let mut map = StrMap::new();
        scan.map(|scan, key| {
            let value = scan.opt_string()?;
            map.insert(key, value);
            Ok(())
        })?;
        Ok(map)
    })
}

fn strings<'a>(scan: &mut Scanner<'a>) -> Scan<Option<Vec<Cow<'a, str>>>> {
    opt_list(scan, Scanner::string)
}

fn pod<'a>(scan: &mut Scanner<'a>) -> Scan<Pod<'a>> {
    object!(scan, out: Pod<'a> {
        "kind" => out.kind = scan.opt_string()?,
        "metadata" => out.metadata = meta(scan)?,
        "spec" => out.spec = opt(scan, spec)?,
        "status" => out.status = opt(scan, status)?,
    })
}

fn meta<'a>(scan: &mut Scanner<'a>) -> Scan<ObjectMeta<'a>> {
    object!(scan, out: ObjectMeta<'a> {
        "name" => out.name = scan.opt_string()?,
        "generateName" => out.generate_name = scan.opt_string()?,
        "namespace" => out.namespace = scan.opt_string()?,
        "uid" => out.uid = scan.opt_string()?,
        "resourceVersion" => out.resource_version = scan.opt_string()?,
        "creationTimestamp" => out.creation_timestamp = scan.opt_string()?,
        "deletionTimestamp" => out.deletion_timestamp = scan.opt_string()?,
        "deletionGracePeriodSeconds" => out.deletion_grace_period_seconds = int(scan)?,
        "labels" => out.labels = str_map(scan)?,
        "annotations" => out.annotations = str_map(scan)?,
        "ownerReferences" => out.owner_references = opt_list(scan, owner)?,
        "finalizers" => out.finalizers = strings(scan)?,
        "$deleteFromPrimitiveList/finalizers" => out.delete_finalizers = strings(scan)?,
    })
}

fn owner<'a>(scan: &mut Scanner<'a>) -> Scan<OwnerReference<'a>> {
    object!(scan, out: OwnerReference<'a> {
        "kind" => out.kind = scan.string()?,
        "name" => out.name = scan.string()?,
        "uid" => out.uid = scan.string()?,
        "controller" => out.controller = scan.opt_bool()?,
    })
}

fn spec<'a>(scan: &mut Scanner<'a>) -> Scan<PodSpec<'a>> {
    object!(scan, out: PodSpec<'a> {
        "nodeName" => out.node_name = scan.opt_string()?,
        "schedulerName" => out.scheduler_name = scan.opt_string()?,
        "containers" => out.containers = opt_list(scan, container)?,
        "initContainers" => out.init_containers = opt_list(scan, container)?,
        "volumes" => out.volumes = opt_list(scan, volume)?,
        "readinessGates" => out.readiness_gates = opt_list(scan, gate)?,
        "priority" => out.priority = opt_integer(scan)?,
        "priorityClassName" => out.priority_class_name = scan.opt_string()?,
        "restartPolicy" => out.restart_policy = scan.opt_string()?,
        "terminationGracePeriodSeconds" => out.termination_grace_period_seconds = opt_integer(scan)?,
        "activeDeadlineSeconds" => out.active_deadline_seconds = opt_integer(scan)?,
        "hostNetwork" => out.host_network = scan.opt_bool()?,
        "runtimeClassName" => out.runtime_class_name = scan.opt_string()?,
        "nodeSelector" => out.node_selector = opt_body(scan)?,
        "affinity" => out.affinity = opt_body(scan)?,
        "topologySpreadConstraints" => out.topology_spread_constraints = opt_body(scan)?,
    })
}

fn container<'a>(scan: &mut Scanner<'a>) -> Scan<Container<'a>> {
    object!(scan, out: Container<'a> {
        "name" => out.name = scan.string()?,
        "image" => out.image = scan.opt_string()?,
        "imagePullPolicy" => out.image_pull_policy = scan.opt_string()?,
        "restartPolicy" => out.restart_policy = scan.opt_string()?,
        "lifecycle" => out.lifecycle = opt(scan, lifecycle)?,
        "startupProbe" => out.startup_probe = opt_body(scan)?,
        "readinessProbe" => out.readiness_probe = opt_body(scan)?,
        "livenessProbe" => out.liveness_probe = opt_body(scan)?,
        "securityContext" => out.security_context = opt(scan, security_context)?,
        "resources" => out.resources = opt_body(scan)?,
    })
}

fn lifecycle<'a>(scan: &mut Scanner<'a>) -> Scan<Lifecycle<'a>> {
    object!(scan, out: Lifecycle<'a> {
        "postStart" => out.post_start = opt_body(scan)?,
        "preStop" => out.pre_stop = opt_body(scan)?,
    })
}

fn security_context(scan: &mut Scanner<'_>) -> Scan<SecurityContext> {
    object!(scan, out: SecurityContext {
        "privileged" => out.privileged = scan.opt_bool()?,
    })
}

fn volume<'a>(scan: &mut Scanner<'a>) -> Scan<Volume<'a>> {
    object!(scan, out: Volume<'a> {
        "name" => out.name = scan.string()?,
        "persistentVolumeClaim" => out.persistent_volume_claim = opt(scan, claim)?,
        "secret" => out.secret = opt_body(scan)?,
        "configMap" => out.config_map = opt_body(scan)?,
        "emptyDir" => out.empty_dir = opt_body(scan)?,
        "hostPath" => out.host_path = opt_body(scan)?,
        "projected" => out.projected = opt_body(scan)?,
        "csi" => out.csi = opt_body(scan)?,
        "ephemeral" => out.ephemeral = opt_body(scan)?,
        "downwardAPI" => out.downward_api = opt_body(scan)?,
    })
}

fn claim<'a>(scan: &mut Scanner<'a>) -> Scan<ClaimRef<'a>> {
    object!(scan, out: ClaimRef<'a> {
        "claimName" => out.claim_name = scan.string()?,
    })
}

fn gate<'a>(scan: &mut Scanner<'a>) -> Scan<ReadinessGate<'a>> {
    object!(scan, out: ReadinessGate<'a> {
        "conditionType" => out.condition_type = scan.string()?,
    })
}

fn status<'a>(scan: &mut Scanner<'a>) -> Scan<PodStatus<'a>> {
    object!(scan, out: PodStatus<'a> {
        "phase" => out.phase = scan.opt_string()?,
        "reason" => out.reason = scan.opt_string()?,
        "message" => out.message = scan.opt_string()?,
        "conditions" => out.conditions = opt_list(scan, condition)?,
        "podIP" => out.pod_ip = scan.opt_string()?,
        "hostIP" => out.host_ip = scan.opt_string()?,
        "nominatedNodeName" => out.nominated_node_name = scan.opt_string()?,
        "startTime" => out.start_time = scan.opt_string()?,
        "containerStatuses" => out.container_statuses = opt_list(scan, container_status)?,
        "initContainerStatuses" => out.init_container_statuses = opt_list(scan, container_status)?,
    })
}

fn condition<'a>(scan: &mut Scanner<'a>) -> Scan<PodCondition<'a>> {
    object!(scan, out: PodCondition<'a> {
        "type" => out.type_ = scan.string()?,
        "status" => out.status = scan.string()?,
        "reason" => out.reason = scan.opt_string()?,
        "message" => out.message = scan.opt_string()?,
        "lastTransitionTime" => out.last_transition_time = scan.opt_string()?,
    })
}

fn container_status<'a>(scan: &mut Scanner<'a>) -> Scan<ContainerStatus<'a>> {
    object!(scan, out: ContainerStatus<'a> {
        "name" => out.name = scan.string()?,
        "state" => out.state = opt(scan, state)?,
        "lastState" => out.last_state = opt(scan, state)?,
        "ready" => out.ready = scan.opt_bool()?,
        "started" => out.started = scan.opt_bool()?,
        "restartCount" => out.restart_count = int(scan)?,
        "image" => out.image = scan.opt_string()?,
        "imageID" => out.image_id = scan.opt_string()?,
    })
}

fn state<'a>(scan: &mut Scanner<'a>) -> Scan<ContainerState<'a>> {
    object!(scan, out: ContainerState<'a> {
        "waiting" => out.waiting = opt(scan, waiting)?,
        "running" => out.running = opt(scan, running)?,
        "terminated" => out.terminated = opt(scan, terminated)?,
    })
}

fn waiting<'a>(scan: &mut Scanner<'a>) -> Scan<StateWaiting<'a>> {
    object!(scan, out: StateWaiting<'a> {
        "reason" => out.reason = scan.opt_string()?,
        "message" => out.message = scan.opt_string()?,
    })
}

fn running<'a>(scan: &mut Scanner<'a>) -> Scan<StateRunning<'a>> {
    object!(scan, out: StateRunning<'a> {
        "startedAt" => out.started_at = scan.opt_string()?,
    })
}

fn terminated<'a>(scan: &mut Scanner<'a>) -> Scan<StateTerminated<'a>> {
    object!(scan, out: StateTerminated<'a> {
        "exitCode" => out.exit_code = int(scan)?.unwrap_or(0),
        "signal" => out.signal = int(scan)?,
        "reason" => out.reason = scan.opt_string()?,
        "message" => out.message = scan.opt_string()?,
        "startedAt" => out.started_at = scan.opt_string()?,
        "finishedAt" => out.finished_at = scan.opt_string()?,
    })
}

fn core_event<'a>(scan: &mut Scanner<'a>) -> Scan<CoreEvent<'a>> {
    object!(scan, out: CoreEvent<'a> {
        "metadata" => out.metadata = meta(scan)?,
        "involvedObject" => out.involved_object = opt(scan, involved)?,
        "reason" => out.reason = scan.opt_string()?,
        "message" => out.message = scan.opt_string()?,
        "type" => out.type_ = scan.opt_string()?,
        "source" => out.source = opt(scan, source)?,
        "reportingComponent" => out.reporting_component = scan.opt_string()?,
        "count" => out.count = int(scan)?,
        "firstTimestamp" => out.first_timestamp = scan.opt_string()?,
        "lastTimestamp" => out.last_timestamp = scan.opt_string()?,
        "eventTime" => out.event_time = scan.opt_string()?,
        "series" => out.series = opt(scan, series)?,
        "action" => out.action = scan.opt_string()?,
    })
}

fn api_event<'a>(scan: &mut Scanner<'a>) -> Scan<ApiEvent<'a>> {
    object!(scan, out: ApiEvent<'a> {
        "metadata" => out.metadata = meta(scan)?,
        "regarding" => out.regarding = opt(scan, involved)?,
        "reason" => out.reason = scan.opt_string()?,
        "note" => out.note = scan.opt_string()?,
        "type" => out.type_ = scan.opt_string()?,
        "reportingController" => out.reporting_controller = scan.opt_string()?,
        "reportingInstance" => out.reporting_instance = scan.opt_string()?,
        "eventTime" => out.event_time = scan.opt_string()?,
        "series" => out.series = opt(scan, series)?,
        "action" => out.action = scan.opt_string()?,
        "deprecatedSource" => out.deprecated_source = opt(scan, source)?,
        "deprecatedCount" => out.deprecated_count = opt_integer(scan)?,
    })
}

fn involved<'a>(scan: &mut Scanner<'a>) -> Scan<InvolvedObject<'a>> {
    object!(scan, out: InvolvedObject<'a> {
        "kind" => out.kind = scan.string()?,
        "namespace" => out.namespace = scan.string()?,
        "name" => out.name = scan.string()?,
        "uid" => out.uid = scan.string()?,
        "fieldPath" => out.field_path = scan.opt_string()?,
    })
}

fn source<'a>(scan: &mut Scanner<'a>) -> Scan<EventSource<'a>> {
    object!(scan, out: EventSource<'a> {
        "component" => out.component = scan.opt_string()?,
        "host" => out.host = scan.opt_string()?,
    })
}

fn series<'a>(scan: &mut Scanner<'a>) -> Scan<EventSeries<'a>> {
    object!(scan, out: EventSeries<'a> {
        "count" => out.count = int(scan)?,
        "lastObservedTime" => out.last_observed_time = scan.opt_string()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoders agree: both accept with the same result, or both refuse.
    fn agree(text: &str) {
        let ours = Pod::from_json(text).map(|p| format!("{p:?}"));
        let serde = serde_json::from_str::<Pod>(text).map(|p| format!("{p:?}"));
        match (&ours, &serde) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{text}\nscanner: {ours:?}\nserde: {serde:?}"),
        }
    }

    #[test]
    fn reads_what_serde_reads() {
        for text in [
            r#"{"metadata":{"uid":"c0b4"},"status":{"$setElementOrder/conditions":[{"type":"Ready"}],"conditions":[{"lastProbeTime":null,"lastTransitionTime":"2024-01-01T01:00:00Z","message":"containers with unready status: [nginx]","reason":"ContainersNotReady","status":"False","type":"Ready"}],"containerStatuses":[{"name":"nginx","restartCount":7,"ready":false,"lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled"}},"state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 5m0s"}}}]}}"#,
            r#"{"metadata":{"labels":{"a":null,"b":"2","b":"3"},"$deleteFromPrimitiveList/finalizers":["example.com/x"]}}"#,
            r#"{"kind":"Pod","metadata":{"name":"a\"b","deletionGracePeriodSeconds":"30","ownerReferences":[{"kind":"ReplicaSet","name":"r","uid":"u","controller":true}]},"spec":{"priority":-5,"terminationGracePeriodSeconds":30,"hostNetwork":null,"containers":[{"name":"c","resources":{"requests":{"cpu":"1"}},"lifecycle":{"postStart":{"exec":{}}},"env":[{"name":"X","value":"1"}]}],"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"data"}}],"affinity":null}}"#,
            r#"{"status":{"containerStatuses":[{"name":"a","restartCount":"3","imageID":"docker.io/x@sha256:1","state":{"terminated":{"exitCode":"137","signal":9}}}]}}"#,
            r#"{}"#,
            r#"{"spec":null,"status":null,"kind":null}"#,
        ] {
            agree(text);
            assert!(Pod::from_json(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn reads_events_as_serde_does() {
        let core = [
            r#"{"metadata":{"name":"web.17f","namespace":"shop"},"involvedObject":{"kind":"Pod","namespace":"shop","name":"web","uid":"u1","fieldPath":"spec.containers{app}"},"reason":"BackOff","message":"Back-off pulling image \"x\"","type":"Warning","source":{"component":"kubelet","host":"node-a"},"count":"3","firstTimestamp":"2024-01-01T00:00:00Z","lastTimestamp":null,"series":{"count":4,"lastObservedTime":"2024-01-01T00:01:00.000000Z"}}"#,
            r#"{"count":5,"lastTimestamp":"2024-01-01T00:02:00Z","metadata":{"resourceVersion":"9"}}"#,
            r#"{"involvedObject":{"kind":null}}"#,
            r#"{"count":1.5}"#,
            r#"{"reason":"a","reason":"b"}"#,
        ];
        for text in core {
            let ours = CoreEvent::from_json(text).map(|e| format!("{e:?}"));
            let serde = serde_json::from_str::<CoreEvent>(text).map(|e| format!("{e:?}"));
            assert_eq!(ours.ok(), serde.ok(), "{text}");
        }
        let api = [
            r#"{"metadata":{"name":"p.18a"},"regarding":{"kind":"Pod","namespace":"n","name":"p","uid":"u"},"reason":"FailedScheduling","note":"0/3 nodes are available","type":"Warning","reportingController":"default-scheduler","reportingInstance":"default-scheduler-cp","eventTime":"2024-01-01T00:00:00.000000Z","action":"Scheduling","deprecatedSource":{"component":"default-scheduler"},"deprecatedCount":2}"#,
            r#"{"series":{"count":"7","lastObservedTime":"2024-01-01T00:00:09.000000Z"}}"#,
            r#"{"deprecatedCount":"2"}"#,
        ];
        for text in api {
            let ours = ApiEvent::from_json(text).map(|e| format!("{e:?}"));
            let serde = serde_json::from_str::<ApiEvent>(text).map(|e| format!("{e:?}"));
            assert_eq!(ours.ok(), serde.ok(), "{text}");
        }
        assert!(CoreEvent::from_json(core[0]).is_ok() && ApiEvent::from_json(api[0]).is_ok());
    }

    #[test]
    fn refuses_what_serde_refuses() {
        for text in [
            r#"{"metadata":null}"#,
            r#"{"metadata":{"name":"a","name":"b"}}"#,
            r#"{"spec":{"priority":1.5}}"#,
            r#"{"spec":{"priority":-0}}"#,
            r#"{"spec":{"priority":"1"}}"#,
            r#"{"spec":{"priority":3000000000}}"#,
            r#"{"spec":{"containers":[null]}}"#,
            r#"{"spec":{"containers":[{"name":null}]}}"#,
            r#"{"status":{"containerStatuses":[{"restartCount":"x"}]}}"#,
            r#"{"status":{"containerStatuses":[{"ready":"yes"}]}}"#,
            r#"{"metadata":{"labels":{"a":1}}}"#,
            r#"{"metadata":{"finalizers":"x"}}"#,
            r#"{"unknown":[1,}"#,
            r#"{"kind":"Pod"} x"#,
        ] {
            agree(text);
            assert!(Pod::from_json(text).is_err(), "{text}");
        }
        // Stricter than the derive, which reads an array as the struct's fields in order.
        for text in [r#"[]"#, r#"{"metadata":["a"]}"#] {
            assert!(serde_json::from_str::<Pod>(text).is_ok(), "{text}");
            assert!(Pod::from_json(text).is_err(), "{text}");
        }
    }
}
