//! Per-pod deadlines from the spec: `D(pod) = clamp((base(class) + Σ adds) × Π scales)`,
//! classes and adders chosen by selectors over what the pod asked for, a namespace
//! override replacing the result (reference §5.3). The file is data (`slo.yaml`); a
//! user's file replaces the defaults whole.

use std::collections::BTreeMap;

use loupe_facts::Fact;
use loupe_trace::ConfigError;
use serde::{Deserialize, Serialize};

use crate::platform::Profile;

/// The defaults, calibrated on the reference's starting points.
pub const DEFAULT_CONFIG: &str = include_str!("slo.yaml");

/// A duration written as humans do (`90s`, `1m30s`, `24h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub std::time::Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("bad duration {text:?}: {e}")))
    }
}

/// What the SLO config file says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    /// The profile verdicts are reached on; both are computed for every pod.
    pub headline: Profile,
    /// The success-rate objective, e.g. 0.99 (for `loupe slo` and the alert rules).
    pub objective: f64,
    /// Whether faults of external dependencies (registry, storage, third-party
    /// webhooks) count against the platform (`bad`) or are excluded.
    pub external: ExternalPolicy,
    /// An unfinished delivery whose platform clock has not run out is judged after this
    /// much wall time.
    pub give_up: Dur,
    pub clamp: Clamp,
    /// First match wins; the last should match everything.
    pub classes: Vec<ClassDef>,
    #[serde(default)]
    pub adders: Vec<Adder>,
    /// Per-namespace overrides of the deadline or the class.
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceOverride>,
    pub delete: DeleteSlo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalPolicy {
    Bad,
    Excluded,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clamp {
    pub min: Dur,
    pub max: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    pub name: String,
    /// Pods of this class are diagnosed but not held to a deadline.
    #[serde(default)]
    pub best_effort: bool,
    #[serde(default)]
    pub deadline: Option<Bases>,
    #[serde(default)]
    pub when: Selector,
}

/// A class's base deadline per profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bases {
    pub delivery: Dur,
    pub sig: Dur,
}

/// Adds time (`add`, negative allowed as `-2s`) or scales the deadline (`scale`), once or
/// per counted thing, for the pods its selector matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adder {
    pub name: String,
    #[serde(default)]
    pub add: Option<String>,
    #[serde(default)]
    pub scale: Option<f64>,
    #[serde(default)]
    pub per: Per,
    #[serde(default)]
    pub when: Selector,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Pod,
    ContainerBeyondFirst,
    Pvc,
    Volume,
    InitContainer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceOverride {
    /// Replaces the computed deadline.
    #[serde(default)]
    pub deadline: Option<Dur>,
    /// Puts the namespace's pods in this class (its base and the adders apply).
    #[serde(default)]
    pub class: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSlo {
    /// Platform time allowed beyond what the pod itself takes to stop (grace, preStop)
    /// and what user-owned finalizers hold.
    pub platform: Dur,
    /// Wall-time levels an unfinished delete is escalated through (10 min → 1 h → 24 h).
    pub escalation: Vec<Dur>,
}

/// Conditions on a pod's spec, all of which must hold (and one of `any`, if given).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    pub cpu_above: Option<f64>,
    pub cpu_at_most: Option<f64>,
    /// Quantities as Kubernetes writes them (`16Gi`).
    pub memory_above: Option<String>,
    pub memory_at_most: Option<String>,
    pub containers_above: Option<usize>,
    pub containers_at_most: Option<usize>,
    pub volumes_above: Option<usize>,
    pub volumes_at_most: Option<usize>,
    pub pvcs_above: Option<usize>,
    pub pvcs_at_most: Option<usize>,
    /// Extended resources (GPUs, RDMA, hugepages) requested or not.
    pub devices: Option<bool>,
    /// Any of these placement constraints declared (`pod_affinity`, `topology_spread`…).
    #[serde(default)]
    pub placement: Vec<String>,
    /// A non-default `runtimeClassName` set or not.
    pub runtime_class: Option<bool>,
    /// One of these runtime classes.
    #[serde(default)]
    pub runtime_classes: Vec<String>,
    pub host_network: Option<bool>,
    pub priority_at_least: Option<i64>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Label values (`"*"`: any value, present).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The owner reference's kind: `ReplicaSet` (Deployments), `Job`, `StatefulSet`,
    /// `DaemonSet`, or `none` for bare pods.
    #[serde(default)]
    pub workload_kind: Vec<String>,
    #[serde(default)]
    pub any: Vec<Selector>,
}

/// What the deadline is computed from: a pod's spec, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PodShape {
    pub namespace: String,
    /// Effective requests: the larger of the app containers' sum and the largest init
    /// container, as the scheduler counts them.
    pub cpu: f64,
    pub memory_bytes: f64,
    /// App containers and sidecars.
    pub containers: usize,
    pub init_containers: usize,
    pub volumes: usize,
    pub pvcs: usize,
    /// Mounts a volume other than secrets, config maps, the downward API, emptyDir and
    /// projected ones (the SIG SLI's definition, as clusterloader2 applies it).
    pub stateful: bool,
    pub devices: Vec<String>,
    pub placement: Vec<String>,
    pub runtime_class: Option<String>,
    pub host_network: bool,
    pub priority: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub workload_kind: Option<String>,
    /// Created by a kubelet (a mirror of a static pod), not through the API.
    pub mirror: bool,
}

impl PodShape {
    /// From the pod's creation fact; `None` for any other fact.
    pub fn of(fact: &Fact) -> Option<PodShape> {
        let Fact::PodCreated(created) = fact else {
            return None;
        };
        let loupe_facts::PodCreated {
            namespace,
            containers,
            volumes,
            placement,
            runtime_class,
            host_network,
            priority,
            labels,
            annotations,
            owner,
            by,
            ..
        } = &**created;
        let (mut cpu, mut mem, mut init_cpu, mut init_mem) = (0.0, 0.0, 0.0f64, 0.0f64);
        let mut devices = Vec::new();
        for c in containers {
            let get = |k: &str| c.requests.get(k).and_then(|q| parse_quantity(q));
            let (cc, cm) = (get("cpu").unwrap_or(0.0), get("memory").unwrap_or(0.0));
            if c.init && !c.sidecar {
                init_cpu = init_cpu.max(cc);
                init_mem = init_mem.max(cm);
            } else {
                cpu += cc;
                mem += cm;
            }
            for k in c.requests.keys().filter(|k| is_device(k)) {
                if !devices.contains(k) {
                    devices.push(k.clone());
                }
            }
        }
        Some(PodShape {
            namespace: namespace.clone(),
            cpu: cpu.max(init_cpu),
            memory_bytes: mem.max(init_mem),
            containers: containers.iter().filter(|c| !c.init || c.sidecar).count(),
            init_containers: containers.iter().filter(|c| c.init && !c.sidecar).count(),
            volumes: volumes.len(),
            pvcs: volumes.iter().filter(|v| v.claim.is_some()).count(),
            stateful: volumes.iter().any(|v| {
                !matches!(
                    v.kind.as_str(),
                    "secret" | "configMap" | "downwardAPI" | "emptyDir" | "projected"
                )
            }),
            devices,
            placement: placement.clone(),
            runtime_class: runtime_class.clone().filter(|r| !r.is_empty()),
            host_network: *host_network,
            priority: priority.map_or(0, i64::from),
            labels: labels.clone(),
            annotations: annotations.clone(),
            workload_kind: owner.as_ref().map(|o| o.kind.clone()),
            mirror: by.user.starts_with("system:node:"),
        })
    }
}

/// Resources that are not plain CPU, memory or storage: devices a plugin allocates.
fn is_device(resource: &str) -> bool {
    !matches!(resource, "cpu" | "memory" | "ephemeral-storage")
        && !resource.starts_with("requests.")
}

/// A Kubernetes quantity (`500m`, `2`, `1.5Gi`, `1e3`, `128M`) as a number.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => return None,
    };
    value
        .is_finite()
        .then_some(value * factor)
        .filter(|v| *v >= 0.0)
}

impl Selector {
    pub fn matches(&self, pod: &PodShape) -> bool {
        let mem = |q: &Option<String>| q.as_deref().and_then(parse_quantity);
        let above = |v: f64, limit: Option<f64>| limit.is_none_or(|l| v > l);
        let at_most = |v: f64, limit: Option<f64>| limit.is_none_or(|l| v <= l);
        let n = |v: Option<usize>| v.map(|v| v as f64);
        let tag_match = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
            want.iter()
                .all(|(k, v)| have.get(k).is_some_and(|h| v == "*" || h == v))
        };
        above(pod.cpu, self.cpu_above)
            && at_most(pod.cpu, self.cpu_at_most)
            && above(pod.memory_bytes, mem(&self.memory_above))
            && at_most(pod.memory_bytes, mem(&self.memory_at_most))
            && above(pod.containers as f64, n(self.containers_above))
            && at_most(pod.containers as f64, n(self.containers_at_most))
            && above(pod.volumes as f64, n(self.volumes_above))
            && at_most(pod.volumes as f64, n(self.volumes_at_most))
            && above(pod.pvcs as f64, n(self.pvcs_above))
            && at_most(pod.pvcs as f64, n(self.pvcs_at_most))
            && self.devices.is_none_or(|d| d != pod.devices.is_empty())
            && (self.placement.is_empty()
                || self.placement.iter().any(|p| pod.placement.contains(p)))
            && self
                .runtime_class
                .is_none_or(|r| r == pod.runtime_class.is_some())
            && (self.runtime_classes.is_empty()
                || pod
                    .runtime_class
                    .as_ref()
                    .is_some_and(|r| self.runtime_classes.contains(r)))
            && self.host_network.is_none_or(|h| h == pod.host_network)
            && self.priority_at_least.is_none_or(|p| pod.priority >= p)
            && (self.namespaces.is_empty() || self.namespaces.contains(&pod.namespace))
            && tag_match(&self.labels, &pod.labels)
            && tag_match(&self.annotations, &pod.annotations)
            && (self.workload_kind.is_empty()
                || self
                    .workload_kind
                    .iter()
                    .any(|k| Some(k.as_str()) == pod.workload_kind.as_deref().or(Some("none"))))
            && (self.any.is_empty() || self.any.iter().any(|s| s.matches(pod)))
    }
}

/// A pod's deadline and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deadline {
    pub class: String,
    pub profile: Profile,
    /// Not held to a deadline (`deadline_us` is then the class's, for reference).
    pub best_effort: bool,
    pub deadline_us: i64,
    pub base_us: i64,
    /// The adders that applied, as `name: +5s` / `name: ×0.5`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<String>,
    /// The namespace override that replaced the computed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden_by: Option<String>,
}

/// A checked config: durations parsed, names resolved.
#[derive(Debug, Clone)]
pub struct Slo {
    pub config: SloConfig,
    adds: Vec<Option<i64>>,
}

impl Slo {
    /// Parses and checks a config file; errors name the file and line.
    pub fn load(file: &str, text: &str) -> Result<Slo, ConfigError> {
        let config: SloConfig = serde_norway::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            line: e.location().map_or(1, |l| l.line()),
            problem: e.to_string(),
        })?;
        let fail = |needle: &str, problem: String| ConfigError::at(file, text, needle, problem);
        if !(0.0..1.0).contains(&config.objective) || config.objective <= 0.0 {
            return Err(fail(
                "objective:",
                format!("objective {} must be between 0 and 1", config.objective),
            ));
        }
        if config.classes.is_empty() {
            return Err(fail("classes:", "at least one class is needed".into()));
        }
        for c in &config.classes {
            if c.deadline.is_none() && !c.best_effort {
                return Err(fail(
                    &format!("name: {}", c.name),
                    format!("class {} needs a deadline or best_effort: true", c.name),
                ));
            }
        }
        if config.clamp.min > config.clamp.max {
            return Err(fail("clamp:", "clamp min is above max".into()));
        }
        let mut adds = Vec::new();
        for a in &config.adders {
            let add = match &a.add {
                Some(text) => Some(signed_duration_us(text).ok_or_else(|| {
                    fail(
                        &format!("name: {}", a.name),
                        format!("adder {}: bad duration {text:?}", a.name),
                    )
                })?),
                None => None,
            };
            if add.is_none() == a.scale.is_none() {
                return Err(fail(
                    &format!("name: {}", a.name),
                    format!("adder {} needs exactly one of add or scale", a.name),
                ));
            }
            if a.scale.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
                return Err(fail(
                    &format!("name: {}", a.name),
                    format!("adder {}: scale must be positive", a.name),
                ));
            }
            adds.push(add);
        }
        for (ns, o) in &config.namespaces {
            if let Some(class) = &o.class {
                if !config.classes.iter().any(|c| &c.name == class) {
                    return Err(fail(
                        &format!("{ns}:"),
                        format!("namespace {ns}: no class named {class}"),
                    ));
                }
            }
        }
        if config.delete.escalation.windows(2).any(|w| w[0] >= w[1]) {
            return Err(fail(
                "escalation:",
                "escalation levels must increase".into(),
            ));
        }
        Ok(Slo { config, adds })
    }

    pub fn defaults() -> Slo {
        Slo::load("slo.yaml (built in)", DEFAULT_CONFIG).expect("the built-in SLO config is valid")
    }

    /// The class a pod falls in (a namespace override first, then the first match).
    pub fn class_of(&self, pod: &PodShape) -> &ClassDef {
        let forced = self
            .config
            .namespaces
            .get(&pod.namespace)
            .and_then(|o| o.class.as_ref())
            .and_then(|name| self.config.classes.iter().find(|c| &c.name == name));
        forced
            .or_else(|| self.config.classes.iter().find(|c| c.when.matches(pod)))
            .unwrap_or_else(|| self.config.classes.last().expect("checked non-empty"))
    }

    /// The deadline of a create (or upgrade) delivery measured by `profile`.
    pub fn deadline(&self, pod: &PodShape, profile: Profile) -> Deadline {
        let class = self.class_of(pod);
        let base_us = class.deadline.as_ref().map_or(0, |b| {
            micros(match profile {
                Profile::Delivery => b.delivery,
                Profile::Sig => b.sig,
            })
        });
        let mut value = base_us as f64;
        let mut adjustments = Vec::new();
        // Adds first, then scales: "+5 s per PVC, halved for critical pods".
        for (adder, add) in self.config.adders.iter().zip(&self.adds) {
            if !adder.when.matches(pod) {
                continue;
            }
            let count = match adder.per {
                Per::Pod => 1,
                Per::ContainerBeyondFirst => pod.containers.saturating_sub(1),
                Per::Pvc => pod.pvcs,
                Per::Volume => pod.volumes,
                Per::InitContainer => pod.init_containers,
            };
            if let (Some(add), true) = (add, count > 0) {
                value += add.saturating_mul(count as i64) as f64;
                adjustments.push(format!(
                    "{}: {}",
                    adder.name,
                    signed_seconds(add.saturating_mul(count as i64))
                ));
            }
        }
        for adder in &self.config.adders {
            if let (Some(scale), true) = (adder.scale, adder.when.matches(pod)) {
                value *= scale;
                adjustments.push(format!("{}: ×{scale}", adder.name));
            }
        }
        let (min, max) = (micros(self.config.clamp.min), micros(self.config.clamp.max));
        let mut deadline_us = (value.round() as i64).clamp(min, max);
        let mut overridden_by = None;
        if let Some(d) = self
            .config
            .namespaces
            .get(&pod.namespace)
            .and_then(|o| o.deadline)
        {
            deadline_us = micros(d);
            overridden_by = Some(format!("namespace {}", pod.namespace));
        }
        Deadline {
            class: class.name.clone(),
            profile,
            best_effort: class.best_effort,
            deadline_us,
            base_us,
            adjustments,
            overridden_by,
        }
    }
}

pub(crate) fn micros(d: Dur) -> i64 {
    i64::try_from(d.0.as_micros()).unwrap_or(i64::MAX)
}

/// `5s`, `-2s`, `1m30s` in µs.
fn signed_duration_us(text: &str) -> Option<i64> {
    let t = text.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    humantime::parse_duration(rest.trim())
        .ok()
        .map(|d| sign * micros(Dur(d)))
}

fn signed_seconds(us: i64) -> String {
    let s = us as f64 / 1e6;
    if s < 0.0 {
        format!("{s}s")
    } else {
        format!("+{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn pod() -> PodShape {
        PodShape {
            namespace: "shop".into(),
            cpu: 0.5,
            memory_bytes: 512.0 * 1024.0 * 1024.0,
            containers: 1,
            ..PodShape::default()
        }
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(
            parse_quantity("1.5Gi"),
            Some(1.5 * 1024.0 * 1024.0 * 1024.0)
        );
        assert_eq!(parse_quantity("128M"), Some(128e6));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12Qi"), None);
        assert_eq!(parse_quantity("-1"), None);
        assert_eq!(parse_quantity(""), None);
    }

    #[test]
    fn a_typical_pod_gets_the_small_class_and_a_nonzero_deadline() {
        // The original compared against a name its classifier never returned, so typical
        // pods had a 0 s deadline (best effort). Ours are held to the small class's.
        let slo = Slo::defaults();
        let d = slo.deadline(&pod(), Profile::Delivery);
        assert_eq!(
            (d.class.as_str(), d.deadline_us, d.best_effort),
            ("small", 20 * S, false)
        );
        assert_eq!(slo.deadline(&pod(), Profile::Sig).deadline_us, 5 * S);
    }

    #[test]
    fn classes_follow_resources_and_container_counts() {
        let slo = Slo::defaults();
        let class = |f: &dyn Fn(&mut PodShape)| {
            let mut p = pod();
            f(&mut p);
            slo.deadline(&p, Profile::Delivery).class
        };
        assert_eq!(class(&|p| p.cpu = 6.0), "medium");
        assert_eq!(class(&|p| p.memory_bytes = 20e9), "large");
        assert_eq!(class(&|p| p.containers = 4), "medium");
        assert_eq!(class(&|p| p.containers = 7), "large");
        assert_eq!(class(&|p| p.cpu = 48.0), "best-effort");
        assert_eq!(class(&|p| p.containers = 11), "best-effort");
        assert_eq!(
            class(&|p| p.devices = vec!["nvidia.com/gpu".into()]),
            "medium"
        );
    }

    #[test]
    fn adders_add_per_thing_then_scales_apply_then_the_clamp() {
        let slo = Slo::defaults();
        let mut p = pod();
        p.containers = 3;
        p.pvcs = 2;
        p.volumes = 2;
        p.placement = vec!["pod_anti_affinity".into()];
        let d = slo.deadline(&p, Profile::Delivery);
        // 20 s + 2 × 1 s (containers) + 2 × 30 s (PVCs) + 5 s (anti-affinity).
        assert_eq!(d.deadline_us, 87 * S, "{d:?}");
        p.priority = 2_000_000_000;
        assert_eq!(slo.deadline(&p, Profile::Delivery).deadline_us, 87 * S / 2);
        let mut host = pod();
        host.host_network = true;
        host.runtime_class = Some("kata".into());
        assert_eq!(slo.deadline(&host, Profile::Delivery).deadline_us, 33 * S);
        // SIG: 5 s − 2 s for hostNetwork + 15 s for kata.
        assert_eq!(slo.deadline(&host, Profile::Sig).deadline_us, 18 * S);
        let mut job = pod();
        job.workload_kind = Some("Job".into());
        assert_eq!(slo.deadline(&job, Profile::Delivery).deadline_us, 14 * S);
    }

    #[test]
    fn namespace_overrides_replace_the_deadline_or_the_class() {
        let text = DEFAULT_CONFIG.replace(
            "namespaces: {}",
            "namespaces:\n  batch: {deadline: 90s}\n  ml: {class: large}",
        );
        let slo = Slo::load("t.yaml", &text).unwrap();
        let mut p = pod();
        p.namespace = "batch".into();
        let d = slo.deadline(&p, Profile::Delivery);
        assert_eq!(
            (d.deadline_us, d.overridden_by.as_deref()),
            (90 * S, Some("namespace batch"))
        );
        p.namespace = "ml".into();
        assert_eq!(slo.deadline(&p, Profile::Delivery).deadline_us, 60 * S);
    }

    #[test]
    fn selectors_on_labels_annotations_and_workload_kinds() {
        let s: Selector = serde_norway::from_str(
            "{labels: {tier: '*'}, annotations: {sla: gold}, workload_kind: [StatefulSet, none]}",
        )
        .unwrap();
        let mut p = pod();
        assert!(!s.matches(&p));
        p.labels.insert("tier".into(), "web".into());
        p.annotations.insert("sla".into(), "gold".into());
        assert!(s.matches(&p), "a bare pod is kind none");
        p.workload_kind = Some("ReplicaSet".into());
        assert!(!s.matches(&p));
    }

    #[test]
    fn bad_files_are_refused_with_their_line() {
        let bad = DEFAULT_CONFIG.replace("add: 30s", "add: soon");
        let e = Slo::load("mine.yaml", &bad).unwrap_err();
        assert!(e.problem.contains("bad duration"), "{e}");
        assert!(e.line > 1);
        let e = Slo::load("mine.yaml", "headline: fastest").unwrap_err();
        assert_eq!(e.file, "mine.yaml");
        let bad = DEFAULT_CONFIG.replace("namespaces: {}", "namespaces: {x: {class: huge}}");
        assert!(Slo::load("m.yaml", &bad)
            .unwrap_err()
            .problem
            .contains("no class named huge"));
    }
}
