//! Least privilege that a test keeps true: each function's IAM statements in
//! `infra/template.yaml` are exactly the calls its code makes, and nothing else.
//!
//! Each function's handler runs its flows with SDK clients that go through a recording proxy
//! in front of moto; every call becomes an IAM action on a template resource. Added to those:
//! the calls Lambda makes with the function's role for its event source or failure
//! destination (documented by AWS, listed below). The template's statements are read per
//! function and compared both ways — a call the template does not grant fails (the function
//! would be denied in AWS), and a grant no call uses fails (it is wider than needed). With
//! `KmsKeyArn` set, the KMS actions each function needs follow from its queues and secrets.
//! A shared token's secret (`{prefix}credential-…`) is its own resource, `CredentialSecrets`,
//! so that the scheduler — which reads only those — can be granted them alone.

use makesync::connection::ConnectionId;
use makesync::ports::{ConnectionStore, UserStore};
use makesync_simulator::DEMO_TOKEN;
use makesync_tests::aws::{moto_sdk_config, sqs_event, AwsTestEnv};
use makesync_tests::fault_proxy::AwsCall;
use makesync_tests::stream::{bus_to_queue, StreamReader};
use makesync_tests::{ACME, CELONIS, GLOBEX};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};

/// An IAM action on a template resource (its logical id; `TokenSecrets` for the secrets
/// under the prefix, `UsersTable.StreamArn` for the stream).
type Grant = (String, String);

/// What Lambda itself calls with a function's role (AWS Lambda developer guide: "Execution
/// role permissions" for an SQS event source, for a DynamoDB stream event source, and for an
/// SQS on-failure destination or dead-letter queue).
fn lambda_calls(function: &str) -> Vec<Grant> {
    let grants: &[(&str, &str)] = match function {
        "SchedulerFunction" => &[("sqs:SendMessage", "FailureQueue")],
        "WorkerFunction" => &[
            ("sqs:ReceiveMessage", "SyncQueue"),
            ("sqs:DeleteMessage", "SyncQueue"),
            ("sqs:GetQueueAttributes", "SyncQueue"),
        ],
        "EventsFunction" => &[
            ("dynamodb:DescribeStream", "UsersTable.StreamArn"),
            ("dynamodb:GetRecords", "UsersTable.StreamArn"),
            ("dynamodb:GetShardIterator", "UsersTable.StreamArn"),
            ("dynamodb:ListStreams", "UsersTable.StreamArn"),
            ("dynamodb:DescribeStream", "ConnectionsTable.StreamArn"),
            ("dynamodb:GetRecords", "ConnectionsTable.StreamArn"),
            ("dynamodb:GetShardIterator", "ConnectionsTable.StreamArn"),
            ("dynamodb:ListStreams", "ConnectionsTable.StreamArn"),
            ("sqs:SendMessage", "FailureQueue"),
        ],
        _ => &[],
    };
    grants
        .iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect()
}

/// The KMS actions a call needs when the queues and secrets use the customer key: sending to
/// an encrypted queue or creating an encrypted secret makes a data key; receiving or reading
/// decrypts one (SQS and Secrets Manager developer guides, "key management").
fn kms_needed(grants: &BTreeSet<Grant>) -> BTreeSet<String> {
    let mut kms = BTreeSet::new();
    for (action, _) in grants {
        let needs: &[&str] = match action.as_str() {
            "sqs:SendMessage" | "secretsmanager:CreateSecret" => {
                &["kms:Decrypt", "kms:GenerateDataKey"]
            }
            "sqs:ReceiveMessage" | "secretsmanager:GetSecretValue" => &["kms:Decrypt"],
            _ => &[],
        };
        kms.extend(needs.iter().map(|n| n.to_string()));
    }
    kms
}

/// Names the resources of one test environment by the template's logical ids.
struct ResourceNames(BTreeMap<String, String>);

impl ResourceNames {
    fn of(env: &AwsTestEnv, bus: &str) -> Self {
        let queue = env.settings.queue_url.as_deref().unwrap();
        Self(BTreeMap::from([
            (
                env.settings.connections_table.clone(),
                "ConnectionsTable".into(),
            ),
            (
                format!(
                    "{}/index/{}",
                    env.settings.connections_table,
                    makesync::aws::TENANT_INDEX
                ),
                "ConnectionsTable/index/byTenant".into(),
            ),
            (env.settings.users_table.clone(), "UsersTable".into()),
            (
                env.settings.credentials_table.clone(),
                "CredentialsTable".into(),
            ),
            (env.settings.runs_table.clone(), "SyncRunsTable".into()),
            (
                queue.rsplit('/').next().unwrap().to_string(),
                "SyncQueue".into(),
            ),
            (bus.to_string(), "EventBus".into()),
        ]))
    }

    /// The grants a recorded call needs.
    fn grants(&self, call: &AwsCall, secret_prefix: &str) -> Vec<Grant> {
        let action = match call.action.as_str() {
            // Batch calls are authorised as their single forms.
            "sqs:SendMessageBatch" => "sqs:SendMessage".to_string(),
            "sqs:DeleteMessageBatch" => "sqs:DeleteMessage".to_string(),
            other => other.to_string(),
        };
        let mut grants = Vec::new();
        for resource in &call.resources {
            let logical = if resource.starts_with(&format!("{secret_prefix}credential-")) {
                // A shared token's secret: granted as such, or as any token secret.
                "CredentialSecrets".to_string()
            } else if resource.starts_with(secret_prefix) {
                "TokenSecrets".to_string()
            } else {
                self.0
                    .get(resource)
                    .unwrap_or_else(|| {
                        panic!("{} names an unknown resource {resource}", call.action)
                    })
                    .clone()
            };
            grants.push((action.clone(), logical.clone()));
            // Tags given with CreateSecret are authorised as TagResource too.
            if action == "secretsmanager:CreateSecret" {
                grants.push(("secretsmanager:TagResource".into(), logical));
            }
        }
        assert!(!grants.is_empty(), "{call:?} names no resource");
        grants
    }
}

fn connection_id(answer: &Value) -> ConnectionId {
    ConnectionId::parse(
        answer["connectionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}")),
    )
    .unwrap()
}

/// Runs every flow of the four functions; returns each function's calls as grants.
async fn calls_by_function() -> BTreeMap<String, BTreeSet<Grant>> {
    let env = AwsTestEnv::start_with(&[("MAKESYNC_PAUSE_AFTER_FAILURES", "1")]).await;
    let (bus, _bus_queue) = bus_to_queue(&env).await;
    let settings = makesync::aws::AwsSettings {
        event_bus: Some(bus.clone()),
        ..env.settings.clone()
    };
    let names = ResourceNames::of(&env, &bus);
    let (connect_backend, connect_proxy) = env.recorded_backend(&settings).await;
    let (worker_backend, worker_proxy) = env.recorded_backend(&settings).await;
    let (scheduler_backend, scheduler_proxy) = env.recorded_backend(&settings).await;
    let (events_backend, events_proxy) = env.recorded_backend(&settings).await;
    let clock = env.clock();
    let connect =
        makesync_connect::service_for(&connect_backend, env.make.make.clone(), clock.clone())
            .unwrap();
    let worker = makesync_worker::worker_for(
        &worker_backend,
        env.make.make.clone(),
        clock.clone(),
        env.metrics.clone(),
    );
    let scheduler = makesync_scheduler::scheduler_for(
        &scheduler_backend,
        env.make.make.clone(),
        clock.clone(),
        env.metrics.clone(),
    )
    .unwrap();
    let announcer = makesync_events::announcer_for(&events_backend).unwrap();
    let mut stream = StreamReader::new(&moto_sdk_config().await, &env.settings.users_table);
    let call = |payload: Value| {
        let connect = connect.clone();
        async move { makesync_connect::handle(&connect, payload).await }
    };
    let work = |worker: &makesync::worker::Worker| {
        let worker = worker.clone();
        let env = &env;
        async move {
            let messages = env.take_messages().await;
            makesync_worker::handle(&worker, sqs_event(messages), None).await
        }
    };

    // Connect, the first sync, a change and the next sync, its events.
    let acme = connection_id(
        &call(
            json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
                     "tenantId": "tenant-1"}),
        )
        .await,
    );
    work(&worker).await;
    makesync_events::handle(&announcer, stream.next_event().await).await;
    // Discovery: which of the token's organizations the tenant connects already.
    let found = call(json!({"action": "discover", "tenantId": "tenant-1",
        "host": "eu1.make.com", "token": DEMO_TOKEN}))
    .await;
    assert_eq!(
        found["organizations"][0]["connectionId"],
        acme.as_str(),
        "{found}"
    );
    env.make
        .simulator
        .world()
        .remove_member(ACME, 2)
        .set_role(ACME, 4, 12);
    let again =
        call(json!({"action": "sync", "tenantId": "tenant-1", "connectionId": acme.as_str()}))
            .await;
    assert_eq!(again["syncEnqueued"], true, "{again}");
    work(&worker).await;
    makesync_events::handle(&announcer, stream.next_event().await).await;
    // A reconnect with a new token; the scheduler's fan-out and the syncs it asks for.
    let reconnected = call(json!({"host": "eu1.make.com", "organizationId": ACME,
        "token": DEMO_TOKEN, "tenantId": "tenant-1", "connectionId": acme.as_str()}))
    .await;
    assert_eq!(reconnected["status"], "active", "{reconnected}");
    makesync_scheduler::handle(&scheduler).await.unwrap();
    work(&worker).await;
    // A sync whose users were closed meanwhile (a disconnect) is refused as stale and reads
    // the write guard to say by what.
    let later = clock.wall() + chrono::Duration::hours(1);
    env.backend.store.close_users(&acme, later).await.unwrap();
    call(json!({"action": "sync", "tenantId": "tenant-1", "connectionId": acme.as_str()})).await;
    work(&worker).await;
    // A failing sync pauses (pause after one failure is not the default: the failure is
    // recorded either way).
    env.make
        .simulator
        .world()
        .faults
        .unavailable_organizations
        .insert(ACME);
    call(json!({"action": "sync", "tenantId": "tenant-1", "connectionId": acme.as_str()})).await;
    work(&worker).await;
    env.make
        .simulator
        .world()
        .faults
        .unavailable_organizations
        .clear();
    // A refused token pauses the connection (after one failure here); resume reads the stored
    // token to check it with Make; status reads the newest run; list reads the tenant's.
    env.make.simulator.world().set_revoked(DEMO_TOKEN, true);
    call(json!({"action": "sync", "tenantId": "tenant-1", "connectionId": acme.as_str()})).await;
    work(&worker).await;
    env.make.simulator.world().set_revoked(DEMO_TOKEN, false);
    let resumed = call(json!({"action": "resume", "tenantId": "tenant-1",
        "connectionId": acme.as_str(), "requestId": "resume-1"}))
    .await;
    assert_eq!(resumed["status"], "active", "{resumed}");
    work(&worker).await;
    let status =
        call(json!({"action": "status", "tenantId": "tenant-1", "connectionId": acme.as_str()}))
            .await;
    assert_eq!(status["lastRun"]["outcome"], "succeeded", "{status}");
    let listed = call(json!({"action": "list", "tenantId": "tenant-1"})).await;
    assert_eq!(
        listed["connections"][0]["connectionId"],
        acme.as_str(),
        "{listed}"
    );
    let users = call(json!({"action": "users", "tenantId": "tenant-1",
        "connectionId": acme.as_str(), "limit": 10}))
    .await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(10), "{users}");
    // An erasure with no sync in flight; one with a sync in flight, which the erase job waits
    // out; both run by the worker from the queue, the second cut off by its deadline and
    // continued in a new message.
    let globex = connection_id(
        &call(
            json!({"host": "us2.make.com", "organizationId": GLOBEX, "token": DEMO_TOKEN,
                     "tenantId": "tenant-1"}),
        )
        .await,
    );
    let celonis = connection_id(
        &call(
            json!({"host": "eu1.make.celonis.com", "organizationId": CELONIS, "token": DEMO_TOKEN,
                     "tenantId": "tenant-1"}),
        )
        .await,
    );
    work(&worker).await;
    let purged = call(json!({"action": "disconnect", "tenantId": "tenant-1",
        "connectionId": globex.as_str(), "purge": true}))
    .await;
    assert_eq!(purged["status"], "erasing", "{purged}");
    let erased = work(&worker).await;
    assert!(erased.batch_item_failures.is_empty());
    let now = clock.wall();
    assert!(env
        .backend
        .store
        .acquire_lease(&celonis, now, now + chrono::Duration::minutes(5))
        .await
        .unwrap());
    let queued = call(json!({"action": "disconnect", "tenantId": "tenant-1",
        "connectionId": celonis.as_str(), "purge": true}))
    .await;
    assert_eq!(queued["purgeQueued"], true, "{queued}");
    let waiting = work(&worker).await;
    assert_eq!(
        waiting.batch_item_failures.len(),
        1,
        "the erase job waits for the sync"
    );
    env.backend.store.release_lease(&celonis).await.unwrap();
    env.send_raw(
        &makesync::queue::SyncRequest::new(
            celonis.clone(),
            makesync::run::SyncReason::Erase,
            clock.wall(),
        )
        .to_body(),
    )
    .await;
    let messages = env.take_messages().await;
    // Ten seconds left: cut off at once, it goes on in a new message.
    let soon = makesync::worker::Deadline::at(
        clock.wall() + chrono::Duration::seconds(10),
        clock.as_ref(),
    );
    makesync_worker::handle(&worker, sqs_event(messages), Some(soon)).await;
    let erased = work(&worker).await;
    assert!(erased.batch_item_failures.is_empty());
    assert!(env
        .backend
        .store
        .list_users(&celonis)
        .await
        .unwrap()
        .is_empty());

    // Several organizations on one token: one credential; its rotation; its disconnect.
    let several = call(
        json!({"tenantId": "tenant-1", "token": DEMO_TOKEN, "organizations": [
        {"organizationId": ACME, "host": "eu1.make.com"},
        {"organizationId": GLOBEX, "host": "us2.make.com"}]}),
    )
    .await;
    let credential = several["credentialId"]
        .as_str()
        .unwrap_or_else(|| panic!("{several}"))
        .to_string();
    work(&worker).await;
    let rotated = call(json!({"action": "rotate", "tenantId": "tenant-1",
        "credentialId": credential, "token": DEMO_TOKEN}))
    .await;
    assert!(rotated.get("error").is_none(), "{rotated}");
    let gone = call(json!({"action": "disconnect", "tenantId": "tenant-1",
        "credentialId": credential}))
    .await;
    assert!(gone.get("error").is_none(), "{gone}");
    // A White Label instance followed; at the next schedule one organization is new, one
    // deleted: the scheduler brings the connections in line and announces it.
    let instance = call(json!({"action": "connect-instance", "tenantId": "tenant-1",
        "host": makesync_tests::simulator::DEMO_INSTANCE_HOST,
        "token": makesync_tests::simulator::DEMO_INSTANCE_TOKEN, "autoConnect": true}))
    .await;
    assert!(instance.get("error").is_none(), "{instance}");
    work(&worker).await;
    {
        let mut world = env.make.simulator.world();
        world.add_organization(
            5005,
            "Partner Epsilon",
            makesync_tests::simulator::DEMO_INSTANCE_HOST,
            Some(60),
        );
        world.delete_in_instance(5001);
    }
    // The follow loses its conditional writes: the new organization's connection is there
    // already (a follow that failed part-way made it), and another writer changed the
    // credential first. It reads what won (GetItem) and goes on from it.
    let credential_id =
        makesync::credential::CredentialId::parse(instance["credentialId"].as_str().unwrap())
            .unwrap();
    let mut made = makesync::connection::Connection::new(
        credential_id.connection_for(makesync::organization::OrganizationId::new(5005).unwrap()),
        makesync::tenant::TenantId::parse("tenant-1").unwrap(),
        makesync::host::MakeHost::parse(makesync_tests::simulator::DEMO_INSTANCE_HOST).unwrap(),
        makesync::organization::OrganizationId::new(5005).unwrap(),
        clock.wall(),
    );
    made.credential_id = Some(credential_id);
    assert!(env.backend.store.create_connection(&made).await.unwrap());
    scheduler_proxy.fail_next(
        "dynamodb:PutItem",
        &env.settings.credentials_table,
        "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
    );
    makesync_scheduler::handle(&scheduler).await.unwrap();
    work(&worker).await;

    let prefix = &env.settings.secret_prefix;
    let mut by_function = BTreeMap::new();
    for (function, proxy) in [
        ("ConnectFunction", &connect_proxy),
        ("WorkerFunction", &worker_proxy),
        ("SchedulerFunction", &scheduler_proxy),
        ("EventsFunction", &events_proxy),
    ] {
        let mut grants: BTreeSet<Grant> = proxy
            .calls()
            .iter()
            .flat_map(|call| names.grants(call, prefix))
            .collect();
        grants.extend(lambda_calls(function));
        by_function.insert(function.to_string(), grants);
    }
    by_function
}

/// What the template grants each function: its statements as (action, resource) pairs, and
/// the KMS actions of its `!If [HasKmsKey, …]` statement.
fn template_grants() -> BTreeMap<String, (BTreeSet<Grant>, BTreeSet<String>)> {
    let template = makesync_tests::template::template();
    let mut functions = BTreeMap::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap().to_string();
        assert!(
            resource["Properties"].get("Events").is_none_or(|events| {
                events
                    .as_mapping()
                    .unwrap()
                    .values()
                    .all(|e| e["Type"].as_str() == Some("Schedule"))
            }),
            "{name}: an SQS or DynamoDB event in SAM adds a managed poller policy on every resource"
        );
        let mut grants = BTreeSet::new();
        let mut kms = BTreeSet::new();
        for policy in resource["Properties"]["Policies"].as_sequence().unwrap() {
            for statement in policy["Statement"].as_sequence().unwrap() {
                let (statement, conditional) = match statement {
                    Yaml::Tagged(tagged) if tagged.tag == "!If" => {
                        let branches = tagged.value.as_sequence().unwrap();
                        assert_eq!(branches[0].as_str(), Some("HasKmsKey"), "{name}");
                        (&branches[1], true)
                    }
                    plain => (plain, false),
                };
                assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{name}");
                let actions = strings(&statement["Action"]);
                if conditional {
                    assert_eq!(resource_names(&statement["Resource"]), vec!["KmsKey"]);
                    kms.extend(actions);
                    continue;
                }
                for resource in resource_names(&statement["Resource"]) {
                    for action in &actions {
                        grants.insert((action.clone(), resource.clone()));
                    }
                }
            }
        }
        functions.insert(name, (grants, kms));
    }
    functions
}

fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(items) => items.iter().flat_map(strings).collect(),
        other => panic!("not a string or list: {other:?}"),
    }
}

/// A statement's resources by logical id: `!GetAtt X.Arn` is X, `!GetAtt X.StreamArn` is
/// `X.StreamArn`, the secret prefix's ARN is `TokenSecrets`, `!Ref KmsKeyArn` is `KmsKey`.
fn resource_names(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::Sequence(items) => items.iter().flat_map(resource_names).collect(),
        Yaml::Tagged(tagged) => {
            let text = tagged.value.as_str().unwrap_or_default();
            match tagged.tag.to_string().as_str() {
                "!GetAtt" => vec![text.strip_suffix(".Arn").unwrap_or(text).to_string()],
                "!Sub" if text.contains(":secret:${SecretPrefix}*") => vec!["TokenSecrets".into()],
                "!Sub" if text.contains(":secret:${SecretPrefix}credential-*") => {
                    vec!["CredentialSecrets".into()]
                }
                "!Sub" if text.starts_with("${") && text.contains(".Arn}/index/") => {
                    vec![text.trim_start_matches("${").replacen(".Arn}", "", 1)]
                }
                "!Ref" if text == "KmsKeyArn" => vec!["KmsKey".into()],
                other => panic!("a resource the test does not know: {other} {text}"),
            }
        }
        other => panic!("a resource the test does not know: {other:?}"),
    }
}

#[tokio::test]
async fn each_function_is_granted_exactly_the_calls_it_makes() {
    let needed = calls_by_function().await;
    let granted = template_grants();
    assert_eq!(
        granted.keys().collect::<Vec<_>>(),
        needed.keys().collect::<Vec<_>>(),
        "the template's functions"
    );
    let mut drift = Vec::new();
    for (function, calls) in &needed {
        let (grants, kms) = &granted[function];
        // A call on a shared token's secret is within a grant on every token secret.
        let calls: &BTreeSet<Grant> = &calls
            .iter()
            .map(|(action, resource)| {
                let within_all = resource == "CredentialSecrets"
                    && grants.contains(&(action.clone(), "TokenSecrets".to_string()));
                let resource = if within_all { "TokenSecrets" } else { resource };
                (action.clone(), resource.to_string())
            })
            .collect();
        println!("{function}:");
        for (action, resource) in calls {
            println!("  {action} on {resource}");
        }
        for missing in calls.difference(grants) {
            drift.push(format!(
                "{function} calls {} on {} — not granted",
                missing.0, missing.1
            ));
        }
        for unused in grants.difference(calls) {
            drift.push(format!(
                "{function} is granted {} on {} — never called",
                unused.0, unused.1
            ));
        }
        let kms_calls = kms_needed(calls);
        println!("  with KmsKeyArn: {kms_calls:?}");
        if &kms_calls != kms {
            drift.push(format!(
                "{function} with KmsKeyArn needs {kms_calls:?}, the template grants {kms:?}"
            ));
        }
    }
    assert!(drift.is_empty(), "IAM drift:\n{}", drift.join("\n"));
}
