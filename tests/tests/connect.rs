//! Connecting an organization against the simulator, on the in-memory adapters, in every API
//! shape: what Make must confirm before anything is stored, and what a refusal says.

use makesync::connect::{response_json, ConnectService};
use makesync::ports::ConnectionStore;
use makesync::queue::MemoryQueue;
use makesync::store::{MemorySecrets, MemoryStore};
use makesync_simulator::DEMO_TOKEN;
use makesync_tests::{across_api_shapes, ApiShape, TestEnv, ACME};
use serde_json::{json, Value};
use std::sync::Arc;

struct Connect {
    env: TestEnv,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    service: ConnectService,
}

async fn connect_env(shape: ApiShape) -> Connect {
    let env = TestEnv::start_in(shape).await;
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::default());
    let service = ConnectService::new(
        store.clone(),
        store.clone(),
        Arc::new(MemorySecrets::default()),
        queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    Connect {
        env,
        store,
        queue,
        service,
    }
}

impl Connect {
    async fn connect(&self, token: &str) -> Value {
        let payload = json!({"host": "eu1.make.com", "organizationId": ACME, "token": token});
        response_json(&self.service.handle_payload(&payload).await)
    }
}

across_api_shapes! {
    async fn a_valid_token_is_connected_and_queued_for_a_sync(shape: ApiShape) {
        let c = connect_env(shape).await;
        let response = c.connect(DEMO_TOKEN).await;
        assert_eq!(response["status"], "active", "{response}");
        assert_eq!(response["syncEnqueued"], true);
        assert_eq!(c.store.list_connections(None, 10).await.unwrap().connections.len(), 1);
        assert_eq!(c.queue.len(), 1);
    }

    async fn a_token_missing_a_scope_is_refused_naming_the_scope_not_as_expired(shape: ApiShape) {
        let c = connect_env(shape).await;
        for (token, kind, says) in [
            ("sim-token-no-user-read", "permission", "lacks scope user:read"),
            ("sim-token-no-organizations-read", "permission", "lacks scope organizations:read"),
            ("sim-token-outsider", "permission", "no access to organization 1001"),
            ("sim-token-revoked", "auth", "invalid, expired or revoked"),
        ] {
            let response = c.connect(token).await;
            assert_eq!(response["error"]["kind"], kind, "{token}: {response}");
            let message = response["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{token}: {message}");
            if kind == "permission" {
                assert!(!message.contains("expired") && !message.contains("revoked"), "{message}");
            }
            assert!(!response.to_string().contains(token), "{response}");
        }
        assert!(c.store.list_connections(None, 10).await.unwrap().connections.is_empty());
        assert!(c.queue.is_empty());
        assert!(
            c.env.simulator.requests().iter().all(|r| r.status != 429),
            "connect stays within the budget"
        );
    }
}
