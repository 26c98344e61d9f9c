//! Change events end to end on moto: syncs write users, the users table's stream feeds the
//! events function, the function puts events on an EventBridge bus, and a rule sends them to a
//! queue the test reads — including for a run whose worker stopped right after writing.

use async_trait::async_trait;
use chrono::Utc;
use makesync::clock::Clock;
use makesync::connection::ConnectionId;
use makesync::events::EventDetail;
use makesync::ports::{ConnectionStore, SecretStore, StoreError};
use makesync::queue::SyncRequest;
use makesync::run::{RunOutcome, SyncReason};
use makesync::sync::SyncEngine;
use makesync::token::ApiToken;
use makesync::worker::WorkOutcome;
use makesync_simulator::DEMO_TEAMS_TOKEN;
use makesync_tests::aws::{moto_sdk_config, AwsTestEnv};
use makesync_tests::hooked::{ConnectionCall, ConnectionHook, HookedConnections};
use makesync_tests::stream::{bus_to_queue, delivered, StreamReader};
use makesync_tests::ACME;
use std::sync::Arc;

/// A worker that stops right after writing its users: it never records the run on the
/// connection.
struct StopsAfterWriting;

#[async_trait]
impl ConnectionHook for StopsAfterWriting {
    async fn before(
        &self,
        call: ConnectionCall,
        _: Option<&ConnectionId>,
    ) -> Result<(), StoreError> {
        match call {
            ConnectionCall::RecordRun => Err(StoreError::Unavailable("the worker stopped".into())),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn users_added_changed_and_removed_make_exactly_their_events() {
    users_make_exactly_their_events(EventDetail::Full).await;
}

/// `EventDetail=ids`: the same events, with no name or email in any.
#[tokio::test]
async fn ids_events_are_the_same_events_without_names_or_emails() {
    users_make_exactly_their_events(EventDetail::Ids).await;
}

async fn users_make_exactly_their_events(carry: EventDetail) {
    let env = AwsTestEnv::start().await;
    let (bus, queue) = bus_to_queue(&env).await;
    let settings = makesync::aws::AwsSettings {
        event_bus: Some(bus),
        event_detail: carry,
        ..env.settings.clone()
    };
    let backend = makesync::aws::AwsBackend::new(&moto_sdk_config().await, settings, env.clock());
    let announcer = makesync_events::announcer_for(&backend).unwrap();
    let mut stream = StreamReader::new(&moto_sdk_config().await, &env.settings.users_table);

    let mut connection = env.make.connection("eu1.make.com", ACME);
    connection.tenant_id = makesync::tenant::TenantId::parse("tenant-7").unwrap();
    backend.store.create_connection(&connection).await.unwrap();
    backend
        .secrets
        .put_token(
            &connection.token_ref(),
            &ApiToken::parse(DEMO_TEAMS_TOKEN).unwrap(),
        )
        .await
        .unwrap();
    let worker = env.worker();
    let request = SyncRequest::new(connection.id.clone(), SyncReason::Connected, Utc::now());

    // The first sync: one summary event, not 36.
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    let response = makesync_events::handle(&announcer, stream.next_event().await).await;
    assert!(response.batch_item_failures.is_empty());
    let events = delivered(&env, &queue).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "Make connection synced");
    let summary = &events[0].1;
    assert_eq!(summary["users"], 36);
    assert_eq!(summary["tenantId"], "tenant-7");
    assert_eq!(summary["host"], "eu1.make.com");
    assert_eq!(summary["organizationId"], ACME);
    assert_eq!(summary["connectionId"], connection.id.as_str());

    // One removed, one promoted, one invitation accepted, one team role changed (of a
    // member who also logged in: the login alone makes no event).
    {
        let mut world = env.make.simulator.world();
        world
            .remove_member(ACME, 11)
            .set_role(ACME, 4, 12)
            .accept_invitation(ACME, 3)
            .set_team_role(ACME, 10011, 2, Some(3))
            .log_in(2, env.make.clock.wall());
    }
    let report = match worker.handle(&request).await {
        WorkOutcome::Synced(report) => report,
        other => panic!("{other:?}"),
    };
    makesync_events::handle(&announcer, stream.next_event().await).await;
    let mut events = delivered(&env, &queue).await;
    events.sort_by_key(|(_, detail)| detail["userId"].as_u64());
    let kinds: Vec<(&str, u64)> = events
        .iter()
        .map(|(kind, detail)| (kind.as_str(), detail["userId"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("Make user changed", 2),
            ("Make user changed", 3),
            ("Make user changed", 4),
            ("Make user removed", 11),
        ]
    );
    let team_change = &events[0].1;
    assert_eq!(
        team_change["before"]["teams"],
        serde_json::json!([{"teamId": 10011, "teamName": "Finance", "roleId": 1, "roleName": "Team Admin"}])
    );
    assert_eq!(
        team_change["after"]["teams"],
        serde_json::json!([{"teamId": 10011, "teamName": "Finance", "roleId": 3, "roleName": "Team Member"}])
    );
    let invitation = &events[1].1;
    assert_eq!(invitation["before"]["status"], "invited");
    assert_eq!(invitation["after"]["status"], "active");
    assert_eq!(invitation["runId"], report.run.run_id.to_string());
    assert_eq!(events[2].1["before"]["role"], "Accountant");
    assert_eq!(events[2].1["after"]["role"], "Admin");
    match carry {
        EventDetail::Full => assert_eq!(events[3].1["email"], "rafael@acme.example"),
        EventDetail::Ids => {
            for (_, detail) in &events {
                assert!(detail.get("email").is_none() && detail.get("name").is_none());
                let text = detail.to_string();
                assert!(!text.contains("@acme.example"), "{text}");
            }
        }
    }

    // A worker that stops right after writing: its run is never recorded, its changes are
    // announced all the same.
    env.make.simulator.world().add_member(ACME, 11, 13, None);
    let engine = SyncEngine::new(
        Arc::new(HookedConnections::new(
            backend.store.clone(),
            Arc::new(StopsAfterWriting),
        )),
        backend.store.clone(),
        backend.store.clone(),
        env.clock(),
    );
    let client = env.make.client(&connection, DEMO_TEAMS_TOKEN);
    let report = engine
        .sync(&connection, &client, SyncReason::Scheduled)
        .await;
    assert_eq!(report.run.outcome, RunOutcome::Succeeded);
    assert!(
        report.bookkeeping_error.is_some(),
        "the run was not recorded"
    );
    makesync_events::handle(&announcer, stream.next_event().await).await;
    let events = delivered(&env, &queue).await;
    let kinds: Vec<(&str, u64)> = events
        .iter()
        .map(|(kind, detail)| (kind.as_str(), detail["userId"].as_u64().unwrap()))
        .collect();
    assert_eq!(kinds, vec![("Make user added", 11)]);
}

/// A connection's lifecycle on moto: the connections table's stream through the events
/// function to the bus, one event per state change and none for a run that changes none.
#[tokio::test]
async fn each_state_change_of_a_connection_is_announced_once() {
    let env = AwsTestEnv::start_with(&[("MAKESYNC_PAUSE_AFTER_FAILURES", "2")]).await;
    let (bus, queue) = bus_to_queue(&env).await;
    let settings = makesync::aws::AwsSettings {
        event_bus: Some(bus),
        ..env.settings.clone()
    };
    let backend = makesync::aws::AwsBackend::new(&moto_sdk_config().await, settings, env.clock());
    let announcer = makesync_events::announcer_for(&backend).unwrap();
    let mut connections =
        StreamReader::new(&moto_sdk_config().await, &env.settings.connections_table);
    let connect = env.connect_service();
    let connected = makesync_connect::handle(
        &connect,
        serde_json::json!({"host": "eu1.make.com", "organizationId": ACME,
                           "token": makesync_simulator::DEMO_TOKEN, "tenantId": "tenant-7"}),
    )
    .await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    let worker = env.worker();
    let request = SyncRequest::new(
        ConnectionId::parse(&id).unwrap(),
        SyncReason::Scheduled,
        Utc::now(),
    );
    let kinds = |events: &[(String, serde_json::Value)]| -> Vec<String> {
        events.iter().map(|(kind, _)| kind.clone()).collect()
    };

    // Created and synced the first time: announced by its users (the summary), not here; a
    // second success changes no state.
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    assert!(announced(&announcer, &mut connections, &env, &queue)
        .await
        .is_empty());

    // Make fails three times: one event, for the first.
    env.make.simulator.world().faults.server_errors = u32::MAX;
    for _ in 0..3 {
        assert!(worker.handle(&request).await.should_retry());
    }
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(kinds(&events), vec!["Make connection sync failed"]);
    let failed = &events[0].1;
    assert_eq!(failed["kind"], "transient", "{failed}");
    assert_eq!(failed["tenantId"], "tenant-7");
    assert_eq!(failed["connectionId"], id.as_str());
    assert!(failed["runId"].is_string(), "{failed}");
    // Back: one event, the first success after failures.
    env.make.simulator.world().faults.server_errors = 0;
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(kinds(&events), vec!["Make connection synced"]);
    assert_eq!(events[0].1["users"], 36);

    // The token is revoked: failed, then paused; resumed once it works again.
    let revoke = |revoked: bool| {
        env.make
            .simulator
            .world()
            .set_revoked(makesync_simulator::DEMO_TOKEN, revoked);
    };
    revoke(true);
    worker.handle(&request).await;
    worker.handle(&request).await;
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(
        kinds(&events),
        vec!["Make connection sync failed", "Make connection paused"]
    );
    assert_eq!(
        events[1].1["statusReason"]["kind"], "auth",
        "{:?}",
        events[1]
    );
    revoke(false);
    let resumed = makesync_connect::handle(
        &connect,
        serde_json::json!({"action": "resume", "tenantId": "tenant-7", "connectionId": id}),
    )
    .await;
    assert_eq!(resumed["status"], "active", "{resumed}");
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(kinds(&events), vec!["Make connection resumed"]);

    // Erased: one event when the erase job finishes.
    let erase = makesync_connect::handle(
        &connect,
        serde_json::json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id, "purge": true}),
    )
    .await;
    assert_eq!(erase["status"], "erasing", "{erase}");
    let job = SyncRequest::new(
        ConnectionId::parse(&id).unwrap(),
        SyncReason::Erase,
        Utc::now(),
    );
    worker.handle(&job).await;
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(kinds(&events), vec!["Make connection erased"]);
    assert_eq!(events[0].1["erasedUsers"], 36, "{:?}", events[0]);
}

/// What the events function announces of the stream's newest records.
async fn announced(
    announcer: &makesync::events::ChangeAnnouncer,
    stream: &mut StreamReader,
    env: &AwsTestEnv,
    queue: &str,
) -> Vec<(String, serde_json::Value)> {
    let response = makesync_events::handle(announcer, stream.next_event().await).await;
    assert!(response.batch_item_failures.is_empty());
    delivered(env, queue).await
}

/// A first sync after a disconnect that came before any user was written is announced like
/// any first sync: one summary.
#[tokio::test]
async fn a_first_sync_after_a_disconnect_is_announced_like_any_first_sync() {
    let env = AwsTestEnv::start().await;
    let (bus, queue) = bus_to_queue(&env).await;
    let settings = makesync::aws::AwsSettings {
        event_bus: Some(bus),
        ..env.settings.clone()
    };
    let backend = makesync::aws::AwsBackend::new(&moto_sdk_config().await, settings, env.clock());
    let announcer = makesync_events::announcer_for(&backend).unwrap();
    let mut users = StreamReader::new(&moto_sdk_config().await, &env.settings.users_table);
    let connect = env.connect_service();
    let payload = serde_json::json!({"host": "eu1.make.com", "organizationId": ACME,
        "token": makesync_simulator::DEMO_TOKEN, "tenantId": "tenant-7"});
    let connected = makesync_connect::handle(&connect, payload.clone()).await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    // Disconnected before its first sync wrote anything; connected again.
    let disconnected = makesync_connect::handle(
        &connect,
        serde_json::json!({"action": "disconnect", "tenantId": "tenant-7", "connectionId": id}),
    )
    .await;
    assert_eq!(disconnected["status"], "disconnected", "{disconnected}");
    let again = makesync_connect::handle(&connect, payload).await;
    assert_eq!(again["connectionId"], id.as_str(), "{again}");
    env.take_messages().await;
    let request = SyncRequest::new(
        ConnectionId::parse(&id).unwrap(),
        SyncReason::Connected,
        Utc::now(),
    );
    assert!(matches!(
        env.worker().handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    let response = makesync_events::handle(&announcer, users.next_event().await).await;
    assert!(response.batch_item_failures.is_empty());
    let events = delivered(&env, &queue).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, vec!["Make connection synced"], "{events:?}");
    assert_eq!(events[0].1["users"], 36);
}

/// "Make connection synced: … the first success after failed syncs." The customer answers a
/// `sync failed` (auth) the way api.md says — connects again with a token that works — and the
/// next sync succeeds.
#[tokio::test]
async fn a_success_after_failed_syncs_is_announced_when_the_customer_reconnected_in_between() {
    let env = AwsTestEnv::start_with(&[("MAKESYNC_PAUSE_AFTER_FAILURES", "5")]).await;
    let (bus, queue) = bus_to_queue(&env).await;
    let settings = makesync::aws::AwsSettings {
        event_bus: Some(bus),
        ..env.settings.clone()
    };
    let backend = makesync::aws::AwsBackend::new(&moto_sdk_config().await, settings, env.clock());
    let announcer = makesync_events::announcer_for(&backend).unwrap();
    let mut connections =
        StreamReader::new(&moto_sdk_config().await, &env.settings.connections_table);
    let connect = env.connect_service();
    let payload = serde_json::json!({"host": "eu1.make.com", "organizationId": ACME,
                       "token": makesync_simulator::DEMO_TOKEN, "tenantId": "tenant-7"});
    let connected = makesync_connect::handle(&connect, payload.clone()).await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    let worker = env.worker();
    let request = SyncRequest::new(
        ConnectionId::parse(&id).unwrap(),
        SyncReason::Scheduled,
        Utc::now(),
    );
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    let kinds = |events: &[(String, serde_json::Value)]| -> Vec<String> {
        events.iter().map(|(kind, _)| kind.clone()).collect()
    };
    let _ = announced(&announcer, &mut connections, &env, &queue).await;

    // The token is revoked: two failed syncs, one `sync failed` event.
    let revoke = |revoked: bool| {
        env.make
            .simulator
            .world()
            .set_revoked(makesync_simulator::DEMO_TOKEN, revoked);
    };
    revoke(true);
    worker.handle(&request).await;
    worker.handle(&request).await;
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(kinds(&events), vec!["Make connection sync failed"]);

    // The customer fixes it: connect again with a token Make takes (as api.md says).
    revoke(false);
    let again = makesync_connect::handle(&connect, payload).await;
    assert_eq!(again["connectionId"], id.as_str(), "{again}");
    assert!(matches!(
        worker.handle(&request).await,
        WorkOutcome::Synced(_)
    ));
    let events = announced(&announcer, &mut connections, &env, &queue).await;
    assert_eq!(
        kinds(&events),
        vec!["Make connection synced"],
        "the product saw `sync failed` and never hears that the connection syncs again: {events:?}"
    );
}

/// What `PutEvents` takes: a request of at most 256 KB, its entries added up.
#[derive(Default)]
struct EventBridgeLike {
    requests: std::sync::Mutex<Vec<(usize, usize)>>,
}

#[async_trait]
impl makesync::events::EventPublisher for EventBridgeLike {
    async fn publish(
        &self,
        events: &[makesync::events::ChangeEvent],
    ) -> Result<Vec<bool>, makesync::events::EventError> {
        let size: usize = events
            .iter()
            .map(|e| e.detail.to_string().len() + e.detail_type.len() + 20)
            .sum();
        self.requests.lock().unwrap().push((events.len(), size));
        if size > 256 * 1024 {
            return Err(makesync::events::EventError::Publish(format!(
                "request of {size} bytes is over 256 KB"
            )));
        }
        Ok(vec![true; events.len()])
    }
}

/// A member whose team roles changed in 130 teams of 1 KB names makes an event past the bus's
/// limit: it goes out without its team roles (and says so), and the next tenant's event in
/// the same batch goes out too.
#[tokio::test]
async fn an_event_too_large_for_the_bus_goes_out_without_its_team_roles() {
    let user = |connection: &str, user_id: u64, teams: usize, role: u32| {
        let teams: Vec<_> = (0..teams)
            .map(|t| {
                serde_json::json!({"teamId": 1000 + t, "teamName": "T".repeat(1024),
                                        "roleId": role, "roleName": "Team Member"})
            })
            .collect();
        serde_json::json!({"connectionId": connection, "userId": user_id, "name": "Zoë",
            "email": "z@example.com", "roleId": 13, "roleName": "Member", "status": "active",
            "runId": "r-1", "lastLogin": null, "teams": teams})
    };
    let bus = Arc::new(EventBridgeLike::default());
    let announcer = makesync::events::ChangeAnnouncer::new(
        Arc::new(makesync::store::MemoryStore::new()),
        bus.clone(),
    );
    let at = Utc::now();
    let mut changed = user("conn-b", 8, 0, 3);
    changed["roleId"] = serde_json::json!(12);
    let changes = vec![
        makesync::events::ItemChange {
            sequence: "1".into(),
            old: Some(user("conn-a", 7, 130, 3)),
            new: Some(user("conn-a", 7, 130, 1)),
            at,
        },
        makesync::events::ItemChange {
            sequence: "2".into(),
            old: Some(user("conn-b", 8, 0, 3)),
            new: Some(changed),
            at,
        },
    ];
    let result = announcer.announce(&changes).await;
    let requests = bus.requests.lock().unwrap().clone();
    assert!(result.is_ok(), "{result:?}; requests {requests:?}");
    assert!(
        requests.iter().all(|(_, bytes)| *bytes <= 256 * 1024),
        "{requests:?}"
    );
    assert_eq!(
        requests.iter().map(|(n, _)| n).sum::<usize>(),
        2,
        "both events went out"
    );
}
