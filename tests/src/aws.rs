//! The AWS side under test: the real SDK clients against moto's server on 127.0.0.1, and the
//! Make simulator behind the Make client.
//!
//! Each [`AwsTestEnv`] creates its own tables, queue and secret prefix under a random suffix,
//! so tests run in parallel against one moto server without seeing each other's data.

use crate::TestEnv;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableStatus, TimeToLiveSpecification,
};
use makesync::aws::{AwsBackend, AwsSettings};
use makesync::clock::Clock;
use makesync::connect::ConnectService;
use makesync::metrics::EmfMemory;
use makesync::schedule::Scheduler;
use makesync::worker::Worker;
use std::collections::HashMap;
use std::sync::Arc;

/// Where moto's server listens, e.g. `http://127.0.0.1:5599`. `bash tests/run.sh` starts the
/// server and sets it.
pub const MOTO_ENDPOINT_ENV: &str = "MAKESYNC_TEST_AWS_ENDPOINT";

pub struct AwsTestEnv {
    pub make: TestEnv,
    pub settings: AwsSettings,
    pub backend: AwsBackend,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The EMF lines the functions built here emitted.
    pub metrics: Arc<EmfMemory>,
}

/// The SDK configuration every test uses: moto's endpoint, fixed test credentials.
pub async fn moto_sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var(MOTO_ENDPOINT_ENV).unwrap_or_else(|_| {
        panic!(
            "{MOTO_ENDPOINT_ENV} is not set: these tests need moto's server — run `bash tests/run.sh`, which starts it, or start `moto_server -H 127.0.0.1 -p 5599` and set {MOTO_ENDPOINT_ENV}=http://127.0.0.1:5599"
        )
    });
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "{MOTO_ENDPOINT_ENV} must point at 127.0.0.1, not {endpoint}"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

impl AwsTestEnv {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// `overrides` are settings variables (`MAKESYNC_PAUSE_AFTER_FAILURES`, …) on top of the
    /// test's own tables, queue and prefix.
    pub async fn start_with(overrides: &[(&str, &str)]) -> Self {
        // The demo world's White Label instance is allowed, as an operator would allow one.
        let make = TestEnv::start_with(crate::simulator::demo_world(), |config| {
            config.allowlist = makesync::host::HostAllowlist::with_extra_hosts([
                crate::simulator::DEMO_INSTANCE_HOST,
            ])
            .expect("instance host");
        })
        .await;
        let sdk = moto_sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);

        let mut vars = create_resources(&dynamodb, &sqs).await;
        for (name, value) in overrides {
            vars.insert(name.to_string(), value.to_string());
        }
        let settings =
            AwsSettings::from_lookup(|name| vars.get(name).cloned()).expect("test settings");
        let backend = AwsBackend::new(&sdk, settings.clone(), make.clock_arc());
        Self {
            make,
            settings,
            backend,
            dynamodb,
            sqs,
            secrets,
            metrics: Arc::new(EmfMemory::default()),
        }
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.make.clock_arc()
    }

    pub fn worker(&self) -> Worker {
        makesync_worker::worker_for(
            &self.backend,
            self.make.make.clone(),
            self.clock(),
            self.metrics.clone(),
        )
    }

    pub fn scheduler(&self) -> Scheduler {
        makesync_scheduler::scheduler_for(
            &self.backend,
            self.make.make.clone(),
            self.clock(),
            self.metrics.clone(),
        )
        .expect("scheduler")
    }

    /// A backend with `settings` whose SDK clients go through a recording proxy of their own
    /// (to moto): the proxy lists every AWS call they make.
    pub async fn recorded_backend(
        &self,
        settings: &AwsSettings,
    ) -> (AwsBackend, crate::fault_proxy::FaultProxy) {
        let moto = std::env::var(MOTO_ENDPOINT_ENV).expect("needs moto");
        let proxy = crate::fault_proxy::FaultProxy::start(&moto, 1)
            .await
            .expect("proxy");
        let sdk = moto_sdk_config()
            .await
            .to_builder()
            .endpoint_url(proxy.url())
            .build();
        let backend = AwsBackend::new(&sdk, settings.clone(), self.clock());
        (backend, proxy)
    }

    pub fn connect_service(&self) -> ConnectService {
        makesync_connect::service_for(&self.backend, self.make.make.clone(), self.clock())
            .expect("connect service")
    }

    /// The connection as stored now (it must be).
    pub async fn stored_connection(
        &self,
        id: &makesync::connection::ConnectionId,
    ) -> makesync::connection::Connection {
        use makesync::ports::ConnectionStore;
        self.backend
            .store
            .get_connection(id)
            .await
            .expect("the store answers")
            .expect("the connection is stored")
    }

    /// Takes every message off the queue, as the SQS event source hands them to the worker.
    /// Each batch is deleted as it is received (moto's receive slows down with every message
    /// in flight), so a message is taken once.
    pub async fn take_messages(&self) -> Vec<SqsMessage> {
        let mut messages = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(self.settings.queue_url.as_deref().expect("queue"))
                .max_number_of_messages(10)
                .visibility_timeout(3600)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let batch = output.messages();
            if batch.is_empty() {
                break;
            }
            let receipts = batch
                .iter()
                .enumerate()
                .map(|(n, message)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(message.receipt_handle().unwrap_or_default())
                        .build()
                        .expect("id and receipt handle")
                })
                .collect::<Vec<_>>();
            self.sqs
                .delete_message_batch()
                .queue_url(self.settings.queue_url.as_deref().expect("queue"))
                .set_entries(Some(receipts))
                .send()
                .await
                .expect("delete");
            for message in batch {
                let mut record = SqsMessage::default();
                record.message_id = message.message_id().map(str::to_string);
                record.receipt_handle = message.receipt_handle().map(str::to_string);
                record.body = message.body().map(str::to_string);
                record.event_source = Some("aws:sqs".into());
                messages.push(record);
            }
        }
        messages
    }

    /// Puts raw bodies on the queue (a producer that sends something malformed).
    pub async fn send_raw(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(self.settings.queue_url.as_deref().expect("queue"))
            .message_body(body)
            .send()
            .await
            .expect("send");
    }

    /// Secret names under this test's prefix, from every page of the listing (the server
    /// holds other tests' secrets too).
    pub async fn secret_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let output = self
                .secrets
                .list_secrets()
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .expect("list secrets");
            names.extend(
                output
                    .secret_list()
                    .iter()
                    .filter_map(|s| s.name())
                    .filter(|name| name.starts_with(&self.settings.secret_prefix))
                    .map(str::to_string),
            );
            match output.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return names,
            }
        }
    }

    /// Every item of `table`, each as its debug text: to look for a name or an email
    /// anywhere in it.
    pub async fn table_text(&self, table: &str) -> Vec<String> {
        self.scan(table)
            .await
            .iter()
            .map(|item| format!("{item:?}"))
            .collect()
    }

    pub async fn item_count(&self, table: &str) -> usize {
        self.scan(table).await.len()
    }

    /// Every item of `table`, page after page.
    async fn scan(
        &self,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return items,
            }
        }
    }
}

/// Creates a fresh set of makesync's tables and queue on moto, named with a random suffix, and
/// returns the settings variables that point at them.
pub async fn create_resources(
    dynamodb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
) -> HashMap<String, String> {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let connections_table = format!("makesync-connections-{suffix}");
    let users_table = format!("makesync-users-{suffix}");
    let runs_table = format!("makesync-sync-runs-{suffix}");
    let credentials_table = format!("makesync-credentials-{suffix}");
    create_table(dynamodb, &connections_table, None).await;
    create_table(dynamodb, &credentials_table, None).await;
    create_table(
        dynamodb,
        &users_table,
        Some(("userId", ScalarAttributeType::N)),
    )
    .await;
    create_table(
        dynamodb,
        &runs_table,
        Some(("runId", ScalarAttributeType::S)),
    )
    .await;
    // As in the template: runs expire, and so do removed users.
    for table in [&runs_table, &users_table] {
        enable_ttl(dynamodb, table).await;
    }
    let queue_url = create_queue(sqs, &format!("makesync-sync-{suffix}")).await;
    HashMap::from([
        ("MAKESYNC_CONNECTIONS_TABLE".into(), connections_table),
        ("MAKESYNC_CREDENTIALS_TABLE".into(), credentials_table),
        ("MAKESYNC_USERS_TABLE".into(), users_table),
        ("MAKESYNC_RUNS_TABLE".into(), runs_table),
        ("MAKESYNC_QUEUE_URL".into(), queue_url),
        (
            "MAKESYNC_SECRET_PREFIX".into(),
            format!("makesync-test-{suffix}/connections/"),
        ),
    ])
}

/// Creates a queue on moto and returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue created")
        .queue_url()
        .expect("queue URL")
        .to_string()
}

pub fn sqs_event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    sort_key: Option<(&str, ScalarAttributeType)>,
) {
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("key schema")
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute definition")
    };
    // As in the template: credentials are keyed by their own id, everything else by the
    // connection's.
    let hash = if name.contains("-credentials-") {
        "credentialId"
    } else {
        "connectionId"
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(hash, KeyType::Hash))
        .attribute_definitions(attribute(hash, ScalarAttributeType::S));
    if let Some((sort, kind)) = sort_key {
        request = request
            .key_schema(key(sort, KeyType::Range))
            .attribute_definitions(attribute(sort, kind));
    }
    if name.contains("-connections-") {
        // As in the template: the index of a tenant's connections.
        request = request
            .attribute_definitions(attribute("tenantId", ScalarAttributeType::S))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(makesync::aws::TENANT_INDEX)
                    .key_schema(key("tenantId", KeyType::Hash))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            );
    }
    if name.contains("-users-") || name.contains("-connections-") {
        // As in the template: the users and connections tables' streams feed the events
        // function.
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream specification"),
        );
    }
    request.send().await.expect("table created");
    wait_until_active(client, name).await;
}

/// DynamoDB creates a table, and its indexes, asynchronously: usable once ACTIVE (dynalite
/// keeps them CREATING for a while, as DynamoDB does; moto makes them ACTIVE at once).
async fn wait_until_active(client: &aws_sdk_dynamodb::Client, name: &str) {
    for _ in 0..600 {
        let table = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe table")
            .table
            .expect("a table description");
        let indexes_active = table
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status() == Some(&IndexStatus::Active));
        if table.table_status() == Some(&TableStatus::Active) && indexes_active {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("table {name} did not become ACTIVE within 30 s");
}

/// The TTL on `expiresAt` (epoch seconds) that the template declares on the runs and users
/// tables.
/// dynalite does not implement `UpdateTimeToLive`: there the TTL is left off. Nothing the
/// tests check depends on it — the functions write `expiresAt` whatever the table's setting,
/// and no emulator deletes expired items.
async fn enable_ttl(dynamodb: &aws_sdk_dynamodb::Client, table: &str) {
    let result = dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expiresAt")
                .build()
                .expect("TTL specification"),
        )
        .send()
        .await;
    if let Err(error) = result {
        let unknown = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&error)
            == Some("UnknownOperationException");
        assert!(unknown, "TTL enabled: {error:?}");
    }
}
