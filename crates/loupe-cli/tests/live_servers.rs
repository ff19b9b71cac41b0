//! Fixtures the tests record themselves from real servers on 127.0.0.1: nginx (HTTP/1
//! and HTTP/2), redis-server, PostgreSQL and MariaDB from Debian's packages, each on a
//! free port with its data in a temporary directory. tcpdump captures the loopback
//! traffic while the server's own benchmark client (ab, h2load, redis-benchmark,
//! pgbench) and scripted clients run; then `loupe pcap` reads the capture as a user would.
//! The records per method, command and status must equal what the clients say they did,
//! and what the server itself counted (its access log, `INFO commandstats`,
//! `SHOW GLOBAL STATUS`), read over a channel the capture does not see.
//!
//! Needs root (tcpdump) and the packages: SKIPPED without them, unless
//! LOUPE_REQUIRE_LIVE_SERVERS is set (scripts/test installs them and sets it).

mod live;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use live::{add, analyze, count, have, number_after, run, tool, Daemon};
use serde_json::Value;

fn key(r: &Value, fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| match &r[*f] {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn nginx_config(dir: &Path, h1: u16, h2: u16, upstream: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{}}
http {{
  log_format counts '$server_protocol $request_method $status';
  access_log {d}/access.log counts;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 16m;
  # Compressed answers of unknown length go out chunked.
  gzip on;
  gzip_min_length 0;
  gzip_types text/plain;
  server {{
    listen 127.0.0.1:{h1};
    listen 127.0.0.1:{h2} http2;
    root {d}/www;
    location /api/ {{ return 200 "ok\n"; }}
    location /fail {{ return 503; }}
    # Proxied: nginx reads the whole body first, so it answers `Expect` with 100.
    location /api/upload {{ proxy_pass http://127.0.0.1:{upstream}/sink; }}
  }}
  server {{
    listen 127.0.0.1:{upstream};
    access_log off;
    location /sink {{ return 201 "stored\n"; }}
  }}
}}
"#
    )
}

#[test]
fn nginx_http1_and_http2_counts_equal_the_clients_and_the_access_log() {
    if !have(&["nginx", "ab", "h2load", "curl", "tcpdump"]) {
        return;
    }
    let _one = live::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("www")).unwrap();
    std::fs::write(d.join("www/index.html"), "hello\n").unwrap();
    let text: String = (0..2000)
        .map(|i| format!("line {i} of a long text\n"))
        .collect();
    std::fs::write(d.join("www/big.txt"), text).unwrap();
    std::fs::write(d.join("post.txt"), "x=1").unwrap();
    std::fs::write(d.join("upload.bin"), vec![b'u'; 2 << 20]).unwrap();
    let (h1, h2, upstream) = (live::free_port(), live::free_port(), live::free_port());
    std::fs::write(d.join("nginx.conf"), nginx_config(d, h1, h2, upstream)).unwrap();
    let _nginx = Daemon::start(
        tool("nginx").arg("-c").arg(d.join("nginx.conf")),
        &d.join("nginx.out"),
    );
    live::wait_for_port(h1, "nginx");
    live::wait_for_port(h2, "nginx");
    let base = format!("http://127.0.0.1:{h1}");

    let (file, expected) = live::recorded(d, &[h1, h2], || {
        // The log counts this attempt only (nginx appends to the emptied file).
        std::fs::write(d.join("access.log"), "").unwrap();
        let mut expected = BTreeMap::new();
        // ab: keep-alive GETs, POSTs to a static file (nginx answers 405), HEADs.
        let ab = |args: &[&str]| {
            let out = run(tool("ab").arg("-q").args(args));
            assert_eq!(number_after(&out, "Failed requests:"), Some(0), "{out}");
            let complete = number_after(&out, "Complete requests:").expect("ab's count");
            let non_2xx = number_after(&out, "Non-2xx responses:").unwrap_or(0);
            (complete, non_2xx)
        };
        let index = format!("{base}/index.html");
        let (n, bad) = ab(&["-n", "1000", "-c", "4", "-k", &index]);
        assert_eq!((n, bad), (1000, 0));
        add(&mut expected, "http1 GET 200", n);
        let post = d.join("post.txt");
        let (n, bad) = ab(&[
            "-n",
            "200",
            "-c",
            "2",
            "-T",
            "text/plain",
            "-p",
            post.to_str().unwrap(),
            &index,
        ]);
        assert_eq!((n, bad), (200, 200), "a POST to a static file is refused");
        add(&mut expected, "http1 POST 405", n);
        let (n, bad) = ab(&["-n", "100", "-c", "1", "-i", &index]);
        assert_eq!((n, bad), (100, 0));
        add(&mut expected, "http1 HEAD 200", n);

        // curl, one connection: chunked gzip, errors, methods, a body after 100-continue.
        let mut curl = tool("curl");
        curl.args(["-s", "--compressed", "-w", "%{method} %{http_code}\\n"]);
        let targets: [(&str, &str); 8] = [
            ("GET", "/big.txt"),
            ("GET", "/missing"),
            ("GET", "/fail"),
            ("PUT", "/api/items/1"),
            ("DELETE", "/api/items/1"),
            ("OPTIONS", "/api/items"),
            ("GET", "/api/items?page=2"),
            ("HEAD", "/index.html"),
        ];
        for (i, (method, path)) in targets.iter().enumerate() {
            if i > 0 {
                curl.arg("--next")
                    .args(["-s", "--compressed", "-w", "%{method} %{http_code}\\n"]);
            }
            match *method {
                "HEAD" => curl.arg("-I"),
                m => curl.args(["-X", m]),
            };
            curl.args(["-o", "/dev/null", &format!("{base}{path}")]);
        }
        curl.arg("--next")
            .args(["-s", "-w", "%{method} %{http_code}\\n", "-o", "/dev/null"])
            .args(["-H", "Expect: 100-continue", "--data-binary"])
            .arg(format!("@{}", d.join("upload.bin").display()))
            .arg(format!("{base}/api/upload"));
        let said = run(&mut curl);
        assert_eq!(said.lines().count(), targets.len() + 1, "{said}");
        for line in said.lines() {
            add(&mut expected, &format!("http1 {line}"), 1);
        }

        // h2load: HTTP/2 over cleartext, 10 streams at a time on each of 2 connections.
        let out = run(tool("h2load")
            .args(["-n", "600", "-c", "2", "-m", "10"])
            .arg(format!("http://127.0.0.1:{h2}/index.html")));
        assert_eq!(number_after(&out, "requests:"), Some(600), "{out}");
        let ok = out
            .lines()
            .find_map(|l| l.strip_prefix("status codes: "))
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .expect("h2load's status counts");
        assert_eq!(ok, 600, "{out}");
        add(&mut expected, "http2 GET 200", ok);
        expected
    });

    let report = analyze(&file);
    let seen = count(&report, |r| key(r, &["protocol", "method", "status"]));
    assert_eq!(
        seen, expected,
        "the records against the clients' own counts"
    );

    // nginx's own log says the same (HTTP/1.0 from ab, 1.1 from curl, 2.0 from h2load).
    let log = std::fs::read_to_string(d.join("access.log")).unwrap();
    let mut logged = BTreeMap::new();
    for line in log.lines() {
        let mut f = line.split(' ');
        let (proto, method, status) = (f.next(), f.next(), f.next());
        let proto = if proto == Some("HTTP/2.0") {
            "http2"
        } else {
            "http1"
        };
        add(
            &mut logged,
            &format!(
                "{proto} {} {}",
                method.unwrap_or("-"),
                status.unwrap_or("-")
            ),
            1,
        );
    }
    assert_eq!(seen, logged, "the records against nginx's access log");

    // Server time is inside the request's duration; sizes are counted.
    for r in report["records"].as_array().unwrap() {
        let at = |f: &str| r[f].as_i64().unwrap();
        assert!(at("request_start") <= at("request_end"), "{r}");
        assert!(at("request_end") <= at("response_start"), "{r}");
        assert!(at("response_start") <= at("response_end"), "{r}");
        assert!(r["response_bytes"].as_u64().unwrap() > 0, "{r}");
    }
    let upload = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "/api/upload")
        .expect("the upload");
    assert!(
        upload["request_bytes"].as_u64().unwrap() > 2 << 20,
        "{upload}"
    );
    // One series per route and status class, and the graph has both servers.
    let graph = report["graph"].as_array().unwrap();
    assert_eq!(graph.len(), 2, "{graph:?}");
    let requests: u64 = graph.iter().map(|e| e["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, expected.values().sum::<u64>());
}

/// `INFO commandstats` and `errorstats`, read over the unix socket (not captured):
/// calls per command (subcommands folded into theirs), errors per prefix.
fn redis_stats(socket: &Path) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let out =
        run(tool("redis-cli")
            .arg("-s")
            .arg(socket)
            .args(["INFO", "commandstats", "errorstats"]));
    let (mut calls, mut errors) = (BTreeMap::new(), BTreeMap::new());
    for line in out.lines() {
        let field = |rest: &str, name: &str| {
            rest.split(',')
                .find_map(|kv| kv.strip_prefix(name)?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        {
            let command = name.split('|').next().unwrap_or(name).to_ascii_uppercase();
            // A refused command (wrong arity) is still a request with an error answer.
            let n = field(rest, "calls=") + field(rest, "rejected_calls=");
            add(&mut calls, &command, n);
        }
        if let Some((name, rest)) = line
            .strip_prefix("errorstat_")
            .and_then(|l| l.split_once(':'))
        {
            add(&mut errors, name, field(rest, "count="));
        }
    }
    (calls, errors)
}

#[test]
fn redis_counts_equal_redis_benchmark_and_commandstats() {
    if !have(&["redis-server", "redis-cli", "redis-benchmark", "tcpdump"]) {
        return;
    }
    let _one = live::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = live::free_port();
    let socket = d.join("redis.sock");
    let _redis = Daemon::start(
        tool("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(d),
        &d.join("redis.log"),
    );
    live::wait_for_port(port, "redis-server");
    let port_s = port.to_string();

    let (file, expected) = live::recorded(d, &[port], || {
        run(tool("redis-cli")
            .arg("-s")
            .arg(&socket)
            .args(["CONFIG", "RESETSTAT"]));
        let mut expected = BTreeMap::new();
        // redis-benchmark, pipelined 8 deep on 4 connections: every test sends -n commands.
        let n = 1000;
        let out = run(tool("redis-benchmark")
            .args([
                "-p",
                &port_s,
                "-n",
                &n.to_string(),
                "-c",
                "4",
                "-P",
                "8",
                "--csv",
            ])
            .args([
                "-t",
                "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,lrange_100,mset",
            ]));
        let tests: Vec<String> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next())
            .map(|t| t.trim_matches('"').to_string())
            .collect();
        assert_eq!(tests.len(), 13, "{out}");
        for t in &tests {
            // "LPUSH (needed to benchmark LRANGE)", "LRANGE_100 (first 100 elements)", …
            let command = t.split([' ', '_']).next().unwrap_or(t);
            add(&mut expected, &format!("{command} -"), n);
        }
        // A scripted connection (redis-cli --pipe counts its replies and errors): errors,
        // a transaction, nil answers. --pipe ends with an ECHO to know the last reply.
        let script = [
            "SET k v",
            "LPUSH k x",
            "GET nokey",
            "MULTI",
            "INCR c",
            "INCR c",
            "EXEC",
            "HGETALL nohash",
            "SUBSCRIBE",
            "PING",
            "DEL k",
        ];
        let input: String = script.iter().map(|c| format!("{c}\r\n")).collect();
        let (said, _) = live::run_with_input(
            tool("redis-cli").args(["-p", &port_s, "--pipe"]),
            input.as_bytes(),
        );
        assert_eq!(number_after(&said, "errors:"), Some(2), "{said}");
        let errors = [("LPUSH", "WRONGTYPE"), ("SUBSCRIBE", "ERR")];
        for c in &script {
            let command = c.split(' ').next().unwrap_or(c);
            let error = errors
                .iter()
                .find(|(e, _)| *e == command)
                .map_or("-", |e| e.1);
            add(&mut expected, &format!("{command} {error}"), 1);
        }
        add(&mut expected, "ECHO -", 1);
        // RESP3: HELLO 3, then map answers.
        for args in [
            &["HSET", "h", "a", "1", "b", "2"][..],
            &["HGETALL", "h"][..],
        ] {
            run(tool("redis-cli").args(["-3", "-p", &port_s]).args(args));
            add(&mut expected, "HELLO -", 1);
            add(&mut expected, &format!("{} -", args[0]), 1);
        }
        expected
    });
    let (mut calls, errorstats) = redis_stats(&socket);
    // CONFIG RESETSTAT counts itself, over the socket.
    if let Some(n) = calls.get_mut("CONFIG") {
        *n -= 1;
    }

    let report = analyze(&file);
    let seen = count(&report, |r| key(r, &["method", "error"]));
    for (k, n) in &expected {
        assert_eq!(
            seen.get(k),
            Some(n),
            "{k}: the client's count; seen {seen:?}"
        );
    }
    // Every command the server ran was seen, and nothing else (redis-benchmark also
    // reads two CONFIG values first).
    let mut by_command = BTreeMap::new();
    let mut by_error = BTreeMap::new();
    for (k, n) in &seen {
        let (command, error) = k.split_once(' ').unwrap();
        add(&mut by_command, command, *n);
        if error != "-" {
            add(&mut by_error, error, *n);
        }
    }
    assert_eq!(by_command, calls, "the records against INFO commandstats");
    assert_eq!(by_error, errorstats, "the records against INFO errorstats");
}

/// The uid of a system user (PostgreSQL refuses to run as root).
fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn postgresql_counts_equal_pgbench_in_every_query_mode() {
    if !have(&[
        "initdb", "postgres", "pgbench", "psql", "runuser", "tcpdump",
    ]) {
        return;
    }
    let uid = uid_of("postgres");
    let (true, Some(uid)) = (live::available(uid.is_some(), "no postgres user"), uid) else {
        return;
    };
    let _one = live::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::chown(d, Some(uid), None).unwrap();
    let data = d.join("data");
    run(tool("runuser")
        .args(["-u", "postgres", "--"])
        .arg(live::find("initdb").unwrap())
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]));
    let port = live::free_port();
    let port_s = port.to_string();
    let _pg = Daemon::start(
        tool("runuser")
            .args(["-u", "postgres", "--"])
            .arg(live::find("postgres").unwrap())
            .arg("-D")
            .arg(&data)
            .args(["-p", &port_s, "-k"])
            .arg(d)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
        &d.join("postgres.log"),
    );
    live::wait_for_port(port, "postgres");
    // The tables, over the unix socket (not captured).
    let socket = d.to_str().unwrap();
    let local = ["-h", socket, "-p", &port_s, "-U", "postgres"];
    let mut init = tool("pgbench");
    init.args(["-i", "-q", "-s", "1"])
        .args(local)
        .arg("postgres");
    run(&mut init);
    let tcp = ["-h", "127.0.0.1", "-p", &port_s, "-U", "postgres"];

    let clients = 2;
    let (file, expected) = live::recorded(d, &[port], || {
        let mut expected = BTreeMap::new();
        // pgbench's TPC-B-like transaction, 2 clients, in each query mode: simple (Query),
        // extended (unnamed Parse/Bind/Execute), prepared (named statements, Bind/Execute).
        let transaction = [
            "BEGIN",
            "UPDATE pgbench_accounts",
            "SELECT pgbench_accounts",
            "UPDATE pgbench_tellers",
            "UPDATE pgbench_branches",
            "INSERT pgbench_history",
            "END",
        ];
        for mode in ["simple", "extended", "prepared"] {
            let out = run(tool("pgbench")
                .args(["-n", "-c", &clients.to_string(), "-t", "100", "-M", mode])
                .args(tcp)
                .arg("postgres"));
            let done = out
                .lines()
                .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
                .and_then(|s| s.split('/').next()?.parse::<u64>().ok())
                .expect("pgbench's count");
            assert_eq!(done, 200, "{out}");
            for route in transaction {
                add(&mut expected, &format!("{route} -"), done);
                if mode == "prepared" {
                    // Each client prepares each statement once.
                    add(&mut expected, &format!("PREPARE {route} -"), clients);
                }
            }
            // pgbench's own look at the tables first, on its main connection.
            add(&mut expected, "SELECT pgbench_branches -", 1);
            add(&mut expected, "SELECT pg_catalog.pg_class -", 1);
        }
        // psql: statements that fail with their SQLSTATE, and the others.
        let script = [
            ("SELECT 1/0;", "SELECT 22012"),
            ("SELECT * FROM missing_table;", "SELECT missing_table 42P01"),
            (
                "SELECT count(*) FROM pgbench_accounts;",
                "SELECT pgbench_accounts -",
            ),
            ("CREATE TEMP TABLE t(a int);", "CREATE -"),
            ("INSERT INTO t VALUES (1), (2);", "INSERT t -"),
            ("INSERT INTO t VALUES ('x');", "INSERT t 22P02"),
            ("UPDATE t SET a = 3;", "UPDATE t -"),
            ("DELETE FROM t;", "DELETE t -"),
        ];
        let input: String = script.iter().map(|(sql, _)| format!("{sql}\n")).collect();
        let (_, errors) = live::run_with_input(
            tool("psql").args(["-q"]).args(tcp).arg("postgres"),
            input.as_bytes(),
        );
        assert_eq!(errors.matches("ERROR:").count(), 3, "{errors}");
        for (_, k) in script {
            add(&mut expected, k, 1);
        }
        expected
    });

    let report = analyze(&file);
    let seen = count(&report, |r| key(r, &["route", "error"]));
    assert_eq!(
        seen, expected,
        "the records against the clients' own counts"
    );
    // Prepared statements were run by name: their records carry the SQL.
    let named = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["resource"]
                .as_str()
                .unwrap_or("")
                .contains("pgbench_tellers")
        })
        .count() as u64;
    assert_eq!(named, 600 + clients, "{named}");
}

/// `SHOW GLOBAL STATUS LIKE 'Com\_%'` over the unix socket (not captured).
fn mariadb_commands(client: &mut Command) -> BTreeMap<String, u64> {
    let out = run(client.args(["-N", "-B", "-e", "SHOW GLOBAL STATUS LIKE 'Com\\_%'"]));
    out.lines()
        .filter_map(|l| {
            let (name, n) = l.split_once('\t')?;
            Some((name.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn mariadb_counts_equal_the_clients_and_the_server_status() {
    if !have(&[
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
        "perl",
        "tcpdump",
    ]) {
        return;
    }
    let dbd = Command::new("perl")
        .args(["-MDBD::MariaDB", "-e", "1"])
        .status();
    let dbd = dbd.is_ok_and(|s| s.success());
    if !live::available(dbd, "DBD::MariaDB (libdbd-mariadb-perl) is not installed") {
        return;
    }
    let _one = live::one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    run(tool("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]));
    let port = live::free_port();
    let socket = d.join("mariadb.sock");
    let _db = Daemon::start(
        tool("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-grant-tables",
            ])
            .args([
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--skip-name-resolve",
            ]),
        &d.join("mariadb.log"),
    );
    live::wait_for_port(port, "mariadbd");
    let local = || {
        let mut c = tool("mariadb");
        c.arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["-u", "root"]);
        c
    };
    run(local().args(["-e", "CREATE DATABASE shop; CREATE TABLE shop.items(id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), qty INT)"]));
    let (file, (expected, before)) = live::recorded(d, &[port], || {
        let before = mariadb_commands(&mut local());
        let mut expected = BTreeMap::new();
        // The command-line client runs a script twice (text protocol), once compressed;
        // --force goes on after the failing statements.
        let mut script = vec![("USE shop;".to_string(), "USE -")];
        for i in 0..50 {
            script.push((
                format!("INSERT INTO items(name, qty) VALUES ('item{i}', {i});"),
                "INSERT items -",
            ));
        }
        for i in 0..30 {
            script.push((
                format!("SELECT * FROM items WHERE id = {i};"),
                "SELECT items -",
            ));
        }
        for i in 0..10 {
            script.push((
                format!("UPDATE items SET qty = qty + 1 WHERE id = {i};"),
                "UPDATE items -",
            ));
        }
        script.push((
            "SELECT * FROM missing_table;".into(),
            "SELECT missing_table 1146",
        ));
        script.push((
            "INSERT INTO items(id, name) VALUES (1, 'dup');".into(),
            "INSERT items 1062",
        ));
        script.push(("SELEC broken;".into(), "SELEC 1064"));
        script.push(("DELETE FROM items WHERE id > 45;".into(), "DELETE items -"));
        let input: String = script.iter().map(|(sql, _)| format!("{sql}\n")).collect();
        for compress in [false, true] {
            let mut client = tool("mariadb");
            client
                .arg("--no-defaults")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port.to_string(),
                    "--protocol=tcp",
                    "-u",
                    "root",
                ])
                .args(["--force", "shop"]);
            if compress {
                client.arg("--compress");
            }
            let (_, errors) = live::run_with_input(&mut client, input.as_bytes());
            assert_eq!(errors.matches("ERROR ").count(), 3, "{errors}");
            for (_, k) in &script {
                add(&mut expected, k, 1);
            }
            // The client logs in, then asks which database it is in.
            add(&mut expected, "LOGIN -", 1);
            add(&mut expected, "SELECT -", 1);
        }
        // Server-side prepared statements (binary protocol) through DBD::MariaDB.
        let perl = format!(
            r#"use DBI;
my $dbh = DBI->connect("DBI:MariaDB:database=shop;host=127.0.0.1;port={port};mariadb_server_prepare=1", "root", "", {{RaiseError => 0, PrintError => 0}}) or die $DBI::errstr;
my $ins = $dbh->prepare("INSERT INTO items(name, qty) VALUES (?, ?)");
$ins->execute("p$_", $_) or die $ins->errstr for 1..40;
my $sel = $dbh->prepare("SELECT name, qty FROM items WHERE id = ?");
for (1..25) {{ $sel->execute($_) or die; while (my @r = $sel->fetchrow_array) {{}} }}
my $bad = $dbh->prepare("INSERT INTO items(id, name) VALUES (?, ?)");
my $failed = 0;
$bad->execute(1, "dup") or $failed++ for 1..3;
die "expected 3 failures" unless $failed == 3;
$dbh->disconnect;
"#
        );
        run(Command::new("perl").args(["-e", &perl]));
        add(&mut expected, "LOGIN -", 1);
        add(&mut expected, "PREPARE INSERT items -", 2);
        add(&mut expected, "PREPARE SELECT items -", 1);
        add(&mut expected, "INSERT items -", 40);
        add(&mut expected, "INSERT items 1062", 3);
        add(&mut expected, "SELECT items -", 25);
        (expected, before)
    });
    let after = mariadb_commands(&mut local());

    let report = analyze(&file);
    let seen = count(&report, |r| key(r, &["route", "error"]));
    for (k, n) in &expected {
        assert_eq!(
            seen.get(k),
            Some(n),
            "{k}: the client's count; seen {seen:?}"
        );
    }
    // The server's counters, per statement kind (prepared executions count as their
    // statement too). The driver's own SETs and statement resets are in them as well.
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let mut by_method: BTreeMap<String, u64> = BTreeMap::new();
    for r in report["records"].as_array().unwrap() {
        add(&mut by_method, r["method"].as_str().unwrap(), 1);
    }
    let method = |m: &str| *by_method.get(m).unwrap_or(&0);
    let prepares: u64 = by_method
        .iter()
        .filter(|(m, _)| m.starts_with("PREPARE "))
        .map(|(_, n)| n)
        .sum();
    let pairs = [
        ("Com_select", method("SELECT")),
        ("Com_insert", method("INSERT")),
        ("Com_update", method("UPDATE")),
        ("Com_delete", method("DELETE")),
        ("Com_change_db", method("USE")),
        ("Com_set_option", method("SET")),
        ("Com_stmt_prepare", prepares),
        ("Com_stmt_reset", method("STMT_RESET")),
    ];
    for (counter, seen) in pairs {
        assert_eq!(seen, delta(counter), "{counter}: {by_method:?}");
    }
}
