//! Alerts and metrics end to end (docs/alerts.md): the built `jobtop serve` with real job
//! files, a real HTTP receiver, a real SMTP server (aiosmtpd), real commands, and `/metrics`
//! and the textfile read by real Prometheus parsers (Python's `prometheus_client`, and
//! `promtool check metrics`). A missing server is a skip with a note, or a failure under
//! `JOBTOP_REQUIRE_SERVERS`.

// Metric values are whole numbers read back as floats: exact comparison is what is meant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::faults::{stop, wait_ready};
use common::process::{Cli, OK_JOB, Sandbox, Serve, has_line_column, poll_every, runs, text};
use common::servers::free_port;
use common::servers::http::{HttpReceiver, Reply};
use common::servers::prom::{self, Parser, Promtool};
use common::servers::smtp::Smtp;
use serde_json::Value;

const CLI: Cli = Cli::new(Duration::from_secs(30));

const FAIL_JOB: &str = "local job = core.job()
function job.run()
  core.log(\"checking the disk\")
  error(\"disk is full\")
end
return job
";

fn host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// The webhooks of `event` received so far.
fn hooks(receiver: &HttpReceiver, event: &str) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(common::servers::http::Request::json)
        .filter(|j| j["event"] == event)
        .collect()
}

fn wait_hook(receiver: &HttpReceiver, event: &str, within: Duration) -> Value {
    poll_every(Duration::from_millis(20), within, || {
        hooks(receiver, event).into_iter().next()
    })
    .unwrap_or_else(|| {
        panic!(
            "no {event} webhook within {within:?}; got {:?}",
            receiver
                .requests()
                .iter()
                .map(common::servers::http::Request::text)
                .collect::<Vec<_>>()
        )
    })
}

/// `GET /metrics` on `port`: status line and body.
fn scrape(port: u16) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn a_crash_reaches_the_webhook_within_seconds_and_a_fix_sends_recovered() {
    let receiver = HttpReceiver::start();
    let yaml = format!(
        "service:\n  notify:\n    - webhook: {}/hook\n      headers: {{Authorization: \"Bearer ${{JOBTOP_TEST_HOOK_TOKEN}}\"}}\njobs:\n  - {{name: backup, path: backup.lua, interval: 1s}}\n",
        receiver.url()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("backup.lua", FAIL_JOB)]);
    let serve = Serve::spawn_with_env(&sandbox, &[("JOBTOP_TEST_HOOK_TOKEN", "s3cret-token")]);
    let mut serve = wait_ready(serve, Duration::from_secs(10));

    let failed = wait_hook(&receiver, "failed", Duration::from_secs(10));
    let arrived = Utc::now();
    let request = &receiver.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path(), "/hook");
    assert_eq!(request.header("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(failed["job"], "backup");
    assert_eq!(failed["host"], host());
    assert_eq!(failed["status"], "deactivated");
    assert_eq!(failed["result"], "error");
    assert!(
        failed["error"].as_str().unwrap().contains("disk is full"),
        "{failed}"
    );
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["attempts"], 1);
    assert!(failed["by"].is_null());
    assert_eq!(failed["jobtop_version"], env!("CARGO_PKG_VERSION"));
    assert!(failed["config"].as_str().unwrap().ends_with("jobs.yaml"));
    assert!(failed["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(failed["logs"][0].as_str().unwrap(), "checking the disk");
    let started = time(&failed["started"]);
    assert!(time(&failed["scheduled"]) <= started);
    let ended =
        started + chrono::Duration::milliseconds(failed["duration_ms"].as_f64().unwrap() as i64);
    assert!(
        arrived - ended < chrono::Duration::seconds(2),
        "the webhook came {} after the run ended",
        arrived - ended
    );
    // Default `on`: failed and recovered only, so no `deactivated` hook.
    assert!(hooks(&receiver, "deactivated").is_empty());

    fs::write(sandbox.path().join("jobs/backup.lua"), OK_JOB).unwrap();
    sandbox.jobtop_ok(&["activate", "backup"]);
    let recovered = wait_hook(&receiver, "recovered", Duration::from_secs(10));
    assert_eq!(recovered["job"], "backup");
    assert_eq!(recovered["result"], "ok");
    assert_eq!(recovered["status"], "waiting");
    // One `recovered`, not one per ok run.
    sleep(Duration::from_millis(2500));
    assert_eq!(hooks(&receiver, "recovered").len(), 1);
    stop(&mut serve, Duration::from_secs(15));
    let log = sandbox.service_log() + &serve.stderr();
    assert!(!log.contains("s3cret-token"), "a secret in the log: {log}");
}

#[test]
fn receivers_down_slow_or_failing_delay_nothing_and_every_failure_is_counted() {
    let failing = HttpReceiver::start();
    failing.answer(Reply::status(500));
    let slow = HttpReceiver::start();
    slow.answer(Reply::status(200).after(Duration::from_secs(12)));
    let down = free_port();
    let metrics = free_port();
    let yaml = format!(
        "service:\n  metrics: 127.0.0.1:{metrics}\n  notify:\n    - webhook: {}/a\n    - webhook: {}/b\n    - webhook: http://localhost:{down}/c\njobs:\n  - {{name: fail, path: fail.lua, interval: 1s}}\n  - {{name: tick, path: tick.lua, interval: 500ms}}\n",
        failing.url(),
        slow.url()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("fail.lua", FAIL_JOB), ("tick.lua", OK_JOB)]);
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    let begun = Instant::now();

    // Three attempts at the failing receiver, one second and then two apart.
    let tries = failing.wait_for(3, Duration::from_secs(15));
    assert_eq!(tries.len(), 3);
    assert!(tries[2].at.duration_since(tries[0].at) >= Duration::from_millis(2500));
    assert!(slow.wait_for(1, Duration::from_secs(5)).len() == 1);
    let failures = |body: &str, channel: &str| {
        let samples = Parser::new().unwrap().samples(body);
        samples
            .iter()
            .find(|s| {
                s.name == "jobtop_notify_failures_total"
                    && s.labels.get("channel").map(String::as_str) == Some(channel)
            })
            .map_or(0.0, |s| s.value)
    };
    let failing_label = format!("webhook:127.0.0.1:{}", failing.port());
    let slow_label = format!("webhook:127.0.0.1:{}", slow.port());
    let down_label = format!("webhook:localhost:{down}");
    let counted = poll_every(Duration::from_millis(100), Duration::from_secs(10), || {
        let (_, body) = scrape(metrics);
        (failures(&body, &failing_label) >= 1.0 && failures(&body, &down_label) >= 1.0)
            .then_some(body)
    });
    let body = counted.expect("both failures counted in /metrics");
    assert_eq!(failures(&body, &failing_label), 1.0);
    assert_eq!(
        failures(&body, &slow_label),
        0.0,
        "the slow one has not failed yet"
    );
    // The schedule went on meanwhile: `tick` ran about every 500 ms, the socket answered.
    let tick = sandbox.job("tick");
    let elapsed = begun.elapsed().as_secs_f64();
    assert!(
        runs(&tick) as f64 >= elapsed / 0.5 - 3.0,
        "{} runs of tick in {elapsed:.1} s",
        runs(&tick)
    );
    let log = sandbox.service_log();
    assert!(
        log.contains(&format!("notification failed of fail to {failing_label} failed: the receiver answered HTTP 500 (after 3 attempts)")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "notification failed of fail to {down_label} failed: cannot"
        )),
        "{log}"
    );
    stop(&mut serve, Duration::from_secs(30));
}

#[test]
fn a_failure_mails_the_documented_subject_with_the_error_and_the_log() {
    let Some(smtp) = Smtp::start() else { return };
    let yaml = format!(
        "service:\n  smtp: {{url: \"smtp://127.0.0.1:{}\"}}\n  notify:\n    - email: {{to: [ops@example.com], from: jobtop@example.com}}\njobs:\n  - {{name: nightly-backup, path: backup.lua, interval: 1s}}\n",
        smtp.port()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("backup.lua", FAIL_JOB)]);
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    let mails = smtp.wait_for(1, Duration::from_secs(15));
    let mail = &mails[0];
    assert_eq!(
        mail.subject(),
        format!("[jobtop {}] nightly-backup failed", host())
    );
    assert_eq!(mail.to, vec!["ops@example.com".to_string()]);
    assert_eq!(mail.from, "jobtop@example.com");
    assert!(mail.body.contains("disk is full"), "{}", mail.body);
    assert!(
        mail.body.contains("backup.lua:4"),
        "the traceback's line: {}",
        mail.body
    );
    assert!(mail.body.contains("checking the disk"), "{}", mail.body);
    stop(&mut serve, Duration::from_secs(15));
}

#[test]
fn the_command_gets_the_json_on_stdin_and_a_hanging_one_is_killed() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("payload.json");
    let marker = format!("{}", 4000 + std::process::id() % 1000);
    let yaml = format!(
        "service:\n  notify:\n    - command: [/bin/sh, -c, 'cat > {}']\n    - command: [/bin/sleep, \"{marker}.5\"]\n      timeout: 1s\njobs:\n  - {{name: fail, path: fail.lua, interval: 1s}}\n",
        file.display()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("fail.lua", FAIL_JOB)]);
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    let payload = poll_every(Duration::from_millis(20), Duration::from_secs(10), || {
        let text = fs::read_to_string(&file).ok()?;
        serde_json::from_str::<Value>(&text).ok()
    })
    .expect("the command wrote the payload");
    assert_eq!(payload["event"], "failed");
    assert_eq!(payload["job"], "fail");
    // Three attempts of one second each, and one then two seconds between them.
    let failed = poll_every(Duration::from_millis(100), Duration::from_secs(15), || {
        let log = sandbox.service_log();
        log.contains("to command:sleep failed").then_some(log)
    })
    .expect("the hanging command's failure is logged");
    assert!(failed.contains("timed out after 1 s"), "{failed}");
    let sleeping = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}.5")])
        .output()
        .unwrap();
    assert!(
        sleeping.stdout.is_empty(),
        "the command survived: {}",
        text(&sleeping.stdout)
    );
    stop(&mut serve, Duration::from_secs(15));
}

#[test]
fn a_flapping_job_sends_one_failed_per_ten_minutes() {
    let receiver = HttpReceiver::start();
    let yaml = format!(
        "service:\n  notify:\n    - webhook: {}/hook\n      on: [failed, deactivated, skipped]\njobs:\n  - {{name: flaky, path: fail.lua, interval: 1h, retries: 4, retry_delay: 1s}}\n",
        receiver.url()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("fail.lua", FAIL_JOB)]);
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    sandbox.jobtop_ok(&["trigger", "flaky"]);
    // 1 + 4 attempts: 1 + 2 + 4 + 8 s of retry delays would take 15 s; three failures do.
    sandbox.wait_job("flaky", Duration::from_secs(20), |j| {
        j["errors"].as_u64() >= Some(3)
    });
    sleep(Duration::from_millis(300));
    let failed = hooks(&receiver, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["status"], "retrying");
    assert_eq!(failed[0]["attempt"], 1);
    assert_eq!(failed[0]["attempts"], 5);
    stop(&mut serve, Duration::from_secs(15));
}

#[test]
fn metrics_and_the_textfile_pass_real_parsers_and_match_the_history() {
    let (Some(parser), Some(promtool)) = (Parser::new(), Promtool::new()) else {
        return;
    };
    let port = free_port();
    let yaml = format!(
        "service:\n  metrics: 127.0.0.1:{port}\n  metrics_textfile: metrics/jobtop.prom\njobs:\n  - {{name: fail, path: fail.lua, interval: 1s}}\n  - {{name: tick, path: tick.lua, interval: 300ms}}\n  - {{name: idle, path: tick.lua, interval: 1h, active: false}}\n"
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("fail.lua", FAIL_JOB), ("tick.lua", OK_JOB)]);
    fs::create_dir(sandbox.path().join("metrics")).unwrap();
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    sandbox.wait_job("fail", Duration::from_secs(10), |j| {
        j["status"] == "deactivated"
    });
    sandbox.wait_job("tick", Duration::from_secs(10), |j| runs(j) >= 3);

    let (status, body) = scrape(port);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let families = parser.families(&body).unwrap();
    for name in [
        "jobtop_job_runs",
        "jobtop_job_last_run_timestamp_seconds",
        "jobtop_job_last_success_timestamp_seconds",
        "jobtop_job_last_failure_timestamp_seconds",
        "jobtop_job_last_duration_seconds",
        "jobtop_job_next_run_timestamp_seconds",
        "jobtop_job_status",
        "jobtop_job_running",
        "jobtop_run_lateness_seconds",
        "jobtop_config_last_reload_success",
        "jobtop_config_last_reload_timestamp_seconds",
        "jobtop_start_time_seconds",
        "jobtop_build_info",
    ] {
        assert!(
            families.iter().any(|f| f.name == name),
            "no {name} in {body}"
        );
    }
    promtool.check_metrics(&body).unwrap();
    let samples = parser.samples(&body);
    let v = |name: &str, labels: &[(&str, &str)]| prom::value(&samples, name, labels);
    assert_eq!(
        v(
            "jobtop_job_status",
            &[("job", "fail"), ("status", "deactivated")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "jobtop_job_status",
            &[("job", "fail"), ("status", "waiting")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "jobtop_job_status",
            &[("job", "idle"), ("status", "disabled")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "jobtop_job_runs_total",
            &[("job", "fail"), ("result", "error")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "jobtop_job_last_success_timestamp_seconds",
            &[("job", "fail")]
        ),
        0.0
    );
    assert!(
        v(
            "jobtop_job_last_failure_timestamp_seconds",
            &[("job", "fail")]
        ) > 1.7e9
    );
    assert_eq!(
        v(
            "jobtop_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(v("jobtop_config_last_reload_success", &[]), 1.0);
    let absent = |job: &str| {
        !samples
            .iter()
            .any(|s| s.name == "jobtop_job_next_run_timestamp_seconds" && s.labels["job"] == job)
    };
    assert!(
        absent("fail") && absent("idle"),
        "next run of jobs not scheduled"
    );
    assert!(v("jobtop_job_next_run_timestamp_seconds", &[("job", "tick")]) > 1.7e9);

    // A reader of the textfile sees a whole file or the old one, through two rewrites.
    let textfile = sandbox.path().join("metrics/jobtop.prom");
    let until = Instant::now() + Duration::from_secs(16);
    let mut reads = 0;
    while Instant::now() < until {
        if let Ok(text) = fs::read_to_string(&textfile) {
            assert!(
                text.ends_with('\n') && text.contains("jobtop_build_info"),
                "partial: {text:?}"
            );
            reads += 1;
        }
        sleep(Duration::from_millis(2));
    }
    assert!(reads > 100, "the textfile was there: {reads} reads");

    // At shutdown the textfile gets the final figures, which match the history.
    stop(&mut serve, Duration::from_secs(15));
    let text = fs::read_to_string(&textfile).unwrap();
    promtool.check_metrics(&text).unwrap();
    let samples = parser.samples(&text);
    let history = sandbox.history("tick");
    let oks = history.iter().filter(|r| r["result"] == "ok").count();
    assert_eq!(
        prom::value(
            &samples,
            "jobtop_job_runs_total",
            &[("job", "tick"), ("result", "ok")]
        ),
        oks as f64
    );
    let last = &history[0];
    let last_started = time(&last["started"]).timestamp_millis() as f64 / 1e3;
    assert!(
        (prom::value(
            &samples,
            "jobtop_job_last_run_timestamp_seconds",
            &[("job", "tick")]
        ) - last_started)
            .abs()
            < 0.002
    );
    let lateness_count = prom::value(&samples, "jobtop_run_lateness_seconds_count", &[]);
    assert_eq!(
        lateness_count,
        (oks + 1) as f64,
        "every run of tick and fail"
    );
}

#[test]
fn notify_test_reports_each_channel_and_fails_if_one_did() {
    let receiver = HttpReceiver::start();
    let down = free_port();
    let yaml = format!(
        "service:\n  notify:\n    - webhook: {}/hook\n    - webhook: http://127.0.0.1:{down}/x\n      timeout: 1s\njobs:\n  - {{name: a, path: a.lua, interval: 1h, notify: [{{command: [/bin/true]}}]}}\n",
        receiver.url()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("a.lua", OK_JOB)]);
    let out = sandbox.jobtop(&["notify", "test"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("1. webhook:127.0.0.1:{}: ok", receiver.port())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("2. webhook:127.0.0.1:{down}: failed: cannot")),
        "{stdout}"
    );
    assert!(stdout.contains("3. command:true: ok"), "{stdout}");
    let test = wait_hook(&receiver, "test", Duration::from_secs(5));
    assert_eq!(test["host"], host());
    let one = sandbox.jobtop(&["notify", "test", "--channel", "3"]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    assert_eq!(text(&one.stdout), "3. command:true: ok\n");
    let none = sandbox.jobtop(&["notify", "test", "--channel", "4"]);
    assert_eq!(none.status.code(), Some(2));
}

#[test]
fn check_refuses_bad_channels_with_line_and_column() {
    let cases: &[(&str, &str)] = &[
        (
            "  notify:\n    - webhook: http://x/${JOBTOP_TEST_UNSET_VARIABLE}\n",
            "uses ${JOBTOP_TEST_UNSET_VARIABLE}, which is not set",
        ),
        (
            "  notify:\n    - webhook: ftp://x/\n",
            "expected an http:// or https:// URL",
        ),
        (
            "  notify:\n    - {webhook: \"http://x/\", command: [/bin/true]}\n",
            "has webhook and command: expected exactly one",
        ),
        (
            "  notify:\n    - {command: [/bin/true], on: [failed, exploded]}\n",
            "unknown event \"exploded\"",
        ),
        (
            "  notify:\n    - email: {to: [ops@example.com], from: me@example.com}\n",
            "needs a mail server",
        ),
        (
            "  notify:\n    - email: {to: [not-an-address], from: me@example.com}\n  smtp: {url: \"smtp://127.0.0.1\"}\n",
            "invalid mail address \"not-an-address\"",
        ),
        ("  smtp: {url: \"http://127.0.0.1\"}\n", "invalid SMTP URL"),
        ("  metrics: localhost\n", "invalid metrics address"),
        ("  notify:\n    - {command: [], timeout: 1s}\n", "is empty"),
    ];
    for (service, expected) in cases {
        let yaml = format!("service:\n{service}jobs: []\n");
        let sandbox = Sandbox::with_cli(CLI, &yaml, &[]);
        let out = sandbox.jobtop(&["check"]);
        let stderr = text(&out.stderr) + &text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{yaml}: expected {expected:?} in {stderr}"
        );
        assert!(has_line_column(&stderr, "jobs.yaml"), "{stderr}");
    }
    let yaml = "service:\n  metrics: 0.0.0.0:9464\njobs: []\n";
    let sandbox = Sandbox::with_cli(CLI, yaml, &[]);
    let out = sandbox.jobtop(&["check"]);
    let said = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("no authentication"), "{said}");
}

const SLOW_JOB: &str = "local job = core.job()
function job.run()
  core.sleep(1.6)
  return job.OK
end
return job
";

#[test]
fn through_the_service_skips_an_operators_cancel_and_failed_deliveries_are_told() {
    let receiver = HttpReceiver::start();
    let down = free_port();
    let yaml = format!(
        "service:\n  notify:\n    - webhook: {}/hook\n      headers: {{X-Token: \"${{JOBTOP_TEST_SERVICE_TOKEN}}\"}}\n      on: [skipped, deactivated]\n    - webhook: http://127.0.0.1:{down}/x\n      on: [deactivated]\n      timeout: 1s\njobs:\n  - {{name: slow, path: slow.lua, interval: 1s}}\n",
        receiver.url()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("slow.lua", SLOW_JOB)]);
    let serve = Serve::spawn_with_env(&sandbox, &[("JOBTOP_TEST_SERVICE_TOKEN", "from-serve")]);
    let mut serve = wait_ready(serve, Duration::from_secs(10));

    // The CLI has no JOBTOP_TEST_SERVICE_TOKEN: the token that arrives is the service's.
    let out = sandbox.jobtop(&["notify", "test", "--channel", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("through the running service"));
    let test = wait_hook(&receiver, "test", Duration::from_secs(5));
    assert_eq!(test["job"], "jobtop-test");
    let request = receiver
        .requests()
        .into_iter()
        .find(|r| r.json()["event"] == "test")
        .unwrap();
    assert_eq!(request.header("x-token"), Some("from-serve"));

    // A run of 1.6 s on a 1 s interval: the firing during it is skipped, and told.
    let skipped = wait_hook(&receiver, "skipped", Duration::from_secs(10));
    assert_eq!(skipped["job"], "slow");
    assert_eq!(skipped["reason"], "overlap");
    assert_eq!(skipped["result"], "skipped");

    let mut events = common::faults::Conn::open(&sandbox.socket()).unwrap();
    events
        .send(&serde_json::json!({"id": 1, "op": "subscribe"}))
        .unwrap();
    sandbox.jobtop_ok(&["cancel", "slow"]);
    let deactivated = wait_hook(&receiver, "deactivated", Duration::from_secs(10));
    assert_eq!(deactivated["by"], common::process::current_user());
    assert_eq!(deactivated["status"], "deactivated");
    // The second channel is down: after three attempts, a notice reaches subscribers.
    let notice = poll_every(Duration::ZERO, Duration::from_secs(15), || {
        let value = events.next_value(Duration::from_millis(200)).unwrap()?;
        (value["event"] == "notice").then_some(value)
    })
    .expect("a notice of the failed delivery");
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "notification deactivated of slow to webhook:127.0.0.1:{down} failed: cannot"
        )),
        "{message}"
    );
    stop(&mut serve, Duration::from_secs(15));
}

#[test]
fn firings_missed_while_the_service_was_down_are_told_at_the_next_start() {
    let receiver = HttpReceiver::start();
    let port = free_port();
    let yaml = format!(
        "service:\n  metrics: 127.0.0.1:{port}\n  notify:\n    - webhook: {}/hook\n      on: [skipped]\njobs:\n  - {{name: often, path: ok.lua, interval: 1s}}\n",
        receiver.url()
    );
    let sandbox = Sandbox::with_cli(CLI, &yaml, &[("ok.lua", OK_JOB)]);
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    sandbox.wait_job("often", Duration::from_secs(10), |j| runs(j) >= 1);
    stop(&mut serve, Duration::from_secs(15));
    // Down across several of its slots.
    sleep(Duration::from_secs(4));
    let mut serve = wait_ready(Serve::spawn(&sandbox), Duration::from_secs(10));
    let missed = wait_hook(&receiver, "skipped", Duration::from_secs(10));
    assert_eq!(missed["job"], "often");
    assert_eq!(missed["reason"], "missed");
    assert!(
        missed["error"]
            .as_str()
            .unwrap()
            .contains("missed while the service was down"),
        "{missed}"
    );
    stop(&mut serve, Duration::from_secs(15));
}
