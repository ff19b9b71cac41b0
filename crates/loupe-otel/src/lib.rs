//! `loupe-otel`: delivery traces over OTLP (HTTP/protobuf) to any OpenTelemetry backend.
//!
//! IDs are deterministic (cluster + pod UID + action + the trace's start for the trace,
//! and the span's path and instance for each span), so exporting the same delivery again
//! sends the same spans and a backend deduplicates them. Resource attributes follow the
//! OpenTelemetry Kubernetes semantic conventions (`k8s.pod.name`, `k8s.namespace.name`,
//! `k8s.node.name`, `k8s.<workload>.name`, `k8s.cluster.name`).

use std::time::{Duration, SystemTime};

use loupe_trace::{Span, Trace};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTLP exporter: {0}")]
    Build(String),
    #[error("OTLP export to {endpoint} failed: {message}")]
    Export { endpoint: String, message: String },
}

/// The pod a trace belongs to, for the resource attributes.
#[derive(Debug, Clone)]
pub struct PodResource {
    pub cluster: String,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
}

/// The ID of an exported span (what a stream remembers having sent).
pub type SpanIdOf = SpanId;

/// A remote parent, from the pod's W3C `traceparent` annotation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// Parses `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
pub fn parse_traceparent(value: &str) -> Option<RemoteParent> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    if parts.len() != 4
        || parts[0].len() != 2
        || parts[1].len() != 32
        || parts[2].len() != 16
        || parts[0] == "ff"
    {
        return None;
    }
    let trace_id = TraceId::from_hex(parts[1])
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(parts[2])
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    Some(RemoteParent { trace_id, span_id })
}

fn fnv(parts: &[&str], seed: u64) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.bytes().chain(std::iter::once(0xff)))
        .fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The delivery's trace ID: the same for the same cluster, pod, action and start.
pub fn trace_id(pod: &PodResource, trace: &Trace) -> TraceId {
    let start = trace.start.to_string();
    let key = [
        pod.cluster.as_str(),
        pod.uid.as_str(),
        trace.action.as_str(),
        start.as_str(),
    ];
    let hi = fnv(&key, 0xcbf2_9ce4_8422_2325);
    let lo = fnv(&key, 0x8422_2325_cbf2_9ce4);
    TraceId::from_bytes(((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes())
}

fn span_id(trace: TraceId, span: &Span) -> SpanId {
    let t = format!("{trace}");
    let id = fnv(
        &[
            t.as_str(),
            span.path.as_str(),
            span.instance.as_deref().unwrap_or(""),
        ],
        0xcbf2_9ce4_8422_2325,
    );
    SpanId::from_bytes(id.max(1).to_be_bytes())
}

fn time(us: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

pub fn resource(pod: &PodResource) -> Resource {
    let mut attrs = vec![
        KeyValue::new("service.name", "kubernetes-pod-delivery"),
        KeyValue::new("k8s.cluster.name", pod.cluster.clone()),
        KeyValue::new("k8s.namespace.name", pod.namespace.clone()),
        KeyValue::new("k8s.pod.name", pod.name.clone()),
        KeyValue::new("k8s.pod.uid", pod.uid.clone()),
    ];
    if let Some(node) = &pod.node {
        attrs.push(KeyValue::new("k8s.node.name", node.clone()));
    }
    if let (Some(kind), Some(name)) = (&pod.owner_kind, &pod.owner_name) {
        let key = match kind.as_str() {
            "ReplicaSet" => Some("k8s.replicaset.name"),
            "StatefulSet" => Some("k8s.statefulset.name"),
            "DaemonSet" => Some("k8s.daemonset.name"),
            "Job" => Some("k8s.job.name"),
            _ => None,
        };
        if let Some(key) = key {
            attrs.push(KeyValue::new(key, name.clone()));
        }
    }
    Resource::builder_empty().with_attributes(attrs).build()
}

/// The finished spans of a trace as OTLP spans: closed ones, and every span of a trace
/// that ended or was aborted (an unclosed span then ends with the trace).
pub fn spans(pod: &PodResource, trace: &Trace, parent: Option<RemoteParent>) -> Vec<SpanData> {
    let tid = parent.map_or_else(|| trace_id(pod, trace), |p| p.trace_id);
    let scope = InstrumentationScope::builder("loupe")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut out = Vec::new();
    for (i, s) in trace.spans.iter().enumerate() {
        // A span left open when its trace ended (or was aborted) ends with the trace;
        // in a trace still in progress it waits to close.
        let end = match (s.end, trace.end.or(trace.aborted)) {
            (Some(e), _) => e,
            (None, Some(t)) => t,
            (None, None) => continue,
        };
        let parent_id = if i == 0 {
            parent.map_or(SpanId::INVALID, |p| p.span_id)
        } else {
            let parent_path = s.path.rsplit_once('/').map_or("", |(p, _)| p);
            trace
                .spans
                .iter()
                .filter(|p| p.path == parent_path)
                .find(|p| p.instance == s.instance)
                .or_else(|| trace.spans.iter().find(|p| p.path == parent_path))
                .map_or(SpanId::INVALID, |p| span_id(tid, p))
        };
        let mut attributes = vec![
            KeyValue::new("loupe.action", trace.action.as_str()),
            KeyValue::new("loupe.stage", s.path.clone()),
            KeyValue::new("loupe.owner", format!("{:?}", s.owner).to_lowercase()),
            KeyValue::new("loupe.start_audit_id", s.start_audit_id.clone()),
        ];
        if let Some(id) = &s.end_audit_id {
            attributes.push(KeyValue::new("loupe.end_audit_id", id.clone()));
        }
        if let Some(inst) = &s.instance {
            attributes.push(KeyValue::new("loupe.instance", inst.clone()));
        }
        if i == 0 && trace.aborted.is_some() {
            attributes.push(KeyValue::new("loupe.aborted", true));
        }
        if s.open {
            attributes.push(KeyValue::new("loupe.unfinished", true));
        }
        let status = match &s.error {
            Some(e) => Status::error(e.clone()),
            None => Status::Ok,
        };
        out.push(SpanData {
            span_context: SpanContext::new(
                tid,
                span_id(tid, s),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent_id,
            parent_span_is_remote: i == 0 && parent.is_some(),
            span_kind: SpanKind::Internal,
            name: match &s.instance {
                Some(inst) => format!("{} {inst}", s.name).into(),
                None => s.name.clone().into(),
            },
            start_time: time(s.start),
            end_time: time(end),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope.clone(),
        });
    }
    out
}

/// An OTLP/HTTP (protobuf) span exporter.
pub struct Exporter {
    endpoint: String,
    inner: opentelemetry_otlp::SpanExporter,
}

impl Exporter {
    /// `endpoint` is the traces URL (`http://collector:4318/v1/traces`).
    pub fn new(endpoint: &str) -> Result<Exporter, ExportError> {
        let inner = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ExportError::Build(e.to_string()))?;
        Ok(Exporter {
            endpoint: endpoint.to_string(),
            inner,
        })
    }

    /// Sends a pod's traces (one request, the pod as the resource); returns spans sent.
    pub fn export(
        &mut self,
        pod: &PodResource,
        traces: &[Trace],
        parent: Option<RemoteParent>,
    ) -> Result<usize, ExportError> {
        self.export_new(pod, traces, parent, &mut std::collections::HashSet::new())
    }

    /// As [`Exporter::export`], skipping the spans whose IDs are in `sent`, and adding the
    /// ones sent: a stream sends each finished span once.
    pub fn export_new(
        &mut self,
        pod: &PodResource,
        traces: &[Trace],
        parent: Option<RemoteParent>,
        sent: &mut std::collections::HashSet<SpanId>,
    ) -> Result<usize, ExportError> {
        let batch: Vec<SpanData> = traces
            .iter()
            .flat_map(|t| spans(pod, t, parent))
            .filter(|s| !sent.contains(&s.span_context.span_id()))
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        let ids: Vec<SpanId> = batch.iter().map(|s| s.span_context.span_id()).collect();
        let n = batch.len();
        self.inner.set_resource(&resource(pod));
        futures_executor::block_on(self.inner.export(batch)).map_err(|e| ExportError::Export {
            endpoint: self.endpoint.clone(),
            message: e.to_string(),
        })?;
        sent.extend(ids);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_and_bad_ones_are_refused() {
        let p =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            format!("{}", p.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(format!("{}", p.span_id), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }
}
