//! Golden signals from request records: rate, errors and a latency histogram per
//! service, endpoint and peer, named by the OpenTelemetry semantic conventions (and their
//! Prometheus forms); every label of every metric keeps at most N distinct values (the
//! rest become `*`); idle series expire. Plus the service graph: edges from client to
//! server with rate, errors and latency, in Tempo's names.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};

use hashbrown::{DefaultHashBuilder, HashTable};

use serde::Serialize;

use crate::record::Record;

/// OpenTelemetry's default explicit bucket boundaries for durations, in seconds.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// What label values may take per metric and label name before collapsing to `*`.
pub const DEFAULT_MAX_VALUES: usize = 100;

/// A record's place in the metrics: who served it, who asked (an address, or a name
/// such as `shop/orders` when Kubernetes metadata knows it), and their namespaces when
/// known: graph edges carry them (an edge keeps those of its first record: a side's
/// namespace is taken to follow from its name), and the graph filters by them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sides<'a> {
    pub server: &'a str,
    pub client: &'a str,
    pub server_namespace: Option<&'a str>,
    pub client_namespace: Option<&'a str>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_namespace: Option<String>,
    /// `http`, `dns`, …
    pub connection_type: &'static str,
    pub requests: u64,
    pub failed: u64,
    pub server_seconds_sum: f64,
    pub client_seconds_sum: f64,
}

/// The aggregator. A record's labels are looked up borrowed, by hash, among the label
/// sets seen before; only a new set pays for the cardinality limit, the owned series key
/// and the graph edge. Series and edges come out in a stable (sorted) order.
#[derive(Debug)]
pub struct Signals {
    max_values: usize,
    series: Vec<Series>,
    series_index: BTreeMap<(&'static str, Labels), usize>,
    values: BTreeMap<(&'static str, &'static str), BTreeSet<String>>,
    edges: Vec<Edge>,
    edge_index: BTreeMap<(String, String, &'static str), usize>,
    remembered: HashTable<Remembered>,
    hasher: DefaultHashBuilder,
    /// Label values collapsed to `*`.
    pub overflowed: u64,
}

/// Most labels of any metric.
const MAX_LABELS: usize = 6;
/// Raw label sets remembered: a cache, emptied when full (and at every expiry).
const MAX_REMEMBERED: usize = 65_536;

/// A record's labels before the cardinality limit, borrowed from the record.
struct Described<'a> {
    metric: &'static str,
    prometheus: &'static str,
    labels: [(&'static str, &'a str); MAX_LABELS],
    len: usize,
    /// The first labels are the record's sides (`server.address`, `client.address`),
    /// which a remembered set already holds: they are not hashed or compared twice.
    from_sides: usize,
}

impl<'a> Described<'a> {
    fn new<const N: usize>(
        metric: &'static str,
        prometheus: &'static str,
        list: [(&'static str, &'a str); N],
    ) -> Described<'a> {
        let mut labels = [("", ""); MAX_LABELS];
        labels[..N].copy_from_slice(&list);
        // `describe` lists the sides first: the server, then (HTTP) the client.
        let from_sides = 1 + usize::from(N > 1 && list[1].0 == "client.address");
        Described {
            metric,
            prometheus,
            labels,
            len: N,
            from_sides,
        }
    }

    fn labels(&self) -> &[(&'static str, &'a str)] {
        &self.labels[..self.len]
    }

    /// The values not taken from the sides.
    fn own_values(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.labels[self.from_sides..self.len]
            .iter()
            .map(|(_, v)| *v)
    }
}

/// A raw label set seen before, and where it counts.
#[derive(Debug)]
struct Remembered {
    protocol: &'static str,
    client: Box<str>,
    server: Box<str>,
    values: Vec<Box<str>>,
    series: usize,
    edge: usize,
    /// How many of its labels collapse to `*` (counted again at every observation).
    overflows: u64,
}

/// The hash of a raw label set: the protocol (which names the metric), the sides, and
/// the other values.
fn raw_hash<'v>(
    hasher: &DefaultHashBuilder,
    protocol: &str,
    sides: Sides<'_>,
    values: impl Iterator<Item = &'v str>,
) -> u64 {
    let mut h = hasher.build_hasher();
    // No length prefixes: parts that run together (`ab`+`c`, `a`+`bc`) only share a
    // hash, and a lookup compares the parts themselves.
    let mut add = |part: &str| h.write(part.as_bytes());
    add(protocol);
    add(sides.client);
    add(sides.server);
    values.for_each(add);
    h.finish()
}

impl Remembered {
    fn is(&self, d: &Described<'_>, protocol: &str, sides: Sides<'_>) -> bool {
        self.protocol == protocol
            && *self.client == *sides.client
            && *self.server == *sides.server
            && self.values.len() == d.len - d.from_sides
            && self
                .values
                .iter()
                .zip(d.own_values())
                .all(|(a, b)| **a == *b)
    }

    fn hash(&self, hasher: &DefaultHashBuilder) -> u64 {
        let sides = Sides {
            client: &self.client,
            server: &self.server,
            ..Sides::default()
        };
        let values = self.values.iter().map(|v| &**v);
        raw_hash(hasher, self.protocol, sides, values)
    }
}

impl Signals {
    pub fn new(max_values: usize) -> Signals {
        Signals {
            max_values: max_values.max(1),
            series: Vec::new(),
            series_index: BTreeMap::new(),
            values: BTreeMap::new(),
            edges: Vec::new(),
            edge_index: BTreeMap::new(),
            remembered: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            overflowed: 0,
        }
    }

    /// A label value, or `*` (and `true`) when the label already has its maximum of others.
    fn admit(&mut self, metric: &'static str, label: &'static str, value: &str) -> (String, bool) {
        let set = self.values.entry((metric, label)).or_default();
        if set.contains(value) {
            return (value.to_string(), false);
        }
        if set.len() < self.max_values {
            set.insert(value.to_string());
            return (value.to_string(), false);
        }
        ("*".to_string(), true)
    }

    /// Counts one record.
    pub fn observe(&mut self, record: &Record, sides: Sides<'_>) {
        let mut status = itoa::Buffer::new();
        let d = describe(record, sides, &mut status);
        let hash = raw_hash(&self.hasher, record.protocol, sides, d.own_values());
        let seen = self
            .remembered
            .find(hash, |r| r.is(&d, record.protocol, sides))
            .map(|r| (r.series, r.edge, r.overflows));
        let (series, edge, overflows) = seen.unwrap_or_else(|| self.place(&d, record, sides, hash));
        self.overflowed += overflows;

        let seconds = record.duration_us().max(0) as f64 / 1e6;
        let error = record.error.is_some();
        let s = &mut self.series[series];
        s.count += 1;
        s.errors += u64::from(error);
        s.sum_seconds += seconds;
        s.last_seen = s.last_seen.max(record.response_end);
        let first = BUCKETS.partition_point(|le| *le < seconds);
        for b in &mut s.buckets[first..] {
            *b += 1;
        }
        let e = &mut self.edges[edge];
        e.requests += 1;
        e.failed += u64::from(error);
        e.server_seconds_sum += record.server_us().max(0) as f64 / 1e6;
        e.client_seconds_sum += seconds;
    }

    /// A label set not seen before: its values through the cardinality limit, its series
    /// and edge found or made, and the set remembered. (series, edge, overflows).
    fn place(
        &mut self,
        d: &Described<'_>,
        record: &Record,
        sides: Sides<'_>,
        hash: u64,
    ) -> (usize, usize, u64) {
        let mut overflows = 0;
        let mut labels: Labels = Vec::with_capacity(d.len);
        for (name, value) in d.labels() {
            let (v, collapsed) = self.admit(d.metric, name, value);
            overflows += u64::from(collapsed);
            labels.push((name, v));
        }
        let key = (d.metric, labels);
        let series = match self.series_index.get(&key) {
            Some(&i) => i,
            None => {
                self.series.push(Series {
                    metric: d.metric,
                    prometheus: d.prometheus.to_string(),
                    labels: key.1.iter().cloned().collect(),
                    count: 0,
                    errors: 0,
                    sum_seconds: 0.0,
                    buckets: vec![0; BUCKETS.len()],
                    last_seen: record.response_end,
                });
                self.series_index.insert(key, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        let kind = connection_type(record.protocol);
        let (client, c) = self.admit("traces_service_graph", "client", sides.client);
        let (server, s) = self.admit("traces_service_graph", "server", sides.server);
        overflows += u64::from(c) + u64::from(s);
        let key = (client, server, kind);
        let edge = match self.edge_index.get(&key) {
            Some(&i) => i,
            None => {
                self.edges.push(Edge {
                    client: key.0.clone(),
                    server: key.1.clone(),
                    client_namespace: sides.client_namespace.map(str::to_string),
                    server_namespace: sides.server_namespace.map(str::to_string),
                    connection_type: kind,
                    requests: 0,
                    failed: 0,
                    server_seconds_sum: 0.0,
                    client_seconds_sum: 0.0,
                });
                self.edge_index.insert(key, self.edges.len() - 1);
                self.edges.len() - 1
            }
        };
        if self.remembered.len() >= MAX_REMEMBERED {
            self.remembered.clear();
        }
        let entry = Remembered {
            protocol: record.protocol,
            client: sides.client.into(),
            server: sides.server.into(),
            values: d.own_values().map(Box::from).collect(),
            series,
            edge,
            overflows,
        };
        let hasher = &self.hasher;
        self.remembered
            .insert_unique(hash, entry, |r| r.hash(hasher));
        (series, edge, overflows)
    }

    /// Drops series not seen since `before` (µs), and frees their label values.
    pub fn expire(&mut self, before: i64) {
        self.remembered.clear();
        let old = std::mem::take(&mut self.series);
        let mut kept = Vec::new();
        for i in self.series_index.values_mut() {
            if old[*i].last_seen >= before {
                kept.push(old[*i].clone());
                *i = kept.len() - 1;
            } else {
                *i = usize::MAX;
            }
        }
        self.series_index.retain(|_, i| *i != usize::MAX);
        self.series = kept;
        let mut live: BTreeMap<(&'static str, &'static str), BTreeSet<String>> = BTreeMap::new();
        for (metric, labels) in self.series_index.keys() {
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

    /// Every series, in order of metric and labels.
    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.series_index.values().map(|&i| &self.series[i])
    }

    /// Edges, optionally of one connection type only and touching one namespace only
    /// (either side in it), in order of client and server.
    pub fn graph(&self, connection_type: Option<&str>, namespace: Option<&str>) -> Vec<&Edge> {
        let touches = |e: &Edge, n: &str| {
            e.client_namespace.as_deref() == Some(n) || e.server_namespace.as_deref() == Some(n)
        };
        self.edge_index
            .values()
            .map(|&i| &self.edges[i])
            .filter(|e| connection_type.is_none_or(|t| t == e.connection_type))
            .filter(|e| namespace.is_none_or(|n| touches(e, n)))
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
fn describe<'a>(r: &'a Record, sides: Sides<'a>, status: &'a mut itoa::Buffer) -> Described<'a> {
    let status = match r.status {
        Some(s) => status.format(s),
        None => "",
    };
    let error = r.error.as_deref().unwrap_or("");
    match r.protocol {
        "dns" => Described::new(
            "dns.lookup.duration",
            "dns_lookup_duration_seconds",
            [
                ("server.address", sides.server),
                ("dns.question.type", &r.method),
                ("dns.question.name", &r.route),
                ("error.type", error),
            ],
        ),
        "grpc" => {
            let mut parts = r.resource.trim_start_matches('/').splitn(2, '/');
            let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            Described::new(
                "rpc.server.duration",
                "rpc_server_duration_seconds",
                [
                    ("server.address", sides.server),
                    ("rpc.system", "grpc"),
                    ("rpc.service", service),
                    ("rpc.method", method),
                    ("rpc.grpc.status_code", status),
                    ("error.type", error),
                ],
            )
        }
        "kafka" => Described::new(
            "messaging.client.operation.duration",
            "messaging_client_operation_duration_seconds",
            [
                ("server.address", sides.server),
                ("messaging.system", "kafka"),
                ("messaging.operation.name", &r.method),
                ("messaging.destination.name", &r.route),
                ("error.type", error),
            ],
        ),
        "redis" => Described::new(
            "db.client.operation.duration",
            "db_client_operation_duration_seconds",
            [
                ("server.address", sides.server),
                ("db.system.name", "redis"),
                ("db.operation.name", &r.method),
                ("error.type", error),
            ],
        ),
        "postgresql" | "mysql" => Described::new(
            "db.client.operation.duration",
            "db_client_operation_duration_seconds",
            [
                ("server.address", sides.server),
                ("db.system.name", r.protocol),
                ("db.operation.name", &r.method),
                ("db.query.summary", &r.route),
                ("error.type", error),
            ],
        ),
        _ => Described::new(
            "http.server.request.duration",
            "http_server_request_duration_seconds",
            [
                ("server.address", sides.server),
                ("client.address", sides.client),
                (
                    "http.request.method",
                    if r.partial { "_OTHER" } else { &r.method },
                ),
                ("http.route", &r.route),
                ("http.response.status_code", status),
                ("error.type", error),
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
        server_namespace: None,
        client_namespace: None,
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
        let g = s.graph(Some("http"), None);
        assert_eq!((g.len(), g[0].requests, g[0].failed), (1, 100, 10));
        assert!((g[0].server_seconds_sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn label_sets_that_run_together_stay_apart() {
        // The lookup hashes the values without lengths: "GET" + "/a" and "GE" + "T/a"
        // share the bytes, and must still be two series.
        let mut s = Signals::new(100);
        let mut other = http("T/a", 200, 0, 1_000);
        other.method = "GE".into();
        for _ in 0..3 {
            s.observe(&http("/a", 200, 0, 1_000), SIDES);
            s.observe(&other, SIDES);
        }
        let counts: Vec<(&str, &str, u64)> = s
            .series()
            .map(|x| {
                let label = |k: &str| x.labels[k].as_str();
                (label("http.request.method"), label("http.route"), x.count)
            })
            .collect();
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(counts.contains(&("GET", "/a", 3)) && counts.contains(&("GE", "T/a", 3)));
    }

    #[test]
    fn the_graph_filters_by_connection_type_and_namespace() {
        let mut s = Signals::new(100);
        let shop = Sides {
            server: "shop/orders",
            client: "shop/web",
            server_namespace: Some("shop"),
            client_namespace: Some("shop"),
        };
        let billing = Sides {
            server: "billing/ledger",
            client: "shop/orders",
            server_namespace: Some("billing"),
            client_namespace: Some("shop"),
        };
        s.observe(&http("/a", 200, 0, 10), shop);
        s.observe(&http("/b", 200, 1, 10), billing);
        let names = |edges: Vec<&Edge>| -> Vec<String> {
            edges
                .iter()
                .map(|e| format!("{}->{}", e.client, e.server))
                .collect()
        };
        assert_eq!(
            names(s.graph(None, Some("billing"))),
            vec!["shop/orders->billing/ledger"]
        );
        assert_eq!(s.graph(None, Some("shop")).len(), 2);
        assert_eq!(s.graph(Some("dns"), Some("shop")).len(), 0);
        assert_eq!(s.graph(None, Some("other")).len(), 0);
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
        // A value seen again collapses again: the count is per observation.
        s.observe(&http("/r9", 200, 10, 1000), SIDES);
        assert_eq!(s.overflowed, 8);
        assert_eq!(
            s.series()
                .find(|x| x.labels["http.route"] == "*")
                .unwrap()
                .count,
            8
        );
        // Series idle since before t = 1050 µs go, and make room.
        s.observe(&http("/r0", 200, 100, 1000), SIDES);
        s.expire(1050);
        s.observe(&http("/new", 200, 101, 1000), SIDES);
        let routes: BTreeSet<String> = s.series().map(|x| x.labels["http.route"].clone()).collect();
        assert_eq!(routes.into_iter().collect::<Vec<_>>(), vec!["/new", "/r0"]);
    }
}
