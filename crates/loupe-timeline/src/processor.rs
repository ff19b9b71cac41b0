use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

// foldhash (hashbrown's default) for maps keyed by UIDs and names: SipHash cost 1 % of a replay.
use hashbrown::HashMap;

use loupe_audit::{decode, AuditEvent};
use loupe_facts::{
    observe, EventObs, Fact, FactRecord, Observation, ObservedBody, PodState, Subject,
};
use serde::{Deserialize, Serialize};

use crate::dedup::{Dedup, HashedSet};
use crate::stats::Stats;

/// How the processor trades latency for order.
#[derive(Debug, Clone)]
pub struct Config {
    pub cluster: String,
    /// How far behind the newest event time an event may arrive and still be put in order.
    pub lateness_us: i64,
    /// How long (event time) an `auditID` is remembered for deduplication.
    pub dedup_horizon_us: i64,
    pub dedup_capacity: usize,
    /// Pods with no event for this long (audit time) leave memory; they are in the store
    /// and come back through the [`StateLoader`] when an event names them again.
    pub idle_us: i64,
}

impl Config {
    pub fn new(cluster: &str) -> Config {
        Config {
            cluster: cluster.to_string(),
            lateness_us: 60_000_000,
            dedup_horizon_us: 15 * 60_000_000,
            dedup_capacity: 2_000_000,
            idle_us: 5 * 60_000_000,
        }
    }
}

/// Where pod states that left memory are found again: the store, in production.
pub trait StateLoader: Send {
    /// The committed state of a pod, if the store has it.
    fn load(&mut self, uid: &str) -> Option<PodState>;
    /// The UID of the newest pod of that name that is not gone.
    fn find(&mut self, namespace: &str, name: &str) -> Option<String>;
}

/// An input record that could not be read. Its text is kept for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Malformed {
    pub source: String,
    pub line: u64,
    pub error: String,
}

/// An analysed audit event to keep verbatim; its ID and text are in [`Output::raw_packed`]
/// ([`Output::raw_audit_id`], [`Output::raw_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub stage: &'static str,
    pub ts: i64,
    audit_id: std::ops::Range<usize>,
    json: std::ops::Range<usize>,
}

/// What an audit event's raw text holds of the pod it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodBody {
    None,
    /// The whole object after the request: a version of the pod.
    Full,
    /// A patch to it.
    Patch,
}

/// One audit event on one pod's timeline: the facts it revealed, in order, and what its
/// raw text holds of the pod. The store keeps one row per entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub uid: String,
    pub ts: i64,
    pub audit_id: String,
    /// Applied after the watermark had passed its time.
    pub late: bool,
    pub body: PodBody,
    pub facts: Vec<Fact>,
}

impl Entry {
    /// The entry's facts with their places on the timeline.
    pub fn records(&self) -> impl Iterator<Item = FactRecord> + '_ {
        self.facts.iter().enumerate().map(|(seq, fact)| FactRecord {
            ts: self.ts,
            audit_id: self.audit_id.clone(),
            seq: seq as u32,
            late: self.late,
            fact: fact.clone(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub ready: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub unschedulable: Option<bool>,
    pub first_ts: i64,
    pub last_ts: i64,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvcRecord {
    pub namespace: String,
    pub name: String,
    pub phase: Option<String>,
    pub storage_class: Option<String>,
    pub volume: Option<String>,
    pub last_ts: i64,
    pub deleted: bool,
}

/// What the processor produced since the last [`Processor::take_output`].
#[derive(Debug, Default)]
pub struct Output {
    pub raw: Vec<RawEvent>,
    /// Every raw event, packed as the store keeps them in a chunk, so that it compresses
    /// this buffer as it is: per event `u16 id_len, id, u8 stage_len, stage, i64 ts,
    /// u32 json_len, json` (little endian). Written only from `&str`s, so each text range
    /// is UTF-8. One buffer, reused across outputs.
    raw_packed: Vec<u8>,
    /// The pod entries applied, in the order they were applied.
    pub entries: Vec<Entry>,
    /// The states of the pods the entries changed. Shared with the processor, which
    /// copies a state on its next change only if this output still holds it.
    pub pods: Vec<Arc<PodState>>,
    pub nodes: Vec<NodeRecord>,
    pub pvcs: Vec<PvcRecord>,
    pub malformed: Vec<Malformed>,
    pub stats: Stats,
    /// The audit clock after this output: everything at or before it has been applied.
    pub watermark: i64,
}

impl Output {
    /// The verbatim text of a raw event of this output.
    pub fn raw_json(&self, e: &RawEvent) -> &str {
        self.packed_text(e.json.clone())
    }

    /// The audit ID of a raw event of this output (cut at 65 535 bytes, as stored).
    pub fn raw_audit_id(&self, e: &RawEvent) -> &str {
        self.packed_text(e.audit_id.clone())
    }

    /// The raw events in the store's chunk layout (see the field).
    pub fn raw_packed(&self) -> &[u8] {
        &self.raw_packed
    }

    fn packed_text(&self, range: std::ops::Range<usize>) -> &str {
        std::str::from_utf8(&self.raw_packed[range]).expect("packed from whole &strs")
    }

    /// Empties the output but keeps its buffers' capacity.
    fn clear(&mut self) {
        self.raw.clear();
        self.raw_packed.clear();
        self.entries.clear();
        self.pods.clear();
        self.nodes.clear();
        self.pvcs.clear();
        self.malformed.clear();
        self.stats = Stats::default();
        self.watermark = 0;
    }

    /// Every fact of the output with its pod's UID, in the order applied.
    pub fn fact_records(&self) -> impl Iterator<Item = (&str, FactRecord)> + '_ {
        self.entries
            .iter()
            .flat_map(|e| e.records().map(move |r| (e.uid.as_str(), r)))
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
            && self.entries.is_empty()
            && self.pods.is_empty()
            && self.malformed.is_empty()
    }
}

/// What a restart needs to continue exactly where the last commit stopped.
#[derive(Debug, Default)]
pub struct Recovery {
    pub watermark: i64,
    pub max_seen: i64,
    pub pods: Vec<PodState>,
    pub nodes: Vec<NodeRecord>,
    /// `(auditID, stage, ts)` of recently stored events, for deduplication.
    pub recent: Vec<(String, String, i64)>,
    /// Stored events newer than the watermark: they were waiting and must wait again.
    pub pending: Vec<String>,
    /// `(uid, namespace, name)` of the stored pods not gone and not in `pods` (quiet ones):
    /// the only ones the loader is asked for, with those this processor moves out.
    pub idle: Vec<(String, String, String)>,
}

impl Recovery {
    /// A cluster the store has never seen: no clock yet.
    pub fn default_for_new() -> Recovery {
        Recovery {
            watermark: i64::MIN,
            max_seen: i64::MIN,
            ..Recovery::default()
        }
    }
}

/// The parts of an Event a Request-level repeat patch does not restate, packed into one
/// allocation: kept for every recent Event of every pod in memory.
struct EventTemplate {
    uid: String,
    text: Box<str>,
    /// Start of each field in `text`; `NONE` for an absent one. The last entry is the end.
    at: [u32; 7],
}

const NONE: u32 = u32::MAX;

impl EventTemplate {
    fn new(uid: &str, fields: [Option<&str>; 6]) -> EventTemplate {
        let mut text = String::new();
        let mut at = [NONE; 7];
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f {
                at[i] = text.len() as u32;
                text.push_str(f);
            }
        }
        at[6] = text.len() as u32;
        EventTemplate {
            uid: uid.to_string(),
            text: text.into_boxed_str(),
            at,
        }
    }

    /// Field `i`: 0 field path, 1 reason, 2 message, 3 type, 4 component, 5 host.
    fn field(&self, i: usize) -> Option<String> {
        let start = self.at[i];
        if start == NONE {
            return None;
        }
        let end = self.at[i + 1..]
            .iter()
            .find(|&&a| a != NONE)
            .copied()
            .unwrap_or(self.at[6]);
        Some(self.text[start as usize..end as usize].to_string())
    }
}

fn event_key(namespace: &str, name: &str) -> u64 {
    Dedup::key(namespace, name)
}

/// Makes `namespace/name` resolve to `uid`; allocates only when that is news (it was
/// three allocations on every applied event).
fn name_pod(by_name: &mut HashMap<PodName, String>, namespace: &str, name: &str, uid: &str) {
    if namespace.is_empty() || name.is_empty() {
        return;
    }
    match by_name.get_mut(&PodNameRef(namespace, name)) {
        Some(known) if known == uid => {}
        Some(known) => *known = uid.to_string(),
        None => {
            by_name.insert(
                PodName(namespace.to_string(), name.to_string()),
                uid.to_string(),
            );
        }
    }
}

/// Forgets `namespace/name` if it still names `uid` (not a newer pod of that name).
fn unname_pod(by_name: &mut HashMap<PodName, String>, namespace: &str, name: &str, uid: &str) {
    let key = PodNameRef(namespace, name);
    if by_name.get(&key).is_some_and(|known| known == uid) {
        by_name.remove(&key);
    }
}

/// A pod's `namespace/name`, the key of `Processor::by_name`.
#[derive(PartialEq, Eq)]
struct PodName(String, String);

/// The same key borrowed, to look a name up without allocating (it hashes the same).
struct PodNameRef<'a>(&'a str, &'a str);

impl std::hash::Hash for PodName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        PodNameRef(&self.0, &self.1).hash(state);
    }
}

impl std::hash::Hash for PodNameRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<PodName> for PodNameRef<'_> {
    fn equivalent(&self, key: &PodName) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

struct Pending {
    /// Kept beside the box: the heap compares times without following it.
    ts: i64,
    /// Arrival order: the last tie-break, for identical (ts, auditID) from two clusters' logs.
    seq: u64,
    pod_body: bool,
    /// Boxed: the heap moves 32 bytes per sift instead of the whole observation.
    obs: Box<Observation>,
}

impl Pending {
    fn key(&self) -> (i64, &str, u64) {
        (self.ts, &self.obs.audit_id, self.seq)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Most Event templates kept per pod, to resolve Request-level repeat patches; the least
/// recently used goes first (a crash-looping container repeats its early `Created`).
const EVENT_TEMPLATES_PER_POD: usize = 12;
/// Gone pods whose UIDs are remembered, so stragglers are not taken for new pods.
const CLOSED_CAPACITY: usize = 1_000_000;

/// The ingest pipeline without I/O. See the crate documentation.
pub struct Processor {
    config: Config,
    dedup: Dedup,
    /// Newest event time seen.
    max_seen: i64,
    /// Everything at or before this time has been applied.
    watermark: i64,
    /// Observations waiting for the watermark, earliest (ts, auditID) first.
    pending: BinaryHeap<Reverse<Pending>>,
    next_seq: u64,
    pods: HashMap<String, Arc<PodState>>,
    by_name: HashMap<PodName, String>,
    /// Hash of (namespace, event name) → what a repeat that carries no object lacks.
    events: HashMap<u64, EventTemplate>,
    pod_events: HashMap<String, VecDeque<u64>>,
    /// Hashes of the UIDs of pods that left memory (they are in the store).
    closed: HashedSet,
    closed_order: VecDeque<u64>,
    gone_queue: BTreeSet<(i64, String)>,
    /// Hashes of the UIDs, and of the names, of pods in the store but not in memory: the
    /// loader is asked only about these (a query for every new pod cost 3 % of a replay).
    /// UIDs are the apiserver's, so their hashes index the set as they are; names are the
    /// users', and FNV of chosen names could crowd one bucket, so they are hashed again
    /// (seeded), as are the Event keys in `events`.
    idle_uids: HashedSet,
    idle_names: hashbrown::HashSet<u64>,
    nodes: HashMap<String, NodeRecord>,
    pvcs: HashMap<(String, String), PvcRecord>,
    dirty_pods: BTreeSet<String>,
    dirty_nodes: BTreeSet<String>,
    dirty_pvcs: BTreeSet<(String, String)>,
    out: Output,
    /// A drained output handed back by the caller, reused to avoid fresh allocations.
    spare: Option<Output>,
    loader: Option<Box<dyn StateLoader>>,
    /// Audit time of the last scan for idle pods.
    idle_scan: i64,
}

impl Processor {
    pub fn new(config: Config) -> Processor {
        Processor {
            dedup: Dedup::new(config.dedup_horizon_us, config.dedup_capacity),
            config,
            max_seen: i64::MIN,
            watermark: i64::MIN,
            pending: BinaryHeap::new(),
            next_seq: 0,
            pods: HashMap::new(),
            by_name: HashMap::new(),
            events: HashMap::new(),
            pod_events: HashMap::new(),
            closed: HashedSet::default(),
            closed_order: VecDeque::new(),
            gone_queue: BTreeSet::new(),
            idle_uids: HashedSet::default(),
            idle_names: hashbrown::HashSet::new(),
            nodes: HashMap::new(),
            pvcs: HashMap::new(),
            dirty_pods: BTreeSet::new(),
            dirty_nodes: BTreeSet::new(),
            dirty_pvcs: BTreeSet::new(),
            out: Output::default(),
            spare: None,
            loader: None,
            idle_scan: i64::MIN,
        }
    }

    /// A processor that continues from a committed checkpoint.
    pub fn recover(config: Config, recovery: Recovery) -> Processor {
        let mut p = Processor::new(config);
        p.watermark = recovery.watermark;
        p.max_seen = recovery.max_seen.max(recovery.watermark);
        for (id, stage, ts) in &recovery.recent {
            p.dedup.insert(Dedup::key(id, stage), *ts);
        }
        for state in recovery.pods {
            name_pod(&mut p.by_name, &state.namespace, &state.name, &state.uid);
            p.pods.insert(state.uid.clone(), Arc::new(state));
        }
        for node in recovery.nodes {
            p.nodes.insert(node.name.clone(), node);
        }
        for (uid, namespace, name) in &recovery.idle {
            p.idle_uids.insert(Dedup::key(uid, ""));
            p.idle_names.insert(Dedup::key(namespace, name));
        }
        for line in &recovery.pending {
            // Already stored and deduplicated: only the waiting is redone.
            if let Ok(event) = decode(line) {
                if let Ok(Some(obs)) = observe(&event) {
                    let pod_body = has_pod_body(&obs);
                    p.enqueue(obs, pod_body);
                }
            }
        }
        p
    }

    /// Lets idle pods leave memory: they are reloaded from `loader` when needed.
    pub fn with_loader(mut self, loader: Box<dyn StateLoader>) -> Processor {
        self.loader = Some(loader);
        self
    }

    pub fn cluster(&self) -> &str {
        &self.config.cluster
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    pub fn in_flight_pods(&self) -> usize {
        self.pods.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one record (a log line or a webhook item). `source`/`line` locate it in reports.
    pub fn push(&mut self, json: &str, source: &str, line: u64) {
        self.out.stats.records += 1;
        let event = match decode(json) {
            Ok(e) => e,
            Err(e) => return self.malformed(source, line, e.to_string()),
        };
        if !event.stage.is_final() {
            self.out.stats.non_final += 1;
            return;
        }
        let Some(ts) = event.time() else {
            return self.malformed(source, line, "no timestamp".into());
        };
        // Noise is only counted, so only analysed events need remembering; its time
        // still moves the audit clock (leases tick even when no pod changes).
        if !event.target().is_relevant() {
            self.out.stats.skipped += 1;
            self.observe_time(ts);
            return;
        }
        if !self
            .dedup
            .insert(Dedup::key(&event.audit_id, event.stage.as_str()), ts)
        {
            self.out.stats.duplicates += 1;
            return;
        }
        self.keep_raw(&event, ts, json);
        let obs = match observe(&event) {
            Ok(Some(obs)) => obs,
            Ok(None) => {
                self.out.stats.skipped += 1;
                return;
            }
            Err(e) => {
                let what = format!("audit event {}: unreadable body: {e}", event.audit_id);
                return self.malformed(source, line, what);
            }
        };
        self.out.stats.analysed += 1;
        let pod_body = has_pod_body(&obs);
        if ts <= self.watermark {
            self.out.stats.late += 1;
            self.apply(obs, pod_body, true);
        } else {
            self.enqueue(obs, pod_body);
        }
        self.observe_time(ts);
    }

    fn observe_time(&mut self, ts: i64) {
        if ts > self.max_seen {
            self.max_seen = ts;
            self.advance(ts.saturating_sub(self.config.lateness_us));
        }
    }

    /// Applies everything that is waiting: the end of a replay, or an idle live stream.
    pub fn flush(&mut self) {
        self.advance(self.max_seen);
    }

    /// Moves the watermark (never backwards) and applies what it passes, in event order.
    pub fn advance(&mut self, to: i64) {
        if to <= self.watermark {
            return;
        }
        self.watermark = to;
        while self.pending.peek().is_some_and(|p| p.0.ts <= to) {
            if let Some(Reverse(p)) = self.pending.pop() {
                self.apply(*p.obs, p.pod_body, false);
            }
        }
        self.dedup.expire(self.max_seen);
        self.close_gone_pods();
        self.evict_idle_pods();
    }

    /// Drains what was produced, with the states of the pods it touched.
    pub fn take_output(&mut self) -> Output {
        let fresh = self.spare.take().unwrap_or_default();
        let mut out = std::mem::replace(&mut self.out, fresh);
        for uid in std::mem::take(&mut self.dirty_pods) {
            if let Some(state) = self.pods.get(&uid) {
                out.pods.push(Arc::clone(state));
            }
        }
        for name in std::mem::take(&mut self.dirty_nodes) {
            if let Some(node) = self.nodes.get(&name) {
                out.nodes.push(node.clone());
            }
        }
        for key in std::mem::take(&mut self.dirty_pvcs) {
            if let Some(pvc) = self.pvcs.get(&key) {
                out.pvcs.push(pvc.clone());
            }
        }
        out.watermark = self.watermark;
        out
    }

    /// Gives a drained output back so its buffers serve the next one.
    pub fn recycle(&mut self, mut out: Output) {
        out.clear();
        self.spare = Some(out);
    }

    /// Counters of what was pushed since the last [`Processor::take_output`].
    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    /// The newest event time seen: persisted with the watermark.
    pub fn max_seen(&self) -> i64 {
        self.max_seen
    }

    /// Counts a record a reader recognised as outside what Loupe analyses.
    pub fn count_skipped(&mut self) {
        self.out.stats.records += 1;
        self.out.stats.skipped += 1;
    }

    /// Counts and reports a record a reader could not even hand over (bad UTF-8, a cut file).
    pub fn report_malformed(&mut self, source: &str, line: u64, error: String) {
        self.out.stats.records += 1;
        self.malformed(source, line, error);
    }

    fn malformed(&mut self, source: &str, line: u64, error: String) {
        self.out.stats.malformed += 1;
        self.out.malformed.push(Malformed {
            source: source.to_string(),
            line,
            error,
        });
    }

    /// Appends the event to [`Output::raw_packed`]: its text is copied once, into the
    /// buffer the store compresses.
    fn keep_raw(&mut self, event: &AuditEvent<'_>, ts: i64, json: &str) {
        let buf = &mut self.out.raw_packed;
        let id = cut_at_char(&event.audit_id, u16::MAX as usize);
        let stage = event.stage.as_str();
        buf.reserve(2 + id.len() + 1 + stage.len() + 8 + 4 + json.len());
        buf.extend_from_slice(&(id.len() as u16).to_le_bytes());
        let audit_id = buf.len()..buf.len() + id.len();
        buf.extend_from_slice(id.as_bytes());
        buf.push(stage.len() as u8);
        buf.extend_from_slice(stage.as_bytes());
        buf.extend_from_slice(&ts.to_le_bytes());
        let json = cut_at_char(json, u32::MAX as usize);
        buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
        let text = buf.len()..buf.len() + json.len();
        buf.extend_from_slice(json.as_bytes());
        self.out.raw.push(RawEvent {
            stage,
            ts,
            audit_id,
            json: text,
        });
    }

    fn enqueue(&mut self, obs: Observation, pod_body: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(Reverse(Pending {
            ts: obs.ts,
            seq,
            pod_body,
            obs: Box::new(obs),
        }));
    }

    fn apply(&mut self, mut obs: Observation, pod_body: bool, late: bool) {
        // Matched by reference: a pod's subject (most observations) is not copied.
        match &obs.subject {
            Subject::Node { name } => return self.apply_node(name, &obs),
            Subject::Pvc { namespace, name } => {
                return self.apply_pvc(namespace.clone(), name.clone(), &obs)
            }
            _ => {}
        }
        if matches!(obs.subject, Subject::Unrelated) && !self.resolve_repeat(&mut obs) {
            self.out.stats.unrelated += 1;
            return;
        }
        let Some(uid) = self.resolve_pod(&obs) else {
            self.out.stats.unlinked += 1;
            return;
        };
        self.reload(&uid);
        if let ObservedBody::Event(e) = &obs.body {
            self.remember_event(&uid, e);
        }
        let straggler =
            !self.pods.contains_key(&uid) && self.closed.contains(&Dedup::key(&uid, ""));
        let mut scratch;
        let state = if straggler {
            // The pod was closed long ago: judge this event on its own.
            scratch = PodState::new(&uid, "", "");
            &mut scratch
        } else {
            // `entry_ref`: the key is copied only for a new pod. `make_mut` copies the
            // state only if an output not yet committed still holds it.
            Arc::make_mut(self.pods.entry_ref(uid.as_str()).or_insert_with(|| {
                let (namespace, name) = subject_name(&obs.subject);
                Arc::new(PodState::new(&uid, namespace, name))
            }))
        };
        if state.name.is_empty() {
            let (namespace, name) = subject_name(&obs.subject);
            state.namespace = namespace.to_string();
            state.name = name.to_string();
        }
        let was_gone = state.gone.is_some();
        let facts = state.apply(&obs);
        let gone_at = state.gone.filter(|_| !was_gone);
        let late = late || straggler;
        if !straggler {
            name_pod(&mut self.by_name, &state.namespace, &state.name, &uid);
        }
        if let Some(at) = gone_at {
            self.gone_queue.insert((at, uid.clone()));
        }
        let body = if !pod_body {
            PodBody::None
        } else if match &obs.body {
            ObservedBody::PodCreated { snapshot, .. } | ObservedBody::PodWrite(snapshot) => {
                snapshot.full
            }
            ObservedBody::DeleteRequested { snapshot, .. } => {
                snapshot.as_ref().is_some_and(|s| s.full)
            }
            _ => false,
        } {
            PodBody::Full
        } else {
            PodBody::Patch
        };
        self.out.stats.facts += facts.len() as u64;
        if !facts.is_empty() || body != PodBody::None {
            self.out.entries.push(Entry {
                uid: uid.clone(),
                ts: obs.ts,
                audit_id: std::mem::take(&mut obs.audit_id),
                late,
                body,
                facts,
            });
        }
        if !straggler {
            self.dirty_pods.insert(uid);
        }
    }

    fn resolve_pod(&mut self, obs: &Observation) -> Option<String> {
        match &obs.subject {
            Subject::Pod { uid: Some(uid), .. } => Some(uid.clone()),
            Subject::Pod {
                uid: None,
                namespace,
                name: Some(name),
            } => match self.by_name.get(&PodNameRef(namespace, name)) {
                Some(uid) => Some(uid.clone()),
                None if self.idle_names.contains(&Dedup::key(namespace, name)) => {
                    self.loader.as_mut()?.find(namespace, name)
                }
                None => None,
            },
            Subject::RejectedCreate { namespace, name } => {
                Some(format!("rejected:{}/{}", namespace, name))
            }
            _ => None,
        }
    }

    /// Brings an idle pod's state back from the store before it changes again.
    fn reload(&mut self, uid: &str) {
        if self.pods.contains_key(uid) || !self.idle_uids.contains(&Dedup::key(uid, "")) {
            return;
        }
        if let Some(state) = self.loader.as_mut().and_then(|l| l.load(uid)) {
            self.idle_uids.remove(&Dedup::key(uid, ""));
            name_pod(&mut self.by_name, &state.namespace, &state.name, uid);
            self.out.stats.reloaded += 1;
            self.pods.insert(uid.to_string(), Arc::new(state));
        }
    }

    /// Pods that have been quiet for the idle time leave memory (their state is committed:
    /// only pods already taken out are candidates). Checked once a minute of audit time.
    fn evict_idle_pods(&mut self) {
        if self.loader.is_none() || self.watermark < self.idle_scan.saturating_add(60_000_000) {
            return;
        }
        self.idle_scan = self.watermark;
        let limit = self.watermark.saturating_sub(self.config.idle_us);
        let idle: Vec<String> = self
            .pods
            .iter()
            .filter(|(uid, s)| {
                s.last_ts < limit && s.gone.is_none() && !self.dirty_pods.contains(*uid)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in idle {
            if let Some(state) = self.pods.remove(&uid) {
                self.idle_uids.insert(Dedup::key(&uid, ""));
                self.idle_names
                    .insert(Dedup::key(&state.namespace, &state.name));
                unname_pod(&mut self.by_name, &state.namespace, &state.name, &uid);
            }
            for key in self.pod_events.remove(&uid).into_iter().flatten() {
                self.events.remove(&key);
            }
            self.out.stats.evicted += 1;
        }
    }

    /// Completes a Request-level Event repeat (a patch with only `count`) from its first copy.
    fn resolve_repeat(&mut self, obs: &mut Observation) -> bool {
        let ObservedBody::Event(e) = &mut obs.body else {
            return false;
        };
        if e.involved.is_some() {
            return false;
        }
        let key = event_key(&e.namespace, &e.name);
        let Some(t) = self.events.get(&key) else {
            return false;
        };
        if let Some(list) = self.pod_events.get_mut(t.uid.as_str()) {
            if let Some(at) = list.iter().position(|k| *k == key) {
                list.remove(at);
                list.push_back(key);
            }
        }
        e.involved = Some(loupe_facts::InvolvedRef {
            kind: "Pod".into(),
            namespace: e.namespace.clone(),
            name: String::new(),
            uid: t.uid.clone(),
            field_path: t.field(0),
        });
        e.reason = e.reason.take().or_else(|| t.field(1));
        e.message = e.message.take().or_else(|| t.field(2));
        e.kind = e.kind.take().or_else(|| t.field(3));
        e.component = e.component.take().or_else(|| t.field(4));
        e.host = e.host.take().or_else(|| t.field(5));
        e.repeat = true;
        obs.subject = Subject::Pod {
            uid: Some(t.uid.clone()),
            namespace: e.namespace.clone(),
            name: None,
        };
        true
    }

    fn remember_event(&mut self, uid: &str, e: &EventObs) {
        let Some(involved) = &e.involved else { return };
        if e.name.is_empty() {
            return;
        }
        let key = event_key(&e.namespace, &e.name);
        let list = self.pod_events.entry(uid.to_string()).or_default();
        if !list.contains(&key) {
            list.push_back(key);
            if list.len() > EVENT_TEMPLATES_PER_POD {
                if let Some(old) = list.pop_front() {
                    self.events.remove(&old);
                }
            }
        }
        let template = EventTemplate::new(
            uid,
            [
                involved.field_path.as_deref(),
                e.reason.as_deref(),
                e.message.as_deref(),
                e.kind.as_deref(),
                e.component.as_deref(),
                e.host.as_deref(),
            ],
        );
        self.events.insert(key, template);
    }

    /// Gone pods leave memory once late events for them can no longer be put in order.
    fn close_gone_pods(&mut self) {
        let limit = self.watermark.saturating_sub(self.config.lateness_us);
        while let Some((at, uid)) = self.gone_queue.first().cloned() {
            if at > limit {
                break;
            }
            self.gone_queue.pop_first();
            if let Some(state) = self.pods.remove(&uid) {
                unname_pod(&mut self.by_name, &state.namespace, &state.name, &uid);
                // Its last changes must still reach the store.
                if self.dirty_pods.remove(&uid) {
                    self.out.pods.push(state);
                }
            }
            for key in self.pod_events.remove(&uid).into_iter().flatten() {
                self.events.remove(&key);
            }
            let h = Dedup::key(&uid, "");
            self.closed.insert(h);
            self.closed_order.push_back(h);
            if self.closed_order.len() > CLOSED_CAPACITY {
                if let Some(old) = self.closed_order.pop_front() {
                    self.closed.remove(&old);
                }
            }
        }
    }

    fn apply_node(&mut self, name: &str, obs: &Observation) {
        if name.is_empty() {
            self.out.stats.unlinked += 1;
            return;
        }
        let node = self
            .nodes
            .entry(name.to_string())
            .or_insert_with(|| NodeRecord {
                name: name.to_string(),
                first_ts: obs.ts,
                ..NodeRecord::default()
            });
        node.last_ts = node.last_ts.max(obs.ts);
        if let ObservedBody::Node(n) = &obs.body {
            if let Some((status, reason, message)) = &n.ready {
                node.ready = Some(status.clone());
                node.reason = reason.clone();
                node.message = message.clone();
            }
            if n.unschedulable.is_some() {
                node.unschedulable = n.unschedulable;
            }
            node.deleted = n.deleted;
        }
        self.dirty_nodes.insert(name.to_string());
    }

    fn apply_pvc(&mut self, namespace: String, name: String, obs: &Observation) {
        let ObservedBody::Pvc(p) = &obs.body else {
            return;
        };
        let key = (namespace.clone(), name.clone());
        let pvc = self.pvcs.entry(key.clone()).or_insert_with(|| PvcRecord {
            namespace,
            name,
            ..PvcRecord::default()
        });
        pvc.last_ts = pvc.last_ts.max(obs.ts);
        pvc.phase = p.phase.clone().or(pvc.phase.take());
        pvc.storage_class = p.storage_class.clone().or(pvc.storage_class.take());
        pvc.volume = p.volume.clone().or(pvc.volume.take());
        pvc.deleted = p.deleted;
        self.dirty_pvcs.insert(key);
    }

    /// The pods currently followed, in UID order (for tests and inspection).
    pub fn pods(&self) -> BTreeMap<&str, &PodState> {
        self.pods.iter().map(|(k, v)| (k.as_str(), &**v)).collect()
    }
}

fn has_pod_body(obs: &Observation) -> bool {
    matches!(
        &obs.body,
        ObservedBody::PodCreated { .. }
            | ObservedBody::PodWrite(_)
            | ObservedBody::DeleteRequested {
                snapshot: Some(_),
                ..
            }
    )
}

fn subject_name(subject: &Subject) -> (&str, &str) {
    match subject {
        Subject::Pod {
            namespace, name, ..
        } => (namespace, name.as_deref().unwrap_or("")),
        Subject::RejectedCreate { namespace, name } => (namespace, name),
        _ => ("", ""),
    }
}
/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_on_character_boundaries() {
        assert_eq!(cut_at_char("abc", 5), "abc");
        assert_eq!(cut_at_char("abc", 2), "ab");
        // `é` is two bytes: a cut inside it goes back before it.
        assert_eq!(cut_at_char("aé", 2), "a");
        assert_eq!(cut_at_char("aé", 3), "aé");
    }

    #[test]
    fn packs_raw_events_in_the_chunk_layout() {
        let mut p = Processor::new(Config::new("t"));
        let line = r#"{"level":"Request","auditID":"id-1","stage":"ResponseComplete","verb":"patch","objectRef":{"resource":"pods","namespace":"n","name":"p"},"requestObject":{"status":{"phase":"Running"}},"stageTimestamp":"2024-01-01T00:00:01Z"}"#;
        p.push(line, "t", 1);
        let out = p.take_output();
        let e = &out.raw[0];
        assert_eq!((out.raw_audit_id(e), out.raw_json(e)), ("id-1", line));
        let mut want = Vec::new();
        want.extend_from_slice(&4u16.to_le_bytes());
        want.extend_from_slice(b"id-1");
        want.push(16);
        want.extend_from_slice(b"ResponseComplete");
        want.extend_from_slice(&1_704_067_201_000_000i64.to_le_bytes());
        want.extend_from_slice(&(line.len() as u32).to_le_bytes());
        want.extend_from_slice(line.as_bytes());
        assert_eq!(out.raw_packed(), &want[..]);
    }
}
