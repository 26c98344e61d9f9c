//! Following a White Label instance, in process, under both answers the documentation leaves
//! open — an instance administrator's token may, or may not, read an organization's users:
//! connect-instance, then one schedule in which an organization is added, one deleted, one
//! paused and one has its API access disabled (`apiLimit` 0).

use makesync::clock::Clock;
use makesync::connect::{response_json, ConnectService};
use makesync::connection::{Connection, ConnectionId, ConnectionStatus};
use makesync::credential::CredentialId;
use makesync::host::HostAllowlist;
use makesync::instance::{InstanceFollower, DELETED_IN_INSTANCE};
use makesync::ports::{ConnectionStore, UserStore};
use makesync::schedule::Scheduler;
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, MemoryStore};
use makesync::sync::SyncEngine;
use makesync::user::UserStatus;
use makesync::worker::{WorkOutcome, Worker};
use makesync_tests::simulator::{
    demo_world, ListShape, DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TOKEN,
};
use makesync_tests::{RecordingPublisher, TestEnv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

struct Instance {
    env: TestEnv,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    connect: ConnectService,
    scheduler: Scheduler,
    worker: Worker,
    events: Arc<RecordingPublisher>,
}

async fn instance(admin_reads_members: bool, list: ListShape) -> Instance {
    let mut world = demo_world();
    world.faults.admin_reads_members = admin_reads_members;
    world.faults.admin_organizations_list = list;
    // Before the schedule: Beta runs, Delta's API is open.
    world.set_paused(5002, false);
    world.organizations.get_mut(&5004).unwrap().api_limit = Some(60);
    let env = TestEnv::start_with(world, |config| {
        config.allowlist = HostAllowlist::with_extra_hosts([DEMO_INSTANCE_HOST]).unwrap();
    })
    .await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let queue = Arc::new(MemoryQueue::default());
    let clock: Arc<dyn Clock> = env.clock_arc();
    let connect = ConnectService::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        queue.clone(),
        env.make.clone(),
        clock.clone(),
    );
    let events = Arc::new(RecordingPublisher::default());
    let follower = InstanceFollower::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        env.make.clone(),
        clock.clone(),
    )
    .with_publisher(events.clone());
    let scheduler =
        Scheduler::new(store.clone(), queue.clone(), clock.clone()).with_instances(follower);
    let engine = SyncEngine::new(store.clone(), store.clone(), store.clone(), clock);
    let worker = Worker::new(store.clone(), secrets, engine, env.make.clone());
    Instance {
        env,
        store,
        queue,
        connect,
        scheduler,
        worker,
        events,
    }
}

impl Instance {
    async fn ask(&self, payload: Value) -> Value {
        response_json(&self.connect.handle_payload(&payload).await)
    }

    /// The credential's connections by organization id.
    async fn connections(&self, credential: &CredentialId) -> BTreeMap<u64, Connection> {
        let mut by_organization = BTreeMap::new();
        let page = self.store.list_connections(None, 1000).await.unwrap();
        for connection in page.connections {
            if connection.credential_id.as_ref() == Some(credential) {
                by_organization.insert(connection.organization_id.get(), connection);
            }
        }
        by_organization
    }

    /// Every queued sync through the worker; the outcome for each connection.
    async fn drain(&self) -> BTreeMap<ConnectionId, WorkOutcome> {
        let mut outcomes = BTreeMap::new();
        for body in self.queue.take(usize::MAX) {
            let request = makesync::queue::SyncRequest::parse(&body).unwrap();
            outcomes.insert(
                request.connection_id.clone(),
                self.worker.handle_body(&body).await,
            );
        }
        outcomes
    }
}

fn permission_message(outcome: &WorkOutcome) -> Option<String> {
    let report = outcome.report()?;
    let error = report.run.error.as_ref()?;
    (error.kind == makesync::error::ErrorKind::Permission).then(|| error.message.clone())
}

/// The instance list as documented (paged with an echo), in pages of two, and whole.
const LIST_SHAPES: [ListShape; 3] = [
    ListShape::Paged { max: 10_000 },
    ListShape::Paged { max: 2 },
    ListShape::Unpaged,
];

async fn one_schedule_brings_the_connections_in_line(admin_reads_members: bool) {
    for list in LIST_SHAPES {
        one_schedule_in(admin_reads_members, list).await;
    }
}

async fn one_schedule_in(admin_reads_members: bool, list: ListShape) {
    let i = instance(admin_reads_members, list).await;
    let followed = i
        .ask(
            json!({"action": "connect-instance", "tenantId": "tenant-wl",
                    "host": DEMO_INSTANCE_HOST, "token": DEMO_INSTANCE_TOKEN,
                    "autoConnect": true}),
        )
        .await;
    let credential = CredentialId::parse(
        followed["credentialId"]
            .as_str()
            .unwrap_or_else(|| panic!("{followed}")),
    )
    .unwrap();
    let connected: BTreeSet<u64> = followed["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["organizationId"].as_u64().unwrap())
        .collect();
    // Gamma is deleted already: not connected.
    assert_eq!(connected, BTreeSet::from([5001, 5002, 5004]), "{followed}");
    let first = i.drain().await;
    assert_eq!(first.len(), 3);
    let before = i.connections(&credential).await;
    // The administrator is a member of Alpha only.
    for (organization, connection) in &before {
        let outcome = &first[&connection.id];
        let refused = permission_message(outcome);
        if *organization == 5001 || admin_reads_members {
            assert!(refused.is_none(), "{organization}: {outcome:?}");
        } else {
            let message = refused.unwrap_or_else(|| panic!("{organization}: {outcome:?}"));
            assert!(message.contains("token of one of its members"), "{message}");
        }
    }

    // In the instance: Epsilon is added, Alpha deleted, Beta paused, Delta's API disabled.
    {
        let mut world = i.env.simulator.world();
        world.add_organization(5005, "Partner Epsilon", DEMO_INSTANCE_HOST, Some(60));
        world.add_member(5005, 21, 11, None);
        world.delete_in_instance(5001);
        world.set_paused(5002, true);
        world.organizations.get_mut(&5004).unwrap().api_limit = Some(0);
    }
    let summary = i.scheduler.fan_out().await.unwrap();
    assert_eq!(summary.instances, 1);
    let after = i.connections(&credential).await;
    assert_eq!(
        after.keys().copied().collect::<Vec<_>>(),
        vec![5001, 5002, 5004, 5005]
    );
    let alpha = &after[&5001];
    assert_eq!(alpha.status, ConnectionStatus::Disconnected);
    assert_eq!(
        alpha.status_reason.as_ref().unwrap().message,
        DELETED_IN_INSTANCE
    );
    // Its users lost their access with it: marked removed, so that the retention of removed
    // users applies to them.
    let alpha_users = i.store.list_users(&alpha.id).await.unwrap();
    assert_eq!(alpha_users.len(), 4, "synced before: {alpha_users:?}");
    assert!(alpha_users
        .iter()
        .all(|u| u.status == UserStatus::Removed && u.removed_at.is_some()));
    assert_eq!(
        after[&5002].status,
        ConnectionStatus::Active,
        "paused in Make, still synced"
    );
    let delta = &after[&5004];
    assert_eq!(delta.status, ConnectionStatus::Paused);
    assert!(delta
        .status_reason
        .as_ref()
        .unwrap()
        .message
        .contains("apiLimit 0"));
    assert_eq!(after[&5005].status, ConnectionStatus::Active);
    let stored = i.store.get_credential(&credential).await.unwrap().unwrap();
    let follow = stored.instance.unwrap();
    assert_eq!(follow.paused, BTreeSet::from([5002]));
    assert!(
        !stored.connections.contains(&alpha.id),
        "Alpha left the credential"
    );

    // Synced in this fan-out: Beta and Epsilon; not Alpha (deleted) nor Delta (API off).
    let second = i.drain().await;
    assert_eq!(
        second.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([after[&5002].id.clone(), after[&5005].id.clone()])
    );
    for outcome in second.values() {
        let refused = permission_message(outcome);
        assert_eq!(refused.is_some(), !admin_reads_members, "{outcome:?}");
    }

    // Announced beside the user events, once.
    let announced: Vec<(String, u64)> = i
        .events
        .events()
        .iter()
        .map(|e| {
            (
                e.detail_type.to_string(),
                e.detail["organizationId"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        announced,
        vec![
            ("Instance Organization Discovered".to_string(), 5005),
            ("Instance Organization Deleted".to_string(), 5001),
            ("Instance Organization Paused".to_string(), 5002),
        ]
    );
    assert!(i
        .events
        .events()
        .iter()
        .all(|e| e.detail["tenantId"] == "tenant-wl"));
    i.scheduler.fan_out().await.unwrap();
    assert_eq!(i.events.events().len(), 3, "nothing new, nothing announced");
    assert_eq!(
        i.connections(&credential).await.len(),
        4,
        "no connection twice"
    );

    // Delta's API opened again: it resumes at the next schedule.
    i.env
        .simulator
        .world()
        .organizations
        .get_mut(&5004)
        .unwrap()
        .api_limit = Some(60);
    i.scheduler.fan_out().await.unwrap();
    assert_eq!(
        i.connections(&credential).await[&5004].status,
        ConnectionStatus::Active
    );
}

#[tokio::test]
async fn one_schedule_brings_the_connections_in_line_when_the_admin_token_reads_members() {
    one_schedule_brings_the_connections_in_line(true).await;
}

#[tokio::test]
async fn one_schedule_brings_the_connections_in_line_when_the_admin_token_may_not() {
    one_schedule_brings_the_connections_in_line(false).await;
}

#[tokio::test]
async fn without_auto_connect_new_organizations_are_listed_as_available() {
    let i = instance(true, ListShape::Paged { max: 10_000 }).await;
    let followed = i
        .ask(
            json!({"action": "connect-instance", "tenantId": "tenant-wl",
                    "host": DEMO_INSTANCE_HOST, "token": DEMO_INSTANCE_TOKEN}),
        )
        .await;
    assert_eq!(followed["autoConnect"], false, "{followed}");
    assert_eq!(followed["available"], json!([5001, 5002, 5004]));
    assert!(followed["organizations"].as_array().unwrap().is_empty());
    assert!(i.queue.is_empty());
    i.env
        .simulator
        .world()
        .add_organization(5005, "Partner Epsilon", DEMO_INSTANCE_HOST, Some(60));
    i.scheduler.fan_out().await.unwrap();
    let credential = CredentialId::parse(followed["credentialId"].as_str().unwrap()).unwrap();
    let stored = i.store.get_credential(&credential).await.unwrap().unwrap();
    assert_eq!(
        stored.instance.unwrap().available,
        BTreeSet::from([5001, 5002, 5004, 5005])
    );
    assert!(i.connections(&credential).await.is_empty());
}

#[tokio::test]
async fn a_token_without_admin_read_cannot_follow_an_instance() {
    let i = instance(true, ListShape::Paged { max: 10_000 }).await;
    let refused = i
        .ask(
            json!({"action": "connect-instance", "tenantId": "tenant-wl",
                    "host": DEMO_INSTANCE_HOST, "token": DEMO_TOKEN, "autoConnect": true}),
        )
        .await;
    assert_eq!(refused["error"]["kind"], "permission", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin:read"));
    assert!(i
        .store
        .list_instance_credentials()
        .await
        .unwrap()
        .is_empty());
}

/// The 5,000-organization bound counts the organizations the instance has, not the deleted
/// ones Make lists for good; what the credential remembers having seen is the instance's own.
#[tokio::test]
async fn deleted_organizations_do_not_count_toward_the_instance_bound() {
    let i = instance(true, ListShape::Paged { max: 10_000 }).await;
    {
        let mut world = i.env.simulator.world();
        // The demo instance has 4 organizations (one deleted): 4,997 more live ones make
        // 5,000 live, and 10 deleted ones past the bound.
        for k in 0..4_997u64 {
            world.add_organization(600_000 + k, "Live", DEMO_INSTANCE_HOST, Some(60));
        }
        for k in 0..10u64 {
            world.add_organization(700_000 + k, "Deleted", DEMO_INSTANCE_HOST, Some(60));
            world.delete_in_instance(700_000 + k);
        }
    }
    let followed = i
        .ask(
            json!({"action": "connect-instance", "tenantId": "tenant-wl",
                    "host": DEMO_INSTANCE_HOST, "token": DEMO_INSTANCE_TOKEN}),
        )
        .await;
    assert!(followed.get("error").is_none(), "{followed}");
    let credential = CredentialId::parse(followed["credentialId"].as_str().unwrap()).unwrap();
    let stored = i.store.get_credential(&credential).await.unwrap().unwrap();
    let follow = stored.instance.unwrap();
    let listed: BTreeSet<u64> = i
        .env
        .simulator
        .world()
        .organizations
        .values()
        .filter(|o| o.zone == DEMO_INSTANCE_HOST)
        .map(|o| o.id)
        .collect();
    assert!(
        follow.seen.is_subset(&listed),
        "only the instance's own ids"
    );
    // One live organization more is past the bound: refused, nothing changed.
    i.env
        .simulator
        .world()
        .add_organization(800_000, "One too many", DEMO_INSTANCE_HOST, Some(60));
    let summary = i.scheduler.fan_out().await.unwrap();
    assert_eq!(summary.instances, 0, "the follow is refused past the bound");
    let after = i.store.get_credential(&credential).await.unwrap().unwrap();
    assert!(
        after.instance.unwrap().attempted_at.is_some(),
        "the failed attempt is recorded: the instance waits its turn next time"
    );
}

/// Make lists a White Label instance's deleted organizations for good (003), and they do not
/// count toward the 5,000 organizations makesync follows: an instance of a few live
/// organizations and many deleted ones — every trial ever opened — is still listed.
#[tokio::test]
async fn an_instance_with_few_live_organizations_and_many_deleted_ones_is_still_listed() {
    let mut world = demo_world();
    // More than any fixed bound short of the memory's: 60,000, every trial ever opened.
    let deleted: u64 = 60_000;
    for n in 0..deleted {
        let id = 50_000_000 + n;
        world.add_organization(id, "Closed trial", DEMO_INSTANCE_HOST, Some(60));
        world.delete_in_instance(id);
    }
    let env = TestEnv::start_with(world, |config| {
        config.allowlist = HostAllowlist::with_extra_hosts([DEMO_INSTANCE_HOST]).unwrap();
        config.page_size = 10_000;
    })
    .await;
    let host = makesync::host::MakeHost::parse(DEMO_INSTANCE_HOST).unwrap();
    let token = makesync::token::ApiToken::parse(DEMO_INSTANCE_TOKEN).unwrap();
    let found = makesync::discover::discover_until(
        &env.make,
        &host,
        token,
        makesync::discover::DiscoveryScope::Instance,
        None,
    )
    .await;
    let found = found.unwrap_or_else(|error| {
        panic!("{deleted} deleted organizations and a few live ones are not listed: {error}")
    });
    assert!(found.len() as u64 > deleted, "{} listed", found.len());
}
