//! Conformance on real captures (../shared/corpus/pcap, see its README): DeepFlow's
//! HTTP/1 captures give the requests and statuses DeepFlow's own parser expects, and the
//! container-format edge cases read or fail cleanly.
//!
//! A fresh clone has no ../shared: these tests then say so and pass, unless
//! LOUPE_REQUIRE_CORPUS=1 (set by scripts/test), which makes a missing corpus a failure.

use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("LOUPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    if dir.join("pcap").is_dir() {
        return Some(dir.join("pcap"));
    }
    assert!(
        std::env::var_os("LOUPE_REQUIRE_CORPUS").is_none(),
        "LOUPE_REQUIRE_CORPUS is set but the corpus is not at {}",
        dir.display()
    );
    eprintln!(
        "SKIPPED: the shared corpus is not at {} (set LOUPE_CORPUS)",
        dir.display()
    );
    None
}

/// DeepFlow's expected HTTP/1 messages: requests as (METHOD, path), responses' statuses.
fn expected(result: &str) -> (Vec<(String, String)>, Vec<u16>) {
    let field = |line: &str, name: &str| -> Option<String> {
        let at = line.find(&format!("{name}: "))? + name.len() + 2;
        let rest = &line[at..];
        Some(rest[..rest.find([',', ' ']).unwrap_or(rest.len())].to_string())
    };
    let (mut requests, mut statuses) = (Vec::new(), Vec::new());
    for line in result.lines().filter(|l| l.contains("proto: Http1")) {
        match field(line, "msg_type").as_deref() {
            Some("Request") => {
                let method = field(line, "method")
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let path = line
                    .split("path: \"")
                    .nth(1)
                    .and_then(|p| p.split('"').next())
                    .unwrap_or("")
                    .to_string();
                requests.push((method, path));
            }
            Some("Response") => {
                let status: Option<u16> = line
                    .split("status_code: Some(")
                    .nth(1)
                    .and_then(|s| s.split(')').next())
                    .and_then(|s| s.parse().ok());
                statuses.extend(status);
            }
            _ => {}
        }
    }
    (requests, statuses)
}

#[test]
fn deepflow_http1_captures_give_deepflows_requests_and_statuses() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for name in ["httpv1", "client-ip", "sw8", "istio-tcp-frag"] {
        let base = dir.join("deepflow/http").join(name);
        let want = expected(&std::fs::read_to_string(base.with_extension("result")).unwrap());
        let got = loupe_pcap::analyze(&base.with_extension("pcap")).unwrap();
        assert!(got.read.damaged.is_none(), "{name}: {:?}", got.read);
        let requests: Vec<(String, String)> = got
            .records
            .iter()
            .filter(|s| !s.record.partial)
            .map(|s| (s.record.method.to_string(), s.record.resource.to_string()))
            .collect();
        let statuses: Vec<u16> = got.records.iter().filter_map(|s| s.record.status).collect();
        assert_eq!(requests, want.0, "{name}: requests");
        assert_eq!(statuses, want.1, "{name}: statuses");
        for s in &got.records {
            let r = &s.record;
            assert!(
                r.request_start <= r.request_end
                    && r.request_end <= r.response_start
                    && r.response_start <= r.response_end,
                "{name}: {r:?}"
            );
        }
        compared += want.0.len();
        println!("{name}: {} requests, statuses {:?}", want.0.len(), statuses);
    }
    assert!(compared >= 5, "{compared}");
}

#[test]
fn container_formats_read_or_fail_cleanly() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("pcap-parser-formats");
    let frames = |name: &str| {
        let mut ts = Vec::new();
        let report = loupe_pcap::read_frames(&dir.join(name), |f| {
            ts.push((f.ts, f.data.len(), f.linktype))
        });
        (report, ts)
    };
    // Big- and little-endian pcapng hold the same frames.
    for pair in ["test001", "test016", "test017"] {
        let (be, be_frames) = frames(&format!("{pair}-be.pcapng"));
        let (le, le_frames) = frames(&format!("{pair}-le.pcapng"));
        let (be, le) = (be.unwrap(), le.unwrap());
        assert_eq!(be_frames, le_frames, "{pair}");
        assert_eq!(
            (be.frames, be.damaged.is_none()),
            (le.frames, le.damaged.is_none()),
            "{pair}"
        );
    }
    for name in ["test010-le.pcapng", "ntp.pcap", "modified-format.pcap"] {
        let (report, _) = frames(name);
        let report = report.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.damaged.is_none(), "{name}: {report:?}");
    }
    // A truncated capture reads up to the damage and says so; a non-capture is refused.
    let (cut, cut_frames) = frames("err-buffertoosmall.pcapng");
    match cut {
        Ok(r) => assert!(
            r.damaged.is_some() || r.frames as usize == cut_frames.len(),
            "{r:?}"
        ),
        Err(e) => assert!(e.to_string().contains("err-buffertoosmall"), "{e}"),
    }
    let refused = loupe_pcap::read_frames(&dir.join("err-eof.bin"), |_| {});
    match refused {
        Err(e) => assert!(e.to_string().contains("err-eof.bin"), "{e}"),
        Ok(r) => assert!(r.frames == 0 || r.damaged.is_some(), "{r:?}"),
    }
    // The Wireshark samples: 5 898 frames, every one decoded or accounted as skipped
    // (ARP, ICMPv6); its DNS and its HTTP (SSDP, over UDP multicast) are UDP.
    let all = loupe_pcap::analyze(&dir.join("wireshark_samples-test.pcapng")).unwrap();
    let r = &all.read;
    assert_eq!(r.frames, 5898, "{r:?}");
    assert_eq!(
        r.tcp_segments + r.udp_datagrams + r.skipped,
        r.frames,
        "{r:?}"
    );
    assert!(r.udp_datagrams > 3000 && r.damaged.is_none(), "{r:?}");
    // Its 260 DNS messages: paired exchanges, and the rest accounted for.
    let dns = all
        .records
        .iter()
        .filter(|s| s.record.protocol == "dns")
        .count() as u64;
    let d = all.dns;
    println!("wireshark samples: {dns} DNS exchanges, {d:?}");
    assert_eq!(
        2 * dns + d.orphans + d.unanswered + d.malformed,
        260,
        "{d:?}"
    );
}

/// DeepFlow's DNS results: one JSON object per message, before some trailing text.
fn dns_expected(result: &str) -> Vec<(u64, String, String, Option<u64>, u64)> {
    let mut queries: Vec<(u64, String, String)> = Vec::new();
    let mut exchanges = Vec::new();
    for line in result.lines() {
        let Some(end) = line.rfind('}') else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line[..=end]) else {
            continue;
        };
        let id = v["request_id"].as_u64().unwrap_or(0);
        match v["msg_type"].as_str() {
            Some("Request") => queries.push((
                id,
                v["request_type"].as_str().unwrap_or("").to_string(),
                v["request_resource"].as_str().unwrap_or("").to_string(),
            )),
            Some("Response") => {
                if let Some(i) = queries.iter().position(|q| q.0 == id) {
                    let (id, t, name) = queries.remove(i);
                    exchanges.push((
                        id,
                        t,
                        name,
                        v["response_code"].as_u64(),
                        v["rrt"].as_u64().unwrap_or(0),
                    ));
                }
            }
            _ => {}
        }
    }
    exchanges
}

#[test]
fn deepflow_dns_captures_give_deepflows_queries_codes_and_times() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for name in [
        "dns",
        "a-and-ns",
        "nxdomain",
        "not-handled-qtype",
        "dns-tcp-multi",
    ] {
        let base = dir.join("deepflow/dns").join(name);
        let want = dns_expected(&std::fs::read_to_string(base.with_extension("result")).unwrap());
        let got = loupe_pcap::analyze(&base.with_extension("pcap")).unwrap();
        let mut have: Vec<(String, String, Option<u64>, u64)> = got
            .records
            .iter()
            .filter(|s| s.record.protocol == "dns")
            .map(|s| {
                (
                    s.record.method.to_string(),
                    s.record.resource.to_string(),
                    s.record.status.map(u64::from),
                    s.record.duration_us() as u64,
                )
            })
            .collect();
        let mut expect: Vec<(String, String, Option<u64>, u64)> = want
            .into_iter()
            .map(|(_, t, n, c, rrt)| (t, n, c, rrt))
            .collect();
        have.sort();
        expect.sort();
        assert_eq!(have, expect, "{name}: {:?}", got.dns);
        compared += expect.len();
        println!("{name}: {} exchanges", expect.len());
    }
    assert!(compared >= 8, "{compared}");
}

#[test]
fn deepflow_redis_captures_give_deepflows_commands_and_errors() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for name in ["redis", "redis-error", "redis-debug"] {
        let base = dir.join("deepflow/redis").join(name);
        let result = std::fs::read_to_string(base.with_extension("result")).unwrap();
        let quoted = |line: &str, field: &str| -> String {
            line.split(&format!("{field}: \""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        // (command text, error kind) per request/response pair, in order.
        let (mut want, mut pending) = (Vec::new(), Vec::new());
        for line in result.lines().filter(|l| l.starts_with("RedisInfo")) {
            let request = quoted(line, "request");
            if !request.is_empty() {
                pending.push(request);
            } else if !pending.is_empty() {
                let error = quoted(line, "error");
                let kind = error
                    .trim_start_matches('-')
                    .split_whitespace()
                    .next()
                    .map(str::to_string);
                want.push((pending.remove(0), kind));
            }
        }
        let got = loupe_pcap::analyze(&base.with_extension("pcap")).unwrap();
        let have: Vec<(String, Option<String>)> = got
            .records
            .iter()
            .filter(|s| s.record.protocol == "redis")
            .map(|s| {
                (
                    s.record.resource.to_string(),
                    s.record.error.as_deref().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(have, want, "{name}");
        compared += want.len();
        println!("{name}: {} commands", want.len());
    }
    assert!(compared >= 10, "{compared}");
}

#[test]
fn deepflow_postgresql_captures_give_the_sql_and_the_errors() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("deepflow/postgre");
    let records = |name: &str| {
        loupe_pcap::analyze(&dir.join(name))
            .unwrap()
            .records
            .into_iter()
            .filter(|s| s.record.protocol == "postgresql")
            .map(|s| s.record)
            .collect::<Vec<_>>()
    };
    let simple = records("simple_query.pcap");
    assert_eq!((simple.len(), simple[0].route.as_str()), (1, "DELETE test"));
    let prepared = records("prepare_stat.pcap");
    assert_eq!(
        prepared[0].resource,
        "delete from test where id=$1 returning id"
    );
    let error = records("error.pcap");
    assert_eq!(
        (error.len(), error[0].error.as_deref()),
        (1, Some("42601")),
        "a syntax error's SQLSTATE"
    );
    // Every statement DeepFlow saw parsed is in a record, with its SQL.
    let all = records("pgsql-all.pcap");
    let result = std::fs::read_to_string(dir.join("pgsql-all.result")).unwrap();
    let mut parsed = 0;
    for line in result.lines() {
        let Some(end) = line.rfind('}') else { continue };
        let v: serde_json::Value = serde_json::from_str(&line[..=end]).unwrap();
        if let Some(sql) = v["request_resource"].as_str() {
            parsed += 1;
            assert!(
                all.iter().any(|r| r.resource.trim_end() == sql.trim_end()),
                "{sql}"
            );
        }
    }
    let executes = all.iter().filter(|r| r.method == "EXECUTE").count();
    println!("pgsql-all: {} query cycles ({parsed} with SQL parsed in the capture, {executes} of statements prepared before it)", all.len());
    assert_eq!(parsed, 4);
    assert!(
        all.len() >= 30 && all.iter().all(|r| r.error.is_none()),
        "{}",
        all.len()
    );
}

#[test]
fn deepflow_http2_and_grpc_captures_give_deepflows_paths_and_statuses() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("deepflow/http");
    // Captures whose response is not in the file: a record is an exchange, so those
    // streams are counted as unfinished instead (DeepFlow lists the lone request).
    let unanswered = ["grpc-segmented", "httpv2-stream-id"];
    let mut compared = 0;
    for name in [
        "h2c_ascii",
        "http2-multi",
        "grpc-unary",
        "grpc-server-stream",
        "grpc-service-name",
        "grpc-unknown",
        "grpc-segmented",
        "httpv2-stream-id",
    ] {
        let result = std::fs::read_to_string(dir.join(format!("{name}.result"))).unwrap();
        let got = loupe_pcap::analyze(&dir.join(format!("{name}.pcap"))).unwrap();
        let records: Vec<&loupe_l7::Record> = got
            .records
            .iter()
            .map(|s| &s.record)
            .filter(|r| matches!(r.protocol, "http2" | "grpc"))
            .collect();
        if unanswered.contains(&name) {
            assert!(records.is_empty());
            let open: u64 = got.connections.iter().map(|c| c.h2.unfinished).sum();
            assert!(open >= 1, "{name}: {:?}", got.connections);
            continue;
        }
        let mut statuses = Vec::new();
        for line in result
            .lines()
            .filter(|l| l.contains("proto: Http2") || l.contains("proto: Grpc"))
        {
            let path = line
                .split("path: \"")
                .nth(1)
                .and_then(|p| p.split('"').next())
                .unwrap_or("");
            if line.contains("msg_type: Request") && !path.is_empty() {
                assert!(
                    records.iter().any(|r| r.resource == path),
                    "{name}: {path} not among {records:?}"
                );
                compared += 1;
            }
            if line.contains("msg_type: Response") {
                let grpc = line
                    .split("grpc_status_code: Some(")
                    .nth(1)
                    .and_then(|s| s.split(')').next())
                    .and_then(|s| s.parse::<u16>().ok());
                let http = line
                    .split(" status_code: Some(")
                    .nth(1)
                    .and_then(|s| s.split(')').next())
                    .and_then(|s| s.parse::<u16>().ok());
                statuses.push((grpc, http));
            }
        }
        for (grpc, http) in statuses {
            let found = records.iter().any(|r| match r.protocol {
                "grpc" => grpc.is_none() || r.status == grpc,
                _ => r.status == http,
            });
            assert!(
                found,
                "{name}: status {grpc:?}/{http:?} not among {records:?}"
            );
            compared += 1;
        }
        println!("{name}: {} exchanges", records.len());
    }
    assert!(compared >= 10, "{compared}");
}

#[test]
fn deepflow_mysql_captures_give_deepflows_commands() {
    let Some(dir) = corpus() else { return };
    let dir = dir.join("deepflow/mysql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "result"))
        .collect();
    files.sort();
    let (mut matched, mut requests) = (0, 0);
    for result in files {
        let name = result.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&result).unwrap();
        let want: Vec<String> = text
            .lines()
            .filter(|l| l.contains("\"msg_type\":\"Request\""))
            .map(|l| {
                l.split("\"request_resource\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let got = loupe_pcap::analyze(&result.with_extension("pcap")).unwrap();
        let ours: Vec<&loupe_l7::Record> = got
            .records
            .iter()
            .map(|s| &s.record)
            .filter(|r| r.protocol == "mysql")
            .collect();
        // DeepFlow also lists requests whose answer the capture lacks; ours counts them
        // as unanswered (`mysql-statement`: three prepares cut off by the capture's end).
        let unanswered: u64 = got
            .connections
            .iter()
            .filter(|c| c.protocol == loupe_l7::Protocol::Mysql)
            .map(|c| c.unfollowed.unanswered)
            .sum();
        assert_eq!(
            ours.len() + unanswered as usize,
            want.len(),
            "{name}: {ours:?}"
        );
        if unanswered == 0 {
            for (w, o) in want.iter().zip(&ours) {
                assert!(
                    same_mysql_command(w, o),
                    "{name}: {w:?} vs {:?}",
                    o.resource
                );
            }
        } else {
            // Several connections interleave: each of ours is one of DeepFlow's.
            let mut left: Vec<&String> = want.iter().collect();
            for o in &ours {
                let at = left.iter().position(|w| same_mysql_command(w, o));
                let at = at.unwrap_or_else(|| panic!("{name}: {:?} not in {left:?}", o.resource));
                left.remove(at);
            }
        }
        matched += 1;
        requests += want.len();
    }
    println!("{matched} MySQL captures, {requests} commands as DeepFlow has them");
    assert_eq!(matched, 21, "every DeepFlow MySQL capture");
}

/// Whether our record is the command DeepFlow lists as `want` (its request resource).
fn same_mysql_command(want: &str, ours: &loupe_l7::Record) -> bool {
    if want.starts_with("Login") {
        // DeepFlow names the login `Login username: U db: D`; ours is `LOGIN U`.
        return ours.method == "LOGIN";
    }
    if ours.resource.contains('?') && !ours.method.starts_with("PREPARE") {
        // An execute: DeepFlow shows the bound values, we show the statement's SQL
        // (values are unbounded and may be secrets).
        return true;
    }
    // Ours says `USE db` where DeepFlow gives the database alone.
    let want = want.replace("\\n", "\n");
    let head = want.trim_end().get(..want.len().min(40)).unwrap_or("");
    ours.resource.contains(head)
}

#[test]
fn deepflow_and_go_sniffer_kafka_captures_give_their_apis_topics_and_codes() {
    let Some(dir) = corpus() else { return };
    // go-sniffer's capture (Linux cooked link type): exactly 2 requests and 2 responses.
    let sniffer = loupe_pcap::analyze(&dir.join("go-sniffer/kafka.pcap")).unwrap();
    let got: Vec<(&str, &str)> = sniffer
        .records
        .iter()
        .map(|s| (s.record.method.as_str(), s.record.resource.as_str()))
        .collect();
    assert_eq!(got, vec![("Metadata", ""), ("Produce", "test")]);
    let mut files: Vec<_> = std::fs::read_dir(dir.join("deepflow/kafka"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "result"))
        .collect();
    files.sort();
    let mut exchanges = 0;
    for result in files {
        let name = result.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&result).unwrap();
        let field = |l: &str, f: &str| {
            l.split(&format!("{f}: "))
                .nth(1)
                .map(|r| r.split([',', ' ']).next().unwrap_or("").to_string())
        };
        let mut want = Vec::new();
        let mut requests: Vec<(String, String, String)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("KafkaInfo")) {
            let id = field(line, "correlation_id").unwrap_or_default();
            let topic = line
                .split("topic_name: \"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .unwrap_or("")
                .to_string();
            match field(line, "msg_type").as_deref() {
                Some("Request") => {
                    requests.push((id, field(line, "api_key").unwrap_or_default(), topic))
                }
                Some("Response") => {
                    if let Some(i) = requests.iter().position(|r| r.0 == id) {
                        let (_, api, topic) = requests.remove(i);
                        let status = line
                            .split("status_code: Some(")
                            .nth(1)
                            .and_then(|s| s.split(')').next())
                            .and_then(|s| s.parse::<u16>().ok());
                        want.push((api, topic, status));
                    }
                }
                _ => {}
            }
        }
        let got = loupe_pcap::analyze(&result.with_extension("pcap")).unwrap();
        let ours: Vec<(String, String, Option<u16>)> = got
            .records
            .iter()
            .filter(|s| s.record.protocol == "kafka")
            .map(|s| {
                (
                    s.record.method.to_string(),
                    s.record.resource.to_string(),
                    s.record.status,
                )
            })
            .collect();
        for (api, topic, status) in &want {
            let found = ours.iter().any(|(m, r, s)| {
                m == api && (topic.is_empty() || r == topic) && (status.is_none() || s == status)
            });
            assert!(found, "{name}: {api} {topic} {status:?} not among {ours:?}");
            exchanges += 1;
        }
    }
    println!("{exchanges} Kafka exchanges as DeepFlow has them");
    assert!(exchanges >= 10, "{exchanges}");
}
