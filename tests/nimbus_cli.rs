//! `storm-controller nimbus ...` through `cli::execute` against the fake Nimbus over TCP.

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};
use storm_controller::nimbus::cli::{NimbusCommand, execute};
use storm_controller::nimbus::fake::{FakeComponent, FakeComponentStats, FakeNimbus, FakeTopology};

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    cmd: NimbusCommand,
}

fn parse(args: &[&str]) -> NimbusCommand {
    let mut argv = vec!["storm-controller"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("parses").cmd
}

async fn fake() -> FakeNimbus {
    let f = FakeNimbus::start().await.unwrap();
    let spout = FakeComponentStats {
        acked: 6000,
        failed: 60,
        emitted: 6000,
        complete_latency_ms: 25.0,
        ..Default::default()
    };
    let split = FakeComponentStats {
        emitted: 24_000,
        capacity: 0.75,
        execute_latency_ms: 2.5,
        ..Default::default()
    };
    f.cluster().put_topology(
        FakeTopology::new("wordcount")
            .with_spout("sentences", FakeComponent::new(1, 2, spout))
            .with_bolt("split", FakeComponent::new(2, 4, split))
            .with_conf("topology.max.spout.pending", json!(100))
            .with_conf("topology.version", json!("v3")),
    );
    f
}

async fn run_json(f: &FakeNimbus, args: &[&str]) -> Value {
    let mut full = vec!["--nimbus", "placeholder", "-o", "json"];
    full.extend_from_slice(args);
    let ep = f.endpoint();
    full[1] = &ep;
    let mut out = Vec::new();
    execute(&parse(&full), &mut out)
        .await
        .expect("command succeeds");
    serde_json::from_slice(&out).expect("valid JSON")
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
    let cmd = parse(&[
        "--nimbus",
        "a:1,b",
        "--call-timeout",
        "250ms",
        "rebalance",
        "wc",
        "--workers",
        "3",
        "--executors",
        "split=4",
        "--executors",
        "count=2",
        "--wait",
        "5",
    ]);
    assert_eq!(cmd.call_timeout, std::time::Duration::from_millis(250));
    let dbg = format!("{:?}", cmd.command);
    assert!(
        dbg.contains("(\"split\", 4)") && dbg.contains("(\"count\", 2)"),
        "{dbg}"
    );
    assert!(
        Cli::try_parse_from([
            "x",
            "--nimbus",
            "a:1",
            "rebalance",
            "wc",
            "--executors",
            "split"
        ])
        .is_err()
    );
}

#[tokio::test]
async fn metrics_json_has_stable_field_names_and_values() {
    let f = fake().await;
    let v = run_json(&f, &["metrics", "wordcount"]).await;
    // uptime 3600 -> 600 s window: acked 10/s, failed 0.1/s; pending 10 * 0.025 + 0.1 * 30 = 3.25
    assert_eq!(v["ackedPerSecond"], json!(10.0));
    assert_eq!(v["failedPerSecond"], json!(0.1));
    assert_eq!(v["pendingTuples"], json!(3.25));
    assert_eq!(v["completeLatencyMs"], json!(25.0));
    assert_eq!(v["capacity"], json!(0.75));
    // (6000 + 24000) / 600
    assert_eq!(v["emittedPerSecond"], json!(50.0));
    // 3.25 / (100 * 2 tasks)
    assert_eq!(v["spoutPendingRatio"], json!(0.01625));
    assert_eq!(
        v["components"],
        json!([{"id": "split", "capacity": 0.75, "executeLatencyMs": 2.5}])
    );
    assert!(v["sampleTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        f.calls(),
        [
            "getLeader",
            "getTopologySummaryByName",
            "getTopologyPageInfo"
        ]
    );
}

#[tokio::test]
async fn listing_commands() {
    let f = fake().await;
    let v = run_json(&f, &["topologies"]).await;
    assert_eq!(v[0]["name"], "wordcount");
    assert_eq!(v[0]["topologyVersion"], "v3");
    assert_eq!(v[0]["executors"], 3);

    let v = run_json(&f, &["cluster"]).await;
    assert_eq!(v["nimbuses"][0]["isLeader"], true);
    assert_eq!(v["supervisors"][0]["slots"], 4);
    assert_eq!(v["topologies"][0]["status"], "ACTIVE");

    let v = run_json(&f, &["topology", "wordcount"]).await;
    assert_eq!(v["name"], "wordcount");
    assert_eq!(v["window"], "600");
    assert_eq!(
        v["components"][0],
        json!({"id": "sentences", "type": "spout", "executors": 1, "tasks": 2, "emitted": 6000, "acked": 6000, "failed": 60})
    );

    let mut out = Vec::new();
    execute(&parse(&["--nimbus", &f.endpoint(), "topologies"]), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("NAME"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("wordcount  wordcount-1-1700000000  ACTIVE")
    );
}

#[tokio::test]
async fn write_commands_change_state() {
    let f = fake().await;
    let c = f.cluster();
    assert_eq!(
        run_json(&f, &["deactivate", "wordcount"]).await,
        json!({"topology": "wordcount", "action": "deactivate", "ok": true})
    );
    assert_eq!(c.topology("wordcount").unwrap().status, "INACTIVE");
    run_json(&f, &["activate", "wordcount"]).await;
    assert_eq!(c.topology("wordcount").unwrap().status, "ACTIVE");
    run_json(
        &f,
        &[
            "rebalance",
            "wordcount",
            "--workers",
            "2",
            "--executors",
            "split=4",
            "--wait",
            "0",
        ],
    )
    .await;
    let t = c.topology("wordcount").unwrap();
    assert_eq!(
        (t.num_workers, t.bolts["split"].executors, t.status.as_str()),
        (2, 4, "ACTIVE")
    );
    run_json(&f, &["kill", "wordcount", "--wait", "0"]).await;
    assert!(c.topology("wordcount").is_none());
}

#[tokio::test]
async fn storm_errors_are_typed_and_one_line() {
    let f = fake().await;
    let mut out = Vec::new();
    let err = execute(
        &parse(&["--nimbus", &f.endpoint(), "kill", "ghost"]),
        &mut out,
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "not alive: ghost is not alive");
    assert!(out.is_empty());
    let err = execute(
        &parse(&[
            "--nimbus",
            &f.endpoint(),
            "rebalance",
            "wordcount",
            "--executors",
            "nope=2",
        ]),
        &mut out,
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), "InvalidTopology");
}
