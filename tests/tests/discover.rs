//! Discovery through the connect handler, against the simulator, in every shape Make's
//! organization lists may take: paged with an echo (documented), paged without one, whole, and
//! pages of two rows. What a token reaches, on which host, what the tenant connects already —
//! and that nothing is stored.

use makesync::connect::{response_json, ConnectService};
use makesync::host::HostAllowlist;
use makesync::ports::ConnectionStore;
use makesync::store::MemoryQueue;
use makesync::store::{MemorySecrets, MemoryStore};
use makesync_simulator::{
    demo_world, ListShape, TokenGrant, DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, DEMO_TOKEN,
};
use makesync_tests::{TestEnv, ACME};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A member of the instance's organizations who is no instance administrator.
const PARTNER_TOKEN: &str = "sim-token-partner-member";

const SHAPES: [ListShape; 4] = [
    ListShape::Paged { max: 10_000 },
    ListShape::Paged { max: 2 },
    ListShape::PagedWithoutEcho { max: 2 },
    ListShape::Unpaged,
];

struct Discovery {
    env: TestEnv,
    store: Arc<MemoryStore>,
    secrets: Arc<MemorySecrets>,
    queue: Arc<MemoryQueue>,
    service: ConnectService,
}

async fn discovery(shape: ListShape) -> Discovery {
    let mut world = demo_world();
    world.faults.organizations_list = shape;
    world.faults.admin_organizations_list = shape;
    world.add_token(
        PARTNER_TOKEN,
        TokenGrant::new(21, &["admin:read", "organizations:read", "user:read"]),
    );
    let env = TestEnv::start_with(world, |config| {
        config.allowlist = HostAllowlist::with_extra_hosts([DEMO_INSTANCE_HOST]).unwrap();
        config.page_size = 2;
    })
    .await;
    let store = Arc::new(MemoryStore::new());
    let secrets = Arc::new(MemorySecrets::default());
    let queue = Arc::new(MemoryQueue::default());
    let service = ConnectService::new(
        store.clone(),
        store.clone(),
        secrets.clone(),
        queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    Discovery {
        env,
        store,
        secrets,
        queue,
        service,
    }
}

impl Discovery {
    async fn ask(&self, payload: Value) -> Value {
        response_json(&self.service.handle_payload(&payload).await)
    }

    async fn discover(&self, tenant: &str, host: &str, token: &str, instance: bool) -> Value {
        self.ask(
            json!({"action": "discover", "tenantId": tenant, "host": host,
                        "token": token, "instance": instance}),
        )
        .await
    }
}

/// id → the organization's answer.
fn by_id(answer: &Value) -> BTreeMap<u64, Value> {
    answer["organizations"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|o| (o["id"].as_u64().unwrap(), o.clone()))
        .collect()
}

#[tokio::test]
async fn every_organization_of_the_token_is_found_with_its_host_in_every_list_shape() {
    for shape in SHAPES {
        let d = discovery(shape).await;
        let answer = d
            .discover("tenant-a", "eu1.make.com", DEMO_TOKEN, false)
            .await;
        let found = by_id(&answer);
        let hosts: BTreeMap<u64, &str> = found
            .iter()
            .map(|(id, o)| (*id, o["host"].as_str().unwrap()))
            .collect();
        assert_eq!(
            hosts,
            BTreeMap::from([
                (1001, "eu1.make.com"),
                (2002, "us2.make.com"),
                (3003, "eu1.make.celonis.com"),
            ]),
            "{shape:?}: {answer}"
        );
        assert_eq!(found[&1001]["name"], "Acme Robotics");
        assert!(found.values().all(|o| o["hostAllowed"] == true));
        // Paused state only for organizations of the zone asked (002).
        assert_eq!(found[&1001]["paused"], false, "{shape:?}");
        assert_eq!(found[&2002]["paused"], Value::Null, "{shape:?}");
        // Nothing stored, nothing queued, no token kept.
        assert!(d
            .store
            .list_connections(None, 10)
            .await
            .unwrap()
            .connections
            .is_empty());
        assert!(d.queue.is_empty());
        assert!(d.secrets.is_empty());
        // Every list request asked the zone explicitly and read every page.
        let lists: Vec<_> = d
            .env
            .simulator
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/v2/organizations")
            .collect();
        assert!(!lists.is_empty());
        assert!(lists
            .iter()
            .all(|r| r.query.contains(&("cols[]".into(), "zone".into()))));
        if shape == (ListShape::Paged { max: 2 }) {
            assert!(lists.len() >= 2, "{shape:?}: {} requests", lists.len());
        }
    }
}

#[tokio::test]
async fn discovery_marks_what_this_tenant_connects_and_only_this_tenant() {
    let d = discovery(ListShape::Paged { max: 2 }).await;
    let connected = d
        .ask(
            json!({"host": "eu1.make.com", "organizationId": ACME, "token": DEMO_TOKEN,
                    "tenantId": "tenant-a"}),
        )
        .await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    let mine = by_id(
        &d.discover("tenant-a", "us2.make.com", DEMO_TOKEN, false)
            .await,
    );
    assert_eq!(mine[&1001]["connectionId"], id.as_str());
    assert!(mine[&2002].get("connectionId").is_none());
    let theirs = d
        .discover("tenant-b", "eu1.make.com", DEMO_TOKEN, false)
        .await;
    assert!(!theirs.to_string().contains(&id), "{theirs}");
}

#[tokio::test]
async fn an_organization_on_a_host_makesync_may_not_call_is_listed_and_marked() {
    let d = discovery(ListShape::Paged { max: 2 }).await;
    // Without the instance host in the allowlist, its organizations are shown, not callable.
    let env = TestEnv::start_with(
        {
            let mut world = demo_world();
            world.add_token(
                PARTNER_TOKEN,
                TokenGrant::new(21, &["organizations:read", "user:read"]),
            );
            world
        },
        |_| {},
    )
    .await;
    let service = ConnectService::new(
        d.store.clone(),
        d.store.clone(),
        d.secrets.clone(),
        d.queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    let payload = json!({"action": "discover", "tenantId": "tenant-a", "host": "eu1.make.com",
                         "token": PARTNER_TOKEN});
    let answer = response_json(&service.handle_payload(&payload).await);
    let found = by_id(&answer);
    // 5003 is deleted: a member list does not show it.
    assert_eq!(
        found.keys().copied().collect::<Vec<_>>(),
        vec![5001, 5002, 5004]
    );
    for organization in found.values() {
        assert_eq!(organization["hostAllowed"], false, "{organization}");
        assert_eq!(organization["host"], Value::Null);
        assert_eq!(organization["zone"], DEMO_INSTANCE_HOST);
        let note = organization["hostNote"].as_str().unwrap();
        assert!(note.contains("MAKESYNC_EXTRA_HOSTS"), "{note}");
    }
}

#[tokio::test]
async fn an_instance_lists_every_organization_deleted_ones_flagged_in_every_list_shape() {
    for shape in SHAPES {
        let d = discovery(shape).await;
        let answer = d
            .discover("tenant-a", DEMO_INSTANCE_HOST, DEMO_INSTANCE_TOKEN, true)
            .await;
        assert_eq!(answer["instance"], true, "{answer}");
        let found = by_id(&answer);
        assert_eq!(
            found.keys().copied().collect::<Vec<_>>(),
            vec![5001, 5002, 5003, 5004],
            "{shape:?}: {answer}"
        );
        assert_eq!(found[&5003]["deleted"], true);
        assert_eq!(found[&5001]["deleted"], false);
        assert_eq!(found[&5002]["paused"], true);
        assert_eq!(found[&5004]["apiLimit"], 0);
        assert_eq!(found[&5001]["externalId"], "partner-5001");
        assert!(found
            .values()
            .all(|o| o["host"] == DEMO_INSTANCE_HOST && o["hostAllowed"] == true));
    }
}

#[tokio::test]
async fn a_token_that_cannot_list_is_refused_with_what_to_do() {
    let d = discovery(ListShape::Paged { max: 10_000 }).await;
    // Not an instance administrator: Make answers 403 to admin:read.
    for token in [DEMO_TOKEN, PARTNER_TOKEN] {
        let answer = d
            .discover("tenant-a", DEMO_INSTANCE_HOST, token, true)
            .await;
        assert_eq!(answer["error"]["kind"], "permission", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("admin:read"), "{message}");
        assert!(message.contains("administrator"), "{message}");
        assert!(!answer.to_string().contains(token));
    }
    for (token, kind, says) in [
        ("sim-token-revoked", "auth", "invalid, expired or revoked"),
        (
            "sim-token-no-organizations-read",
            "permission",
            "organizations:read",
        ),
    ] {
        let answer = d.discover("tenant-a", "eu1.make.com", token, false).await;
        assert_eq!(answer["error"]["kind"], kind, "{token}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{token}: {message}");
    }
    let answer = d
        .discover("tenant-a", "collector.example", DEMO_TOKEN, false)
        .await;
    assert_eq!(answer["error"]["kind"], "invalid_input", "{answer}");
    assert!(d
        .env
        .simulator
        .requests()
        .iter()
        .all(|r| r.host.as_deref() != Some("collector.example")));
}
