//! The result codes the simulator can inject, by name (the names of the reference
//! taxonomy, which are Loupe's public contract) and by rate.

use serde::Serialize;

use crate::rng::Rng;

/// Who owns the time or the failure: decides SLO accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    Platform,
    User,
    External,
    Capacity,
    Excluded,
    /// The delivery went through.
    None,
}

/// Which part of a pod's life a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Create,
    Delete,
    Upgrade,
}

macro_rules! codes {
    ($($code:ident: $life:ident, $stage:literal, $class:ident, $what:literal;)*) => {
        /// An injectable result code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum Code { $($code,)* }

        /// Every code with its lifecycle, stage, fault class and what the simulator does.
        pub const CODES: &[CodeInfo] = &[
            $(CodeInfo {
                code: Code::$code,
                name: stringify!($code),
                lifecycle: Lifecycle::$life,
                stage: $stage,
                class: FaultClass::$class,
                injects: $what,
            },)*
        ];
    };
}

codes! {
    Success: Create, "ready", None, "delivered without a fault";
    ApiQuotaExceeded: Create, "api", User, "creates refused 403 by a ResourceQuota; the controller retries with back-off";
    ApiAdmissionDenied: Create, "api", User, "a validating webhook denies the create (403)";
    ApiWebhookFailure: Create, "api", External, "a webhook cannot be called (500, context deadline exceeded)";
    FailedScheduling_Insufficient: Create, "schedule", Capacity, "no node has enough cpu/memory; the pod stays Pending";
    FailedScheduling_Affinity: Create, "schedule", User, "no node matches the node affinity/selector";
    FailedScheduling_Taint: Create, "schedule", User, "every node has a taint the pod does not tolerate";
    FailedScheduling_Volume: Create, "schedule", User, "the pod's PersistentVolumeClaim does not exist";
    ScheduleTooMuchTime: Create, "schedule", Platform, "the scheduler takes 8-30 s to bind";
    PreemptionWait: Create, "schedule", Excluded, "the pod is nominated, victims are preempted, then it binds";
    KubeletDelay: Create, "kubelet", Platform, "the kubelet picks the pod up 15-60 s after binding";
    NodeNotReady: Create, "kubelet", Platform, "the node goes NotReady after binding; the pod never starts";
    AdmissionRejected_OutOfResource: Create, "kubelet", Platform, "the kubelet rejects the pod (OutOfcpu), phase Failed";
    Evicted: Create, "run", Platform, "the node runs low on memory and evicts the running pod";
    VolumeSourceMissing: Create, "volumes", User, "a ConfigMap volume's source does not exist (FailedMount)";
    VolumeMountTimeout: Create, "volumes", Platform, "volumes are not mounted within 2m3s";
    VolumeMultiAttach: Create, "volumes", Platform, "the PVC's volume is still attached to another node";
    VolumeAttachTooMuchTime: Create, "volumes", Platform, "the volume attaches after 40-90 s";
    IPAllocationFailed: Create, "network", Platform, "the CNI IPAM range is exhausted";
    CNISetupFailed: Create, "network", Platform, "the CNI plugin fails (certificate error)";
    NetworkNotReady: Create, "network", Platform, "the node's CNI is not initialised";
    SandboxCreateTimeout: Create, "sandbox", Platform, "RunPodSandbox times out (context deadline exceeded)";
    SandboxCreateFailed: Create, "sandbox", Platform, "the pause image cannot be pulled";
    SandboxRecreateLoop: Create, "sandbox", Platform, "the sandbox keeps being killed and re-created";
    PodSetupTooMuchTime: Create, "sandbox", Platform, "sandbox and network take 20-40 s";
    InvalidImageName: Create, "image", User, "the image reference is not valid";
    ImageNotFound: Create, "image", User, "the image tag does not exist (ErrImagePull, ImagePullBackOff)";
    ImagePullAuthFailed: Create, "image", User, "the registry refuses the pull (insufficient_scope)";
    ImageRegistryUnavailable: Create, "image", External, "the registry times out";
    ImagePullTooMuchTime: Create, "image", User, "a 2 GB image takes 90-180 s to pull";
    ImagePullQueueTooMuchTime: Create, "image", Platform, "the pull waits 40-80 s behind other pulls on the node";
    CreateContainerConfigError: Create, "container", User, "a Secret referenced by env does not exist";
    CreateContainerError: Create, "container", Platform, "the runtime cannot reserve the container name";
    RunContainerError: Create, "container", User, "the entrypoint is not in the image";
    CrashLoopBackOff: Create, "run", User, "the container exits 1 and restarts with back-off";
    OOMKilled: Create, "run", User, "the container is OOM-killed (137) and restarts with back-off";
    InitContainerFailed: Create, "init", User, "an init container exits 1 and restarts with back-off";
    ContainerStartTooMuchTime: Create, "container", Platform, "the runtime takes 15-30 s to start the container";
    FailedPostStartHook: Create, "hook", User, "the postStart hook fails; the container is killed";
    PostStartHookTooMuchTime: Create, "hook", User, "the postStart hook runs for 60-120 s";
    StartupProbeFailed: Create, "probe", User, "the startup probe keeps failing; the container is restarted";
    ContainerReadinessFailed: Create, "probe", User, "the readiness probe keeps failing (503)";
    ReadinessGateNotReady: Create, "gate", External, "the readiness gate's controller never sets its condition";
    DeleteSuccess: Delete, "gone", None, "deleted within the grace period";
    EvictionBlockedByPDB: Delete, "delete", User, "an eviction is refused 429 by a PodDisruptionBudget";
    KubeletKillDelay: Delete, "kill", Platform, "the kubelet starts killing 20-60 s after the delete";
    PreStopHookFailed: Delete, "kill", User, "the preStop hook fails";
    GracePeriodExceeded: Delete, "kill", User, "the app ignores SIGTERM and is killed after the grace period";
    FinalizerBlocked: Delete, "finalizers", External, "a finalizer is never removed; the pod stays Terminating";
    NodeUnreachableTerminating: Delete, "kill", Platform, "the node is unreachable; PodGC force-deletes the pod later";
    UpgradeSuccess: Upgrade, "ready", None, "the image changes and the new container becomes ready";
    UpgradeImageNotFound: Upgrade, "image", User, "the new image tag does not exist";
    UpgradeRunContainerError: Upgrade, "run", User, "the new image crashes on start";
}

#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    pub code: Code,
    pub name: &'static str,
    pub lifecycle: Lifecycle,
    pub stage: &'static str,
    pub class: FaultClass,
    pub injects: &'static str,
}

impl Code {
    pub fn info(self) -> &'static CodeInfo {
        &CODES[self as usize]
    }
    pub fn name(self) -> &'static str {
        self.info().name
    }
    pub fn from_name(name: &str) -> Option<Code> {
        CODES.iter().find(|c| c.name == name).map(|c| c.code)
    }
    /// The code a lifecycle ends with when nothing is injected.
    pub fn success(lifecycle: Lifecycle) -> Code {
        match lifecycle {
            Lifecycle::Create => Code::Success,
            Lifecycle::Delete => Code::DeleteSuccess,
            Lifecycle::Upgrade => Code::UpgradeSuccess,
        }
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("unknown result code {0:?} (see `loupe simulate --list-codes`)")]
    UnknownCode(String),
    #[error("fault {0:?}: expected CODE=RATE with RATE between 0 and 1")]
    BadRate(String),
    #[error("faults of the {0:?} lifecycle add up to {1:.3}, more than 1")]
    TooMuch(&'static str, f64),
}

/// Injection rates per code: the probability that a pod's create (delete, upgrade) ends
/// with that code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultMix {
    rates: Vec<(Code, f64)>,
}

impl FaultMix {
    /// Parses `CODE=RATE,CODE=RATE`; a bare `CODE` means rate 1 for its lifecycle.
    pub fn parse(spec: &str) -> Result<FaultMix, FaultError> {
        let mut mix = FaultMix::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, rate) = match part.split_once('=') {
                Some((n, r)) => {
                    let rate: f64 = r
                        .trim()
                        .parse()
                        .map_err(|_| FaultError::BadRate(part.to_string()))?;
                    (n.trim(), rate)
                }
                None => (part, 1.0),
            };
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultError::BadRate(part.to_string()));
            }
            let code = Code::from_name(name).ok_or_else(|| FaultError::UnknownCode(name.into()))?;
            mix.set(code, rate);
        }
        mix.check()?;
        Ok(mix)
    }

    /// Every fault of every lifecycle at `rate` each (the success codes take the rest).
    pub fn every_code(rate: f64) -> FaultMix {
        let mut mix = FaultMix::default();
        for c in CODES.iter().filter(|c| c.class != FaultClass::None) {
            mix.set(c.code, rate);
        }
        mix
    }

    pub fn set(&mut self, code: Code, rate: f64) {
        self.rates.retain(|(c, _)| *c != code);
        self.rates.push((code, rate));
        self.rates.sort_by_key(|(c, _)| *c);
    }

    pub fn check(&self) -> Result<(), FaultError> {
        for (life, name) in [
            (Lifecycle::Create, "create"),
            (Lifecycle::Delete, "delete"),
            (Lifecycle::Upgrade, "upgrade"),
        ] {
            let total: f64 = self
                .rates
                .iter()
                .filter(|(c, _)| c.info().lifecycle == life && c.info().class != FaultClass::None)
                .map(|(_, r)| r)
                .sum();
            if total > 1.0 + 1e-9 {
                return Err(FaultError::TooMuch(name, total));
            }
        }
        Ok(())
    }

    /// Draws the code of one lifecycle.
    pub fn draw(&self, rng: &mut Rng, life: Lifecycle) -> Code {
        let mut u = rng.unit();
        for (code, rate) in &self.rates {
            if code.info().lifecycle != life || code.info().class == FaultClass::None {
                continue;
            }
            if u < *rate {
                return *code;
            }
            u -= rate;
        }
        Code::success(life)
    }

    pub fn rates(&self) -> &[(Code, f64)] {
        &self.rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_indexed_by_code_and_names_round_trip() {
        for (i, c) in CODES.iter().enumerate() {
            assert_eq!(c.code as usize, i);
            assert_eq!(Code::from_name(c.name), Some(c.code));
        }
        let faults = CODES.iter().filter(|c| c.class != FaultClass::None).count();
        assert!(faults >= 35, "{faults} injectable codes");
    }

    #[test]
    fn mixes_parse_validate_and_draw_by_rate() {
        let mix =
            FaultMix::parse("ImageNotFound=0.25, KubeletDelay=0.25,FinalizerBlocked").unwrap();
        let mut rng = Rng::new(4);
        let mut hits = std::collections::BTreeMap::new();
        for _ in 0..4000 {
            *hits
                .entry(mix.draw(&mut rng, Lifecycle::Create))
                .or_insert(0) += 1;
        }
        assert!(
            (850..1150).contains(&hits[&Code::ImageNotFound]),
            "{hits:?}"
        );
        assert!((1800..2200).contains(&hits[&Code::Success]), "{hits:?}");
        assert_eq!(
            mix.draw(&mut rng, Lifecycle::Delete),
            Code::FinalizerBlocked
        );
        assert_eq!(
            FaultMix::parse("Nope=0.1"),
            Err(FaultError::UnknownCode("Nope".into()))
        );
        assert!(matches!(
            FaultMix::parse("ImageNotFound=2"),
            Err(FaultError::BadRate(_))
        ));
        assert!(matches!(
            FaultMix::parse("ImageNotFound=0.6,OOMKilled=0.6"),
            Err(FaultError::TooMuch("create", _))
        ));
    }
}
