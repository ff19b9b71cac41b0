//! Golden signals from request records: rate, errors and a latency histogram per
//! service, endpoint and peer, named by the OpenTelemetry semantic conventions (and their
//! Prometheus forms); every label of every metric keeps at most N distinct values (the
//! rest become `*`); idle series expire. Plus the service graph: edges from client to
//! server with rate, errors and latency, in Tempo's names.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::record::Record;

/// OpenTelemetry's default explicit bucket boundaries for durations, in seconds.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// What label values may take per metric and label name before collapsing to `*`.
pub const DEFAULT_MAX_VALUES: usize = 100;

/// A record's place in the metrics: who served it, who asked.
#[derive(Debug, Clone, Copy)]
pub struct Sides<'a> {
    pub server: &'a str,
    pub client: &'a str,
}

/// One series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// OpenTelemetry name (`http.server.request.duration`).
    pub metric: &'static str,
    /// Prometheus name (`http_server_request_duration_seconds`).
    pub prometheus: String,
    pub labels: BTreeMap<&'static str, String>,
    pub count: u64,
    pub errors: u64,
    pub sum_seconds: f64,
    /// Cumulative counts per [`BUCKETS`] boundary (`le`), then +Inf = `count`.
    pub buckets: Vec<u64>,
    #[serde(skip)]
    last_seen: i64,
}

impl Series {
    /// The `q` quantile, estimated from the buckets as Prometheus' histogram_quantile does
    /// (linear within the bucket), in seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut lower = (0.0, 0u64);
        for (i, &c) in self.buckets.iter().enumerate() {
            if c as f64 >= rank {
                let (lo, below) = lower;
                let hi = BUCKETS[i];
                let inside = (c - below).max(1) as f64;
                return Some(lo + (hi - lo) * ((rank - below as f64) / inside).clamp(0.0, 1.0));
            }
            lower = (BUCKETS[i], c);
        }
        Some(*BUCKETS.last().expect("buckets"))
    }
}

/// An edge of the service graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub client: String,
    pub server: String,
    /// `http`, `dns`, …
    pub connection_type: &'static str,
    pub requests: u64,
    pub failed: u64,
    pub server_seconds_sum: f64,
    pub client_seconds_sum: f64,
}

/// The aggregator.
#[derive(Debug)]
pub struct Signals {
    max_values: usize,
    series: BTreeMap<(&'static str, Labels), Series>,
    values: BTreeMap<(&'static str, &'static str), BTreeSet<String>>,
    edges: BTreeMap<(String, String, &'static str), Edge>,
    /// Label values collapsed to `*`.
    pub overflowed: u64,
}

impl Signals {
    pub fn new(max_values: usize) -> Signals {
        Signals {
            max_values: max_values.max(1),
            series: BTreeMap::new(),
            values: BTreeMap::new(),
            edges: BTreeMap::new(),
            overflowed: 0,
        }
    }

    /// A label value, or `*` when the label already has its maximum of others.
    fn admit(&mut self, metric: &'static str, label: &'static str, value: &str) -> String {
        let set = self.values.entry((metric, label)).or_default();
        if set.contains(value) {
            return value.to_string();
        }
        if set.len() < self.max_values {
            set.insert(value.to_string());
            return value.to_string();
        }
        self.overflowed += 1;
        "*".to_string()
    }

    /// Counts one record.
    pub fn observe(&mut self, record: &Record, sides: Sides<'_>) {
        let (metric, prometheus, labels) = describe(record, sides);
        let labels: Vec<(&'static str, String)> = labels
            .into_iter()
            .map(|(name, value)| (name, self.admit(metric, name, &value)))
            .collect();
        let seconds = record.duration_us().max(0) as f64 / 1e6;
        let error = record.error.is_some();
        let s = self
            .series
            .entry((metric, labels.clone()))
            .or_insert_with(|| Series {
                metric,
                prometheus: prometheus.to_string(),
                labels: labels.iter().cloned().collect(),
                count: 0,
                errors: 0,
                sum_seconds: 0.0,
                buckets: vec![0; BUCKETS.len()],
                last_seen: record.response_end,
            });
        s.count += 1;
        s.errors += u64::from(error);
        s.sum_seconds += seconds;
        s.last_seen = s.last_seen.max(record.response_end);
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
        let kind = connection_type(record.protocol);
        let (client, server) = (
            self.admit("traces_service_graph", "client", sides.client),
            self.admit("traces_service_graph", "server", sides.server),
        );
        let e = self
            .edges
            .entry((client.clone(), server.clone(), kind))
            .or_insert_with(|| Edge {
                client,
                server,
                connection_type: kind,
                requests: 0,
                failed: 0,
                server_seconds_sum: 0.0,
                client_seconds_sum: 0.0,
            });
        e.requests += 1;
        e.failed += u64::from(error);
        e.server_seconds_sum += record.server_us().max(0) as f64 / 1e6;
        e.client_seconds_sum += seconds;
    }

    /// Drops series not seen since `before` (µs), and frees their label values.
    pub fn expire(&mut self, before: i64) {
        self.series.retain(|_, s| s.last_seen >= before);
        let mut live: BTreeMap<(&'static str, &'static str), BTreeSet<String>> = BTreeMap::new();
        for (metric, labels) in self.series.keys() {
            for (name, value) in labels {
                live.entry((metric, name))
                    .or_default()
                    .insert(value.clone());
            }
        }
        for (key, set) in &mut self.values {
            if key.0 != "traces_service_graph" {
                *set = live.remove(key).unwrap_or_default();
            }
        }
    }

    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.series.values()
    }

    /// Edges, optionally of one connection type only.
    pub fn graph(&self, connection_type: Option<&str>) -> Vec<&Edge> {
        self.edges
            .values()
            .filter(|e| connection_type.is_none_or(|t| t == e.connection_type))
            .collect()
    }
}

fn connection_type(protocol: &str) -> &'static str {
    match protocol {
        "http1" | "http2" => "http",
        "grpc" => "grpc",
        "dns" => "dns",
        "redis" | "mysql" | "postgresql" => "database",
        "kafka" => "messaging_system",
        _ => "other",
    }
}

type Labels = Vec<(&'static str, String)>;

/// The metric a record counts in, and its labels (before the cardinality limit).
fn describe(r: &Record, sides: Sides<'_>) -> (&'static str, &'static str, Labels) {
    let status = r.status.map(|s| s.to_string()).unwrap_or_default();
    match r.protocol {
        "dns" => (
            "dns.lookup.duration",
            "dns_lookup_duration_seconds",
            vec![
                ("server.address", sides.server.to_string()),
                ("dns.question.type", r.method.clone()),
                ("dns.question.name", r.route.clone()),
                ("error.type", r.error.clone().unwrap_or_default()),
            ],
        ),
        "grpc" => {
            let mut parts = r.resource.trim_start_matches('/').splitn(2, '/');
            let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            (
                "rpc.server.duration",
                "rpc_server_duration_seconds",
                vec![
                    ("server.address", sides.server.to_string()),
                    ("rpc.system", "grpc".to_string()),
                    ("rpc.service", service.to_string()),
                    ("rpc.method", method.to_string()),
                    ("rpc.grpc.status_code", status),
                    ("error.type", r.error.clone().unwrap_or_default()),
                ],
            )
        }
        "kafka" => (
            "messaging.client.operation.duration",
            "messaging_client_operation_duration_seconds",
            vec![
                ("server.address", sides.server.to_string()),
                ("messaging.system", "kafka".to_string()),
                ("messaging.operation.name", r.method.clone()),
                ("messaging.destination.name", r.route.clone()),
                ("error.type", r.error.clone().unwrap_or_default()),
            ],
        ),
        "redis" => (
            "db.client.operation.duration",
            "db_client_operation_duration_seconds",
            vec![
                ("server.address", sides.server.to_string()),
                ("db.system.name", "redis".to_string()),
                ("db.operation.name", r.method.clone()),
                ("error.type", r.error.clone().unwrap_or_default()),
            ],
        ),
        "postgresql" | "mysql" => (
            "db.client.operation.duration",
            "db_client_operation_duration_seconds",
            vec![
                ("server.address", sides.server.to_string()),
                ("db.system.name", r.protocol.to_string()),
                ("db.operation.name", r.method.clone()),
                ("db.query.summary", r.route.clone()),
                ("error.type", r.error.clone().unwrap_or_default()),
            ],
        ),
        _ => (
            "http.server.request.duration",
            "http_server_request_duration_seconds",
            vec![
                ("server.address", sides.server.to_string()),
                ("client.address", sides.client.to_string()),
                (
                    "http.request.method",
                    if r.partial {
                        "_OTHER".into()
                    } else {
                        r.method.clone()
                    },
                ),
                ("http.route", r.route.clone()),
                ("http.response.status_code", status),
                ("error.type", r.error.clone().unwrap_or_default()),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(route: &str, status: u16, start: i64, us: i64) -> Record {
        Record {
            protocol: "http1",
            method: "GET".into(),
            resource: route.into(),
            route: route.into(),
            host: None,
            status: Some(status),
            error: (status >= 500).then(|| "5xx".into()),
            request_bytes: 10,
            response_bytes: 10,
            request_start: start,
            request_end: start,
            response_start: start + us / 2,
            response_end: start + us,
            partial: false,
        }
    }

    const SIDES: Sides<'static> = Sides {
        server: "10.0.0.2:80",
        client: "10.0.0.1",
    };

    #[test]
    fn rate_errors_and_latency_per_route() {
        let mut s = Signals::new(100);
        for i in 0..100 {
            s.observe(
                &http("/a", if i % 10 == 0 { 500 } else { 200 }, i, 20_000),
                SIDES,
            );
        }
        let ok: Vec<&Series> = s
            .series()
            .filter(|x| x.labels["http.response.status_code"] == "200")
            .collect();
        assert_eq!((ok[0].count, ok[0].errors), (90, 0));
        let failed = s
            .series()
            .find(|x| x.labels["error.type"] == "5xx")
            .unwrap();
        assert_eq!((failed.count, failed.errors), (10, 10));
        assert_eq!(failed.prometheus, "http_server_request_duration_seconds");
        // 20 ms: in the (10 ms, 25 ms] bucket.
        let p50 = ok[0].quantile(0.5).unwrap();
        assert!((0.01..=0.025).contains(&p50), "{p50}");
        let g = s.graph(Some("http"));
        assert_eq!((g.len(), g[0].requests, g[0].failed), (1, 100, 10));
        assert!((g[0].server_seconds_sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn every_label_keeps_at_most_n_values_and_idle_series_free_theirs() {
        let mut s = Signals::new(3);
        for i in 0..10 {
            s.observe(&http(&format!("/r{i}"), 200, i, 1000), SIDES);
        }
        let routes: BTreeSet<String> = s.series().map(|x| x.labels["http.route"].clone()).collect();
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            vec!["*", "/r0", "/r1", "/r2"]
        );
        assert_eq!(s.overflowed, 7);
        assert_eq!(
            s.series()
                .find(|x| x.labels["http.route"] == "*")
                .unwrap()
                .count,
            7
        );
        // Series idle since before t = 1050 µs go, and make room.
        s.observe(&http("/r0", 200, 100, 1000), SIDES);
        s.expire(1050);
        s.observe(&http("/new", 200, 101, 1000), SIDES);
        let routes: BTreeSet<String> = s.series().map(|x| x.labels["http.route"].clone()).collect();
        assert_eq!(routes.into_iter().collect::<Vec<_>>(), vec!["/new", "/r0"]);
    }
}
