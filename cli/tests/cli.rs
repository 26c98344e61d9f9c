//! The `makesync` binary as a user runs it, against the simulator.

use makesync_simulator::{demo_world, Simulator, DEMO_TEAMS_TOKEN, DEMO_TOKEN};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

struct Cli {
    simulator: Simulator,
    dir: tempfile::TempDir,
}

impl Cli {
    async fn start() -> Self {
        Self {
            simulator: Simulator::start(demo_world()).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("makesync.db")
    }

    async fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        self.run_against(&self.simulator.base_url(), token, args)
            .await
    }

    /// Runs with `RUST_LOG` set to `level`.
    async fn run_with_log(&self, token: Option<&str>, args: &[&str], level: &str) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync"));
        command
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env_clear()
            .env("MAKESYNC_API_BASE_URL", self.simulator.base_url())
            .env("RUST_LOG", level);
        if let Some(token) = token {
            command.env("MAKE_API_TOKEN", token);
        }
        command.output().await.unwrap()
    }

    /// Runs with stdout a pipe whose reader has already gone, as `makesync … | head -1` ends.
    async fn run_into_closed_pipe(&self, args: &[&str]) -> Output {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync"))
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env_clear()
            .env("MAKESYNC_API_BASE_URL", self.simulator.base_url())
            .env("MAKE_API_TOKEN", DEMO_TOKEN)
            .stdout(writer)
            .output()
            .await
            .unwrap()
    }

    /// Runs with `MAKESYNC_API_BASE_URL` set to `base_url`.
    async fn run_against(&self, base_url: &str, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync"));
        command
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env_clear()
            .env("MAKESYNC_API_BASE_URL", base_url);
        if let Some(token) = token {
            command.env("MAKE_API_TOKEN", token);
        }
        command.output().await.unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("one JSON document: {e}\n{}", stdout(output)))
}

#[tokio::test]
async fn sync_json_prints_one_document_with_the_organization_the_run_and_every_user() {
    let cli = Cli::start().await;
    let output = cli
        .run(
            Some(DEMO_TOKEN),
            &["sync", "--host", "US2.make.com", "--org", "2002", "--json"],
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert_eq!(
        doc["organization"],
        serde_json::json!({"id": 2002, "name": "Globex Corporation", "host": "us2.make.com"})
    );
    assert_eq!(doc["run"]["outcome"], "succeeded");
    assert_eq!(doc["run"]["fetched"], 6);
    assert_eq!(doc["run"]["added"], 6);
    assert_eq!(doc["run"]["error"], Value::Null);
    let users = doc["users"].as_array().unwrap();
    let ids: Vec<u64> = users.iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![1, 5, 6, 7, 14, 16], "sorted by id");
    let jose = &users[1];
    assert_eq!(jose["name"], "José Ñúñez");
    assert_eq!(jose["roleId"], 11);
    assert_eq!(jose["role"], "Owner");
    assert_eq!(jose["status"], "active");
    assert_eq!(jose["lastLogin"], "2026-11-21T12:00:00Z");
    assert_eq!(jose["removedAt"], Value::Null);
    assert_eq!(users[5]["status"], "invited");
    assert_eq!(users[5]["lastLogin"], Value::Null);
    // Globex's own role, listed only when the roles are asked for Globex.
    assert_eq!(users[4]["role"], "Scenario Reviewer");
    assert_eq!(
        users[4]["roleManagementType"],
        Value::Null,
        "not in the default answer"
    );
}

/// `--json` carries each member's team roles, or `null` and the run's reason when the token
/// may not read them.
#[tokio::test]
async fn sync_json_carries_team_roles_and_says_when_they_were_not_read() {
    let cli = Cli::start().await;
    let args = ["sync", "--host", "eu1.make.com", "--org", "1001", "--json"];
    let output = cli.run(Some(DEMO_TEAMS_TOKEN), &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert_eq!(doc["run"].get("teamsNotRead"), None, "{}", doc["run"]);
    let zoe = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == 2)
        .unwrap();
    assert_eq!(
        zoe["teams"],
        serde_json::json!([{"teamId": 10011, "teamName": "Finance", "roleId": 1, "roleName": "Team Admin"}])
    );

    let cli = Cli::start().await;
    let output = cli.run(Some(DEMO_TOKEN), &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc = json(&output);
    assert!(
        doc["run"]["teamsNotRead"]
            .as_str()
            .is_some_and(|why| why.contains("lacks scope teams:read")),
        "{}",
        doc["run"]
    );
    assert!(doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["teams"].is_null()));
}

#[tokio::test]
async fn a_removed_member_stays_in_the_output_with_status_removed() {
    let cli = Cli::start().await;
    let args = [
        "sync",
        "--host",
        "eu1.make.celonis.com",
        "--org",
        "3003",
        "--json",
    ];
    assert_eq!(
        cli.run(Some(DEMO_TOKEN), &args).await.status.code(),
        Some(0)
    );
    cli.simulator.world().remove_member(3003, 10);
    let output = cli.run(Some(DEMO_TOKEN), &args).await;
    let doc = json(&output);
    assert_eq!(doc["run"]["removed"], 1);
    let ngozi = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == 10)
        .unwrap()
        .clone();
    assert_eq!(ngozi["status"], "removed");
    assert!(ngozi["removedAt"].as_str().unwrap().ends_with('Z'));

    let users = cli
        .run(
            None,
            &[
                "users",
                "--host",
                "eu1.make.celonis.com",
                "--org",
                "3003",
                "--json",
            ],
        )
        .await;
    assert_eq!(users.status.code(), Some(0), "{}", stderr(&users));
    assert_eq!(json(&users)["users"].as_array().unwrap().len(), 5);
    let runs = cli
        .run(
            None,
            &[
                "runs",
                "--host",
                "eu1.make.celonis.com",
                "--org",
                "3003",
                "--json",
            ],
        )
        .await;
    let runs = json(&runs);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    assert_eq!(runs["runs"][0]["removed"], 1, "newest first");
}

#[tokio::test]
async fn the_table_output_shows_users_and_a_run_summary() {
    let cli = Cli::start().await;
    let output = cli
        .run(
            Some(DEMO_TOKEN),
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("Acme Robotics — organization 1001 on eu1.make.com"),
        "{text}"
    );
    assert!(text.contains("Łukasz Żółć"));
    assert!(text.contains("invitation_expired"));
    assert!(text.contains("succeeded: 36 fetched, 36 added"), "{text}");
}

/// (arguments, token, exit code, what the one-line reason says)
#[tokio::test]
async fn failures_exit_non_zero_with_a_one_line_reason() {
    let cli = Cli::start().await;
    let cases: [(&[&str], Option<&str>, i32, &str); 8] = [
        (
            &["sync", "--host", "https://eu1.make.com", "--org", "1001"],
            Some(DEMO_TOKEN),
            2,
            "give the host name only",
        ),
        (
            &["sync", "--host", "make.evil.example", "--org", "1001"],
            Some(DEMO_TOKEN),
            2,
            "not a Make zone",
        ),
        (
            &["sync", "--host", "127.0.0.1", "--org", "1001"],
            Some(DEMO_TOKEN),
            2,
            "is an IP address",
        ),
        (
            &["sync", "--host", "eu1.make.com", "--org", "12ab"],
            Some(DEMO_TOKEN),
            2,
            "is not a number",
        ),
        (
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
            None,
            2,
            "set MAKE_API_TOKEN",
        ),
        (
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
            Some("sim-token-revoked"),
            3,
            "invalid, expired or revoked",
        ),
        (
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
            Some("sim-token-no-user-read"),
            3,
            "lacks scope user:read",
        ),
        (
            &["sync", "--host", "eu1.make.com", "--org", "4242"],
            Some(DEMO_TOKEN),
            4,
            "check the organization ID",
        ),
    ];
    for (args, token, code, reason) in cases {
        let output = cli.run(token, args).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
        if let Some(token) = token {
            assert!(
                !err.contains(token) && !stdout(&output).contains(token),
                "the token leaked"
            );
        }
    }
    let refused_before_sending = cli
        .simulator
        .requests()
        .iter()
        .all(|r| r.host.as_deref() != Some("make.evil.example"));
    assert!(refused_before_sending);
}

#[tokio::test]
async fn a_failed_sync_with_json_still_prints_its_document() {
    let cli = Cli::start().await;
    let output = cli
        .run(
            Some("sim-token-revoked"),
            &["sync", "--host", "eu1.make.com", "--org", "1001", "--json"],
        )
        .await;
    assert_eq!(output.status.code(), Some(3));
    let doc = json(&output);
    assert_eq!(doc["run"]["outcome"], "failed");
    assert_eq!(doc["run"]["error"]["kind"], "auth");
    assert!(doc["run"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("401"));
}

#[tokio::test]
async fn the_token_can_come_from_a_file() {
    let cli = Cli::start().await;
    let file = cli.dir.path().join("token");
    std::fs::write(&file, format!("{DEMO_TOKEN}\n")).unwrap();
    let output = cli
        .run(
            None,
            &[
                "sync",
                "--host",
                "eu1.make.com",
                "--org",
                "1001",
                "--token-file",
                file.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(Path::new(&cli.db()).exists());
}

#[tokio::test]
async fn reading_an_organization_never_synced_says_how_to_sync_it() {
    let cli = Cli::start().await;
    let output = cli
        .run(None, &["users", "--host", "eu1.make.com", "--org", "1001"])
        .await;
    assert_eq!(output.status.code(), Some(6));
    assert!(stderr(&output).contains("run `makesync sync --host eu1.make.com --org 1001` first"));
}

#[tokio::test]
async fn the_demo_syncs_three_zones_and_shows_what_changed() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync"))
        .arg("demo")
        .env_clear()
        .output()
        .await
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert_eq!(
        text.matches("scheduler: 3 connections seen, 3 enqueued")
            .count(),
        2,
        "{text}"
    );
    for line in [
        "- Rafael Núñez <rafael@acme.example> (#11) was removed",
        "~ Łukasz Żółć <lukasz@acme.example> (#3): status invited → active",
        "~ Grace Hopper <grace@globex.example> (#6): role Member → Admin",
        "~ Ngozi Okonjo <ngozi@celonis-ops.example> (#10): last login 2026-11-01 14:20 UTC →",
        "~ Zoë Müller <zoe@acme.example> (#2): teams Finance: Team Admin → Finance: Team Member",
        "teams not read: the token lacks scope teams:read — add it to read team access",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_token_without_user_read_exits_3_naming_the_scope_whether_make_says_403_or_401() {
    for status in [403, 401] {
        let cli = Cli::start().await;
        cli.simulator.world().faults.missing_scope_status = status;
        let output = cli
            .run(
                Some("sim-token-no-user-read"),
                &["sync", "--host", "eu1.make.com", "--org", "1001", "--json"],
            )
            .await;
        assert_eq!(
            output.status.code(),
            Some(3),
            "{status}: {}",
            stderr(&output)
        );
        let doc = json(&output);
        assert_eq!(doc["run"]["error"]["kind"], "permission", "{status}");
        let message = doc["run"]["error"]["message"].as_str().unwrap();
        assert!(message.contains("user:read"), "{status}: {message}");
        for wrong in ["expired", "revoked"] {
            assert!(!message.contains(wrong), "{status}: {message}");
            assert!(
                !stderr(&output).contains(wrong),
                "{status}: {}",
                stderr(&output)
            );
        }
    }
}

#[tokio::test]
async fn a_host_answering_an_endless_retry_after_fails_the_sync_with_exit_5_not_a_panic() {
    let cli = Cli::start().await;
    cli.simulator
        .world()
        .faults
        .retry_after_values
        .extend(["1".to_string(), u64::MAX.to_string()]);
    let output = cli
        .run(
            Some(DEMO_TOKEN),
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
        )
        .await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("rate limit"), "{err}");
    assert!(err.contains(&u64::MAX.to_string()), "names the wait: {err}");
}

#[tokio::test]
async fn an_api_base_url_off_this_machine_stops_the_cli_with_exit_2_naming_the_variable() {
    let cli = Cli::start().await;
    for base_url in [
        "https://collector.example",
        "http://10.1.2.3:8080",
        "http://[2001:db8::1]",
    ] {
        let output = cli
            .run_against(
                base_url,
                Some(DEMO_TOKEN),
                &["sync", "--host", "eu1.make.com", "--org", "1001"],
            )
            .await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{base_url}: {err}");
        assert!(err.contains("MAKESYNC_API_BASE_URL"), "{err}");
        assert!(err.contains("loopback"), "{err}");
    }
    assert!(
        cli.simulator.requests().is_empty(),
        "nothing was sent anywhere"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_store_file_is_readable_by_its_owner_only_and_names_are_escaped_in_text() {
    use std::os::unix::fs::PermissionsExt;
    let cli = Cli::start().await;
    {
        let mut world = cli.simulator.world();
        let user = world
            .users
            .values_mut()
            .find(|u| u.name == "Łukasz Żółć")
            .expect("the demo world has Łukasz");
        user.name = "Łukasz\u{1b}]0;owned\u{7}\u{1b}[2J".to_string();
    }
    let output = cli
        .run(
            Some(DEMO_TOKEN),
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        !text.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(text.contains("Łukasz\\u{1b}]0;owned"), "{text}");
    let mode = std::fs::metadata(cli.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let json_output = cli
        .run(
            None,
            &["users", "--host", "eu1.make.com", "--org", "1001", "--json"],
        )
        .await;
    let doc = json(&json_output);
    let names: Vec<&str> = doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Łukasz\u{1b}]0;owned\u{7}\u{1b}[2J"),
        "JSON keeps the name as Make has it"
    );
}

/// A row Make sends that does not parse fails the sync naming the endpoint, the row's id and
/// the field — and nothing of the row: its member's name and email are in no output, record
/// or log line (logs at TRACE).
#[tokio::test]
async fn a_malformed_row_fails_the_sync_without_quoting_the_member() {
    let cli = Cli::start().await;
    let name = "Mallory Quux-Recognizable";
    let email = "mallory.quux@recognizable.example";
    let body = serde_json::json!({"users": [
        {"id": 1, "name": "Ada Lovelace", "email": "ada@acme.example", "lastLogin": null},
        {"id": 99, "name": name, "email": email, "lastLogin": "last tuesday, said Mallory Quux"},
    ]});
    cli.simulator
        .world()
        .faults
        .canned_bodies
        .insert("/api/v2/users".into(), body.to_string());
    let mut outputs = Vec::new();
    for args in [
        &["sync", "--host", "eu1.make.com", "--org", "1001", "--json"][..],
        &["sync", "--host", "eu1.make.com", "--org", "1001"][..],
        &["runs", "--host", "eu1.make.com", "--org", "1001", "--json"][..],
        &["runs", "--host", "eu1.make.com", "--org", "1001"][..],
    ] {
        outputs.push(cli.run_with_log(Some(DEMO_TOKEN), args, "trace").await);
    }
    let doc = json(&outputs[0]);
    assert_eq!(doc["run"]["error"]["kind"], "protocol", "{doc}");
    let message = doc["run"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("field `users[1].lastLogin` is not an ISO 8601 timestamp"),
        "{message}"
    );
    for output in &outputs {
        let all = format!("{}{}", stdout(output), stderr(output));
        for personal in ["Mallory", "Quux", "recognizable", "last tuesday"] {
            assert!(!all.contains(personal), "{personal} in:\n{all}");
        }
    }
    let runs = json(&outputs[2]);
    assert_eq!(runs["runs"][0]["error"]["message"], message, "{runs}");
    // Nor in the store: the connection's lastError, the run record, anything.
    let mut stored = std::fs::read(cli.db()).unwrap();
    if let Ok(wal) = std::fs::read(cli.db().with_extension("db-wal")) {
        stored.extend(wal);
    }
    for personal in ["Mallory", "recognizable"] {
        assert!(
            !stored
                .windows(personal.len())
                .any(|w| w == personal.as_bytes()),
            "{personal} is in the store file"
        );
    }
}

/// `makesync erase` removes everything the store holds about an organization, and vacuums the
/// file: no name or email of its members is left in it, free pages included.
#[tokio::test]
async fn erase_leaves_no_trace_of_the_organization_in_the_store_file() {
    let cli = Cli::start().await;
    let target = ["--host", "eu1.make.com", "--org", "1001"];
    let synced = cli
        .run(Some(DEMO_TOKEN), &[&["sync"][..], &target].concat())
        .await;
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));
    let file_holds = |needle: &str| {
        let mut bytes = std::fs::read(cli.db()).unwrap();
        if let Ok(wal) = std::fs::read(cli.db().with_extension("db-wal")) {
            bytes.extend(wal);
        }
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    assert!(file_holds("ada@acme.example"), "the sync stored Ada");

    let erased = cli
        .run(None, &[&["erase"][..], &target, &["--json"]].concat())
        .await;
    assert_eq!(erased.status.code(), Some(0), "{}", stderr(&erased));
    let doc = json(&erased);
    assert_eq!(doc["erased"]["users"], 36, "{doc}");
    assert_eq!(doc["erased"]["runs"], 1, "{doc}");
    for needle in ["ada@acme.example", "Łukasz", "Acme Robotics"] {
        assert!(!file_holds(needle), "{needle} is still in the file");
    }
    let users = cli.run(None, &[&["users"][..], &target].concat()).await;
    assert_ne!(users.status.code(), Some(0));
    assert!(
        stderr(&users).contains("holds nothing for organization 1001"),
        "{}",
        stderr(&users)
    );
}

#[tokio::test]
async fn orgs_lists_every_organization_of_the_token_with_its_host_across_two_row_pages() {
    let mut world = demo_world();
    world.faults.organizations_list = makesync_simulator::ListShape::Paged { max: 2 };
    let cli = Cli {
        simulator: Simulator::start(world).await.unwrap(),
        dir: tempfile::tempdir().unwrap(),
    };
    let output = cli
        .run(
            Some(DEMO_TOKEN),
            &["orgs", "--host", "eu1.make.com", "--json"],
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let document = json(&output);
    let found: Vec<(u64, String)> = document["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["host"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (1001, "eu1.make.com".to_string()),
            (2002, "us2.make.com".to_string()),
            (3003, "eu1.make.celonis.com".to_string()),
        ]
    );
    let pages = cli
        .simulator
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/organizations")
        .count();
    assert!(pages >= 2, "read in pages of two: {pages} requests");
    // Discovery stores nothing.
    assert!(!cli.db().exists());

    let table = cli
        .run(Some(DEMO_TOKEN), &["orgs", "--host", "eu1.make.com"])
        .await;
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(
        text.contains("Globex Corporation") && text.contains("us2.make.com"),
        "{text}"
    );
}

#[tokio::test]
async fn orgs_instance_lists_deleted_organizations_flagged_and_needs_admin_read() {
    let mut world = demo_world();
    world.faults.admin_organizations_list = makesync_simulator::ListShape::Paged { max: 2 };
    let cli = Cli {
        simulator: Simulator::start(world).await.unwrap(),
        dir: tempfile::tempdir().unwrap(),
    };
    let host = makesync_simulator::DEMO_INSTANCE_HOST;
    let args = ["orgs", "--host", host, "--instance", "--json"];
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync"));
    let output = command
        .args(args)
        .env_clear()
        .env("MAKESYNC_API_BASE_URL", cli.simulator.base_url())
        .env("MAKESYNC_EXTRA_HOSTS", host)
        .env("MAKE_API_TOKEN", makesync_simulator::DEMO_INSTANCE_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let document = json(&output);
    let deleted: Vec<(u64, bool)> = document["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_u64().unwrap(), o["deleted"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        deleted,
        vec![(5001, false), (5002, false), (5003, true), (5004, false)]
    );

    // A member's token without the instance role: refused, naming the scope, exit 3.
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_makesync"))
        .args(args)
        .env_clear()
        .env("MAKESYNC_API_BASE_URL", cli.simulator.base_url())
        .env("MAKESYNC_EXTRA_HOSTS", host)
        .env("MAKE_API_TOKEN", DEMO_TOKEN)
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(err.contains("admin:read"), "{err}");
    assert!(!err.contains(DEMO_TOKEN));
}

/// Logs written to a pipe or a file carry no ANSI colour codes (colour only on a terminal,
/// never with `NO_COLOR`).
#[tokio::test]
async fn logs_to_a_pipe_carry_no_escape_sequences() {
    let cli = Cli::start().await;
    let output = cli
        .run_with_log(
            Some(DEMO_TOKEN),
            &["sync", "--host", "eu1.make.com", "--org", "1001"],
            "info",
        )
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let logs = stderr(&output);
    assert!(logs.contains("INFO"), "logs were written: {logs}");
    assert!(!logs.contains('\u{1b}'), "an escape sequence in: {logs:?}");
}

/// Each kind of outcome has its own exit code, as docs/cli.md lists them.
#[tokio::test]
async fn each_outcome_has_its_own_exit_code() {
    let cli = Cli::start().await;
    let acme = ["--host", "eu1.make.com", "--org", "1001"];
    std::fs::create_dir(cli.db()).unwrap();
    let unexpected = cli.run(None, &[&["users"][..], &acme].concat()).await;
    assert_eq!(
        unexpected.status.code(),
        Some(1),
        "a store that cannot open"
    );
    std::fs::remove_dir(cli.db()).unwrap();
    let never_synced = cli.run(None, &[&["users"][..], &acme].concat()).await;
    assert_eq!(never_synced.status.code(), Some(6), "not in the store");
    let synced = cli
        .run(Some(DEMO_TOKEN), &[&["sync"][..], &acme].concat())
        .await;
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));
    let usage = cli
        .run(Some(DEMO_TOKEN), &["sync", "--host", "eu1.make.com"])
        .await;
    assert_eq!(usage.status.code(), Some(2), "a missing argument");
    let revoked = cli
        .run(Some("sim-token-revoked"), &[&["sync"][..], &acme].concat())
        .await;
    assert_eq!(revoked.status.code(), Some(3), "the token refused");
    let unknown = ["sync", "--host", "eu1.make.com", "--org", "4242"];
    let not_found = cli.run(Some(DEMO_TOKEN), &unknown).await;
    assert_eq!(not_found.status.code(), Some(4), "no such organization");
    cli.simulator
        .world()
        .faults
        .retry_after_values
        .push_back(u64::MAX.to_string());
    let later = cli
        .run(Some(DEMO_TOKEN), &[&["sync"][..], &acme].concat())
        .await;
    assert_eq!(
        later.status.code(),
        Some(5),
        "try later: {}",
        stderr(&later)
    );
}

/// A failed sync shows why it failed, not the users an earlier sync stored.
#[tokio::test]
async fn a_failed_sync_prints_its_error_not_the_users_stored_before() {
    let cli = Cli::start().await;
    let acme = ["sync", "--host", "eu1.make.com", "--org", "1001"];
    let synced = cli.run(Some(DEMO_TOKEN), &acme).await;
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));
    assert!(stdout(&synced).contains("ada@acme.example"));

    let failed = cli.run(Some("sim-token-revoked"), &acme).await;
    assert_eq!(failed.status.code(), Some(3));
    let text = stdout(&failed);
    assert!(!text.contains("ada@acme.example"), "the old list: {text}");
    assert!(text.contains("failed (auth)"), "{text}");
    assert!(
        text.contains("makesync users --host eu1.make.com --org 1001"),
        "{text}"
    );
    let err = stderr(&failed);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("invalid, expired or revoked"), "{err}");
}

/// `makesync users … | head -1`: once the reader has gone, the command ends quietly with 0.
#[tokio::test]
async fn output_to_a_closed_pipe_ends_quietly_with_success() {
    let cli = Cli::start().await;
    let acme = ["--host", "eu1.make.com", "--org", "1001"];
    let synced = cli
        .run_into_closed_pipe(&[&["sync"][..], &acme].concat())
        .await;
    assert_eq!(synced.status.code(), Some(0), "{}", stderr(&synced));
    assert_eq!(stderr(&synced), "");
    for command in [
        &["users"][..],
        &["users", "--json"],
        &["runs"],
        &["runs", "--json"],
    ] {
        let output = cli.run_into_closed_pipe(&[command, &acme].concat()).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{command:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{command:?}");
    }
    let orgs = cli
        .run_into_closed_pipe(&["orgs", "--host", "eu1.make.com"])
        .await;
    assert_eq!(orgs.status.code(), Some(0), "{}", stderr(&orgs));
    assert_eq!(stderr(&orgs), "");
    let users = cli.run(None, &[&["users"][..], &acme].concat()).await;
    assert!(
        stdout(&users).contains("ada@acme.example"),
        "the sync was kept"
    );
}

/// The closed pipe does not hide a failed sync: its exit code stays.
#[tokio::test]
async fn a_failed_sync_into_a_closed_pipe_keeps_its_exit_code() {
    let cli = Cli::start().await;
    cli.simulator.world().set_revoked(DEMO_TOKEN, true);
    let output = cli
        .run_into_closed_pipe(&["sync", "--host", "eu1.make.com", "--org", "1001"])
        .await;
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
}
