//! One token for several organizations, through the connect handler on moto: discover, connect
//! three organizations with one token (three connections, one secret), rotate it (one secret
//! changed, for all three), disconnect them one by one (the last deletes it). And, in
//! process, an organization on another zone when Make accepts a token only on its own zone.
//! And a White Label instance's connections read 100 at a time by the schedule.

use makesync::connect::{response_json, ConnectService};
use makesync::connection::ConnectionId;
use makesync::credential::CredentialId;
use makesync::ports::{ConnectionStore, UserStore};
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, MemoryStore};
use makesync_tests::aws::{sqs_event, AwsTestEnv};
use makesync_tests::simulator::{
    demo_world, TokenGrant, DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TOKEN,
};
use makesync_tests::{TestEnv, ACME, CELONIS, GLOBEX};
use serde_json::{json, Value};
use std::sync::Arc;

const ROTATED_TOKEN: &str = "sim-token-rotated-for-user-1";

async fn call(env: &AwsTestEnv, payload: Value) -> Value {
    makesync_connect::handle(&env.connect_service(), payload).await
}

/// Runs the worker over whatever is on the queue; the connections it synced.
async fn work(env: &AwsTestEnv) -> usize {
    let messages = env.take_messages().await;
    let count = messages.len();
    let response = makesync_worker::handle(&env.worker(), sqs_event(messages), None).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "every sync succeeds"
    );
    count
}

fn ids(answer: &Value) -> Vec<ConnectionId> {
    answer["organizations"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|o| {
            ConnectionId::parse(o["connectionId"].as_str().unwrap_or_else(|| panic!("{o}")))
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn one_token_for_three_organizations_is_one_secret_rotated_once_and_deleted_with_the_last() {
    let env = AwsTestEnv::start().await;
    env.make.simulator.world().add_token(
        ROTATED_TOKEN,
        TokenGrant::new(1, &["organizations:read", "user:read"]),
    );

    // Discover, then connect what discovery found, each on the host it gave.
    let found = call(
        &env,
        json!({"action": "discover", "tenantId": "tenant-7", "host": "eu1.make.com",
               "token": DEMO_TOKEN}),
    )
    .await;
    let picked = makesync_tests::pick_all_discovered(&found);
    assert_eq!(picked.len(), 3, "{found}");
    let connected = call(
        &env,
        json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "organizations": picked}),
    )
    .await;
    let credential = CredentialId::parse(connected["credentialId"].as_str().unwrap()).unwrap();
    let connections = ids(&connected);
    assert_eq!(connections.len(), 3, "{connected}");
    assert!(connected["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "active" && o["syncEnqueued"] == true));
    let secrets = env.secret_names().await;
    assert_eq!(
        secrets.len(),
        1,
        "one token, three organizations: {secrets:?}"
    );
    assert!(
        secrets[0].contains(&format!("credential-{credential}/")),
        "{secrets:?}"
    );
    for id in &connections {
        let stored = env.backend.store.get_connection(id).await.unwrap().unwrap();
        assert_eq!(stored.credential_id.as_ref(), Some(&credential));
        assert_eq!(stored.token_version, None, "no token of its own");
    }
    assert_eq!(work(&env).await, 3);
    for (id, organization) in connections.iter().zip([ACME, GLOBEX, CELONIS]) {
        let users = env.backend.store.list_users(id).await.unwrap();
        assert_eq!(
            users.len(),
            env.make.simulator.world().organizations[&organization]
                .members
                .len()
        );
    }
    // Discovery now marks all three as this tenant's.
    let again = call(
        &env,
        json!({"action": "discover", "tenantId": "tenant-7", "host": "us2.make.com",
               "token": DEMO_TOKEN}),
    )
    .await;
    let marked: Vec<ConnectionId> = again["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| ConnectionId::parse(o["connectionId"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(marked, connections);

    // A rotation Make refuses for one organization changes nothing.
    let refused = call(
        &env,
        json!({"action": "rotate", "tenantId": "tenant-7", "credentialId": credential.as_str(),
               "token": "sim-token-no-user-read"}),
    )
    .await;
    assert_eq!(refused["error"]["kind"], "permission", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("the old one stays"));
    assert_eq!(env.secret_names().await, secrets);
    // Another tenant cannot rotate it, and is told nothing about it.
    let stranger = call(
        &env,
        json!({"action": "rotate", "tenantId": "tenant-8", "credentialId": credential.as_str(),
               "token": ROTATED_TOKEN}),
    )
    .await;
    assert_eq!(stranger["error"]["kind"], "not_found", "{stranger}");

    // The rotation: one secret replaced, for all three; the old token no longer needed.
    let rotated = call(
        &env,
        json!({"action": "rotate", "tenantId": "tenant-7", "credentialId": credential.as_str(),
               "token": ROTATED_TOKEN}),
    )
    .await;
    let mut rotated_ids = ids(&rotated);
    rotated_ids.sort();
    let mut expected = connections.clone();
    expected.sort();
    assert_eq!(rotated_ids, expected, "{rotated}");
    let after = env.secret_names().await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, secrets, "a new version");
    env.make.simulator.world().set_revoked(DEMO_TOKEN, true);
    assert_eq!(work(&env).await, 3, "each synced with the new token");

    // A connection of the credential cannot be given a token of its own.
    let own = call(
        &env,
        json!({"host": "eu1.make.com", "organizationId": ACME, "token": ROTATED_TOKEN,
               "tenantId": "tenant-7", "connectionId": connections[0].as_str()}),
    )
    .await;
    assert_eq!(own["error"]["kind"], "invalid_input", "{own}");
    assert!(own["error"]["message"].as_str().unwrap().contains("rotate"));

    // Disconnecting: the token stays while a connection uses it, and goes with the last.
    for (n, id) in connections.iter().enumerate() {
        let answer = call(
            &env,
            json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id.as_str()}),
        )
        .await;
        assert_eq!(answer["status"], "disconnected", "{answer}");
        let left = env.secret_names().await.len();
        assert_eq!(left, usize::from(n < 2), "after {} disconnects", n + 1);
    }
    assert_eq!(
        env.backend.store.get_credential(&credential).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn disconnecting_a_credential_disconnects_its_connections_and_deletes_its_token() {
    let env = AwsTestEnv::start().await;
    let connected = call(
        &env,
        json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "host": "eu1.make.com",
               "organizations": [{"organizationId": ACME},
                                 {"organizationId": GLOBEX, "host": "us2.make.com"}]}),
    )
    .await;
    let credential = connected["credentialId"].as_str().unwrap().to_string();
    assert_eq!(env.secret_names().await.len(), 1);
    let gone = call(
        &env,
        json!({"action": "disconnect", "tenantId": "tenant-7", "credentialId": credential}),
    )
    .await;
    assert!(gone["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "disconnected"));
    assert!(env.secret_names().await.is_empty());
}

/// An in-memory connect service on a simulator where tokens are accepted only on their own
/// zone, or everywhere.
async fn zoned(cross_zones: bool) -> (TestEnv, ConnectService, Arc<MemorySecrets>) {
    let mut world = demo_world();
    world.faults.tokens_cross_zones = cross_zones;
    world.add_token(
        "sim-token-made-on-eu1",
        TokenGrant {
            zone: Some("eu1.make.com".into()),
            ..TokenGrant::new(1, &["organizations:read", "user:read"])
        },
    );
    let env = TestEnv::start_with(world, |_| {}).await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let service = ConnectService::new(
        store.clone(),
        store,
        secrets.clone(),
        Arc::new(MemoryQueue::default()),
        env.make.clone(),
        env.clock_arc(),
    );
    (env, service, secrets)
}

#[tokio::test]
async fn an_organization_on_a_zone_that_refuses_the_token_says_which_host_and_the_others_connect() {
    for cross_zones in [false, true] {
        let (_env, service, secrets) = zoned(cross_zones).await;
        let payload = json!({"tenantId": "tenant-7", "token": "sim-token-made-on-eu1",
            "organizations": [{"organizationId": ACME, "host": "eu1.make.com"},
                              {"organizationId": GLOBEX, "host": "us2.make.com"}]});
        let answer = response_json(&service.handle_payload(&payload).await);
        let results = answer["organizations"].as_array().unwrap();
        assert_eq!(results[0]["status"], "active", "{answer}");
        if cross_zones {
            assert_eq!(results[1]["status"], "active", "{answer}");
        } else {
            assert!(results[1].get("connectionId").is_none(), "{answer}");
            assert_eq!(results[1]["error"]["kind"], "auth");
            let message = results[1]["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("on us2.make.com:"), "{message}");
            assert!(
                message.contains("create a token on us2.make.com"),
                "{message}"
            );
        }
        assert_eq!(secrets.len(), 1, "one secret either way");
        assert!(!answer.to_string().contains("sim-token-made-on-eu1"));
    }
}

#[tokio::test]
async fn nothing_is_stored_when_no_organization_is_confirmed() {
    let (_env, service, secrets) = zoned(true).await;
    let payload = json!({"tenantId": "tenant-7", "token": "sim-token-outsider",
        "organizations": [{"organizationId": ACME, "host": "eu1.make.com"},
                          {"organizationId": 1, "host": "collector.example"}]});
    let answer = response_json(&service.handle_payload(&payload).await);
    assert_eq!(answer["credentialId"], Value::Null, "{answer}");
    let results = answer["organizations"].as_array().unwrap();
    assert_eq!(results[0]["error"]["kind"], "permission");
    assert_eq!(results[1]["error"]["kind"], "invalid_input");
    assert!(secrets.is_empty());
}

#[tokio::test]
async fn overlapping_disconnects_and_a_rotation_lose_no_connection_and_leave_no_secret() {
    let env = AwsTestEnv::start().await;
    env.make.simulator.world().add_token(
        ROTATED_TOKEN,
        TokenGrant::new(1, &["organizations:read", "user:read"]),
    );
    let connected = call(
        &env,
        json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "organizations": [
            {"organizationId": ACME, "host": "eu1.make.com"},
            {"organizationId": GLOBEX, "host": "us2.make.com"},
            {"organizationId": CELONIS, "host": "eu1.make.celonis.com"}]}),
    )
    .await;
    let credential = CredentialId::parse(connected["credentialId"].as_str().unwrap()).unwrap();
    let connections = ids(&connected);

    // A rotation and a disconnect at once: whichever lands first, the credential ends with
    // the two other connections and exactly one secret, the one it names.
    let rotate = call(
        &env,
        json!({"action": "rotate", "tenantId": "tenant-7", "credentialId": credential.as_str(),
               "token": ROTATED_TOKEN}),
    );
    let disconnect = call(
        &env,
        json!({"action": "disconnect", "tenantId": "tenant-7",
               "connectionId": connections[0].as_str()}),
    );
    let (rotated, disconnected) = tokio::join!(rotate, disconnect);
    assert_eq!(disconnected["status"], "disconnected", "{disconnected}");
    let stored = env
        .backend
        .store
        .get_credential(&credential)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.connections,
        connections[1..].iter().cloned().collect(),
        "{rotated}"
    );
    let secrets = env.secret_names().await;
    assert_eq!(secrets.len(), 1, "{secrets:?} ({rotated})");
    assert!(secrets[0].ends_with(stored.token_ref().path().as_str()));

    // The other two disconnected at once: the credential and its secret go, once.
    let (a, b) = tokio::join!(
        call(
            &env,
            json!({"action": "disconnect", "tenantId": "tenant-7",
                   "connectionId": connections[1].as_str()}),
        ),
        call(
            &env,
            json!({"action": "disconnect", "tenantId": "tenant-7",
                   "connectionId": connections[2].as_str()}),
        )
    );
    assert_eq!(a["status"], "disconnected", "{a}");
    assert_eq!(b["status"], "disconnected", "{b}");
    assert_eq!(
        env.backend.store.get_credential(&credential).await.unwrap(),
        None
    );
    assert!(env.secret_names().await.is_empty());
}

/// Following a White Label instance of 249 connected organizations, a schedule reads their
/// connections 100 at a time: 3 `BatchGetItem` requests to follow the instance and 3 to
/// enqueue them as the follow left them, no `GetItem` per organization.
#[tokio::test]
async fn a_schedule_reads_an_instance_s_connections_a_hundred_at_a_time() {
    let env = AwsTestEnv::start().await;
    {
        let mut world = env.make.simulator.world();
        for n in 0..246 {
            world.add_organization(
                6000 + n,
                &format!("Partner {n:03}"),
                DEMO_INSTANCE_HOST,
                Some(60),
            );
        }
    }
    let followed = call(
        &env,
        json!({"action": "connect-instance", "tenantId": "tenant-wl", "host": DEMO_INSTANCE_HOST,
               "token": DEMO_INSTANCE_TOKEN, "autoConnect": true}),
    )
    .await;
    let connected = followed["organizations"]
        .as_array()
        .unwrap_or_else(|| panic!("{followed}"))
        .len();
    assert_eq!(
        connected, 249,
        "246 added, and the demo's 5001, 5002 and 5004"
    );
    env.take_messages().await;

    // The scheduler's AWS calls go through a recording proxy.
    let (backend, proxy) = env.recorded_backend(&env.settings).await;
    let scheduler = makesync_scheduler::scheduler_for(
        &backend,
        env.make.make.clone(),
        env.clock(),
        Arc::new(makesync::metrics::NoMetrics),
    )
    .unwrap();
    let summary = makesync_scheduler::handle(&scheduler).await.unwrap();
    assert_eq!(summary.instances, 1, "{summary:?}");
    assert_eq!(
        summary.enqueued,
        249 - 1,
        "Delta's API is disabled (apiLimit 0)"
    );

    let table = &env.settings.connections_table;
    let count = |action: &str| {
        proxy
            .calls()
            .iter()
            .filter(|call| call.action == action && call.resources.contains(table))
            .count()
    };
    assert_eq!(count("dynamodb:BatchGetItem"), 3 + 3);
    assert_eq!(count("dynamodb:GetItem"), 0);
}

/// A connection that left its credential (disconnected) is reached again by a connect of its
/// organization: the same connection, on a token of its own; one still on its credential is
/// told to rotate.
#[tokio::test]
async fn a_connection_that_left_its_credential_is_connected_again_on_a_token_of_its_own() {
    let env = AwsTestEnv::start().await;
    let several = call(
        &env,
        json!({"tenantId": "tenant-7", "token": DEMO_TOKEN, "organizations": [
            {"organizationId": ACME, "host": "eu1.make.com"},
            {"organizationId": GLOBEX, "host": "us2.make.com"}]}),
    )
    .await;
    let [acme, _globex] = ids(&several).try_into().unwrap();
    work(&env).await;
    let single = json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
                        "tenantId": "tenant-7"});
    let refused = call(&env, single.clone()).await;
    assert_eq!(refused["error"]["kind"], "invalid_input", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rotate"),
        "{refused}"
    );

    let left = call(
        &env,
        json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": acme.as_str()}),
    )
    .await;
    assert_eq!(left["status"], "disconnected", "{left}");
    let again = call(&env, single).await;
    assert_eq!(again["connectionId"], acme.as_str(), "{again}");
    assert_eq!(again["status"], "active", "{again}");
    let stored = env.stored_connection(&acme).await;
    assert_eq!(stored.credential_id, None);
    assert!(env
        .secret_names()
        .await
        .iter()
        .any(|name| name.contains(&format!("{acme}/"))));
    assert_eq!(work(&env).await, 1);
    let status = call(
        &env,
        json!({"action": "status", "tenantId": "tenant-7", "connectionId": acme.as_str()}),
    )
    .await;
    assert_eq!(status["lastRun"]["outcome"], "succeeded", "{status}");
    assert!(status.get("credentialId").is_none(), "{status}");
}

// ---------------------------------------------------------------- requestId and instance bounds on DynamoDB

#[tokio::test]
async fn an_instance_followed_with_a_request_id_answers_the_same_when_sent_again() {
    let env = AwsTestEnv::start().await;
    {
        let mut world = env.make.simulator.world();
        for k in 0..3u64 {
            let name = format!("{k:04}{}", "N".repeat(10));
            world.add_organization(
                880_000 + k,
                &name,
                makesync_tests::simulator::DEMO_INSTANCE_HOST,
                Some(60),
            );
        }
    }
    let follow = json!({"action": "connect-instance", "tenantId": "tenant-wl",
        "host": DEMO_INSTANCE_HOST, "token": DEMO_INSTANCE_TOKEN, "autoConnect": true,
        "requestId": "follow-1"});
    let first = call(&env, follow.clone()).await;
    assert!(first.get("error").is_none(), "{first}");
    eprintln!(
        "first answer: {} bytes, {} organizations",
        first.to_string().len(),
        first["organizations"].as_array().map_or(0, Vec::len)
    );
    let again = call(&env, follow).await;
    assert!(
        again == first,
        "sent again with its requestId, answered differently: note {}, runId of the first organization {} (first: {})",
        again["note"],
        again["organizations"][0]["runId"],
        first["organizations"][0]["runId"]
    );
}

/// On DynamoDB: a requestId sent again after its day acts once (a new request), and its
/// answer takes the expired item's place (DynamoDB's TTL deletes it only some time after).
#[tokio::test]
async fn on_dynamodb_a_request_id_is_kept_a_day_then_answers_anew() {
    let env = AwsTestEnv::start().await;
    let connected = call(
        &env,
        json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
               "tenantId": "tenant-7"}),
    )
    .await;
    assert_eq!(connected["status"], "active", "{connected}");
    env.take_messages().await;
    let sync = json!({"action": "sync", "tenantId": "tenant-7", "requestId": "job-7",
                      "connectionId": connected["connectionId"]});
    call(&env, sync.clone()).await;
    env.make
        .clock
        .advance(std::time::Duration::from_secs(25 * 3600));
    let next_day = call(&env, sync.clone()).await;
    let again = call(&env, sync).await;
    let queued = env.take_messages().await.len();
    assert_eq!(
        queued, 2,
        "one sync the first day, one the next: next day {next_day}, sent again {again}"
    );
}

/// On DynamoDB: a token pasted into `requestId` never becomes a key of the runs table.
#[tokio::test]
async fn on_dynamodb_no_token_is_a_runs_table_key() {
    let env = AwsTestEnv::start().await;
    let connected = call(
        &env,
        json!({"host": "eu1.make.com", "organizationId": ACME,
               "token": format!("{DEMO_TOKEN}\n"), "requestId": DEMO_TOKEN,
               "tenantId": "tenant-7"}),
    )
    .await;
    let items = env
        .dynamodb
        .scan()
        .table_name(&env.settings.runs_table)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = items
        .items()
        .iter()
        .filter_map(|item| item.get("connectionId")?.as_s().ok().cloned())
        .collect();
    assert!(
        !keys.iter().any(|k| k.contains(DEMO_TOKEN)),
        "the token is a key of the runs table: {keys:?} (answered {connected})"
    );
}

/// Deleted organizations, which Make lists for good, are not written into the credential's
/// `seen`: an instance of 5,000 live organizations and 35,000 deleted ones is still followed
/// (its credential item stays within what DynamoDB takes).
#[tokio::test]
async fn deleted_organizations_do_not_grow_the_credential_past_an_item() {
    use makesync::ports::ConnectionStore;
    let env = AwsTestEnv::start().await;
    let host = env.make.make.allowlist().admit(DEMO_INSTANCE_HOST).unwrap();
    let tenant = makesync::tenant::TenantId::parse("tenant-wl").unwrap();
    let id = CredentialId::generate();
    let secret = id.new_token_version();
    let mut credential = makesync::credential::Credential::new(
        tenant,
        host.clone(),
        &secret,
        id.clone(),
        env.clock().wall(),
    );
    // Not connecting them keeps the test to the credential's item (connecting 5,000
    // organizations is what makes it slow, most of all on dynalite).
    let auto_connect = false;
    credential.instance = Some(makesync::credential::InstanceFollow {
        auto_connect,
        ..Default::default()
    });
    assert!(env
        .backend
        .store
        .create_credential(&credential)
        .await
        .unwrap());
    let follower = makesync::instance::InstanceFollower::new(
        env.backend.store.clone(),
        env.backend.store.clone(),
        env.backend.secrets.clone(),
        env.make.make.clone(),
        env.clock(),
    );
    // Before `seen` kept only live organizations, this failed from about 60,000 deleted with
    // autoConnect off (from 35,000 with it on).
    let deleted: u64 = 60_000;
    let org = |id: u64, deleted: bool| makesync::discover::DiscoveredOrganization {
        id,
        name: format!("Org {id}"),
        host: Some(host.to_string()),
        zone: None,
        host_allowed: true,
        host_note: None,
        paused: Some(false),
        deleted: deleted.then_some(true),
        api_limit: Some(60),
        external_id: None,
        connection_id: None,
    };
    let listed: Vec<_> = (0..5_000u64)
        .map(|k| org(1_000_000 + k, false))
        .chain((0..deleted).map(|k| org(2_000_000 + k, true)))
        .collect();
    let followed = follower.apply(&credential, listed).await;
    assert!(
        followed.is_ok(),
        "5,000 live organizations and {deleted} deleted: {:?}",
        followed.err()
    );
}

// ---------------------------------------------------------------- a hostile instance host, through the scheduler

/// Names the measurement the ignored test below makes, in a process of its own.
const HOSTILE_INSTANCE_CASE: &str = "MAKESYNC_HOSTILE_INSTANCE_CASE";

/// The scheduler function's memory (the template's `MemorySize`).
const SCHEDULER_MEMORY: u64 = 256 * 1024 * 1024;

/// A White Label host whose organizations list never ends, in pages of 16 MB: 10,000
/// well-formed rows of 1.6 KB each (a name of 1,000 bytes, within what makesync reads, and a
/// field it skips), every page full and anchored on the one before.
fn endless_sixteen_mb_pages() -> makesync_tests::hostile_host::HostileHost {
    use makesync_tests::hostile_host::{endless_page, Asked, HostileHost};
    HostileHost::new(|asked: &Asked| {
        (asked.path == "/admin/organizations").then(|| {
            endless_page("organizations", asked, |id| {
                format!(
                    r#"{{"id":{id},"name":"{}","note":"{}"}}"#,
                    "O".repeat(1_000),
                    "N".repeat(600)
                )
            })
        })
    })
}

#[tokio::test]
#[ignore = "one measurement, run in a process of its own by the test below"]
async fn measure_a_schedule_following_a_hostile_instance() {
    use makesync_tests::measure::{measure_peak, status_bytes};
    if std::env::var(HOSTILE_INSTANCE_CASE).is_err() {
        return;
    }
    let env = AwsTestEnv::start().await;
    // Another tenant's connection, and the instance followed, both through connect while the
    // instance's host answered as Make does.
    let other = call(
        &env,
        json!({"tenantId": "tenant-7", "host": "eu1.make.com", "organizationId": ACME,
               "token": DEMO_TOKEN}),
    )
    .await;
    let other = other["connectionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{other}"))
        .to_string();
    let followed = call(
        &env,
        json!({"action": "connect-instance", "tenantId": "tenant-wl", "host": DEMO_INSTANCE_HOST,
               "token": DEMO_INSTANCE_TOKEN, "autoConnect": true}),
    )
    .await;
    assert!(followed["organizations"].is_array(), "{followed}");
    env.take_messages().await;

    // The schedule, once the instance's host answers endless 16 MB pages, read as the
    // template's scheduler reads them (a 256 MB function, the instance's host allowed).
    let hostile = Arc::new(endless_sixteen_mb_pages());
    let config = makesync::config::make_api_config_from(|name| match name {
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("256".to_string()),
        "MAKESYNC_EXTRA_HOSTS" => Some(DEMO_INSTANCE_HOST.to_string()),
        _ => None,
    })
    .unwrap();
    let make = makesync::make::MakeApi::with_transport(config, env.clock(), hostile.clone());
    let scheduler = makesync_scheduler::scheduler_for(
        &env.backend,
        make,
        env.clock(),
        Arc::new(makesync::metrics::NoMetrics),
    )
    .unwrap();
    let (summary, growth) = measure_peak(makesync_scheduler::handle(&scheduler)).await;
    let peak = status_bytes("VmHWM:");
    let enqueued: Vec<String> = env
        .take_messages()
        .await
        .iter()
        .map(|m| {
            makesync::queue::SyncRequest::parse(m.body.as_deref().unwrap())
                .unwrap()
                .connection_id
                .to_string()
        })
        .collect();
    println!(
        "growth {growth} peak {peak} requests {} other-enqueued {} summary {summary:?}",
        hostile.requests(),
        enqueued.contains(&other),
    );
}

/// A followed White Label host that answers endless 16 MB pages of organizations costs the
/// scheduler function far less than its memory — the listing stops at its bound while it is
/// read — and the other tenants' connections are enqueued all the same.
#[test]
fn a_hostile_instance_host_stays_within_the_scheduler_s_memory_and_stalls_no_tenant() {
    let line = makesync_tests::measure::run_measured(
        "measure_a_schedule_following_a_hostile_instance",
        HOSTILE_INSTANCE_CASE,
        "16 MB pages",
    );
    println!("a schedule following an instance host of endless 16 MB pages: growth {line}");
    let mut words = line.split(' ');
    let growth: u64 = words.next().unwrap().parse().unwrap();
    let peak: u64 = words.nth(1).unwrap().parse().unwrap();
    let requests: usize = words.nth(1).unwrap().parse().unwrap();
    assert!(line.contains("other-enqueued true"), "{line}");
    assert!(requests >= 1, "the instance's host was asked: {line}");
    // The reads' bound of a 256 MB function (78 MB) and a page in flight.
    assert!(growth < 96 * 1024 * 1024, "+{} MB: {line}", growth >> 20);
    assert!(peak < SCHEDULER_MEMORY, "peak {} MB: {line}", peak >> 20);
}
