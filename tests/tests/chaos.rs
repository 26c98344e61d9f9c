//! The chaos run: many connections, several scheduler rounds, the worker handling batches
//! concurrently, while Make (the simulator) and AWS (moto behind a fault-injecting proxy) fail
//! by seeded chance, messages are delivered twice and out of order, tokens are revoked
//! mid-sync and an organization is deleted. Then faults off, a clean round, and the store is
//! checked against the simulator's ground truth.
//!
//! The seed is `MAKESYNC_CHAOS_SEED` (a fixed default, so a run can be repeated); the summary
//! line says what was injected. Needs moto: `bash tests/run.sh` runs it.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use makesync::aws::{AwsBackend, AwsSettings};
use makesync::clock::{Clock, ManualClock};
use makesync::connect::{response_json, ConnectService};
use makesync::connection::{ConnectionId, ConnectionStatus};
use makesync::host::MakeHost;
use makesync::make::{MakeApi, MakeApiConfig, RetryPolicy};
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, SyncRunStore, UserStore};
use makesync::run::RunOutcome;
use makesync::schedule::Scheduler;
use makesync::user::UserStatus;
use makesync::worker::{Deadline, Worker};
use makesync_simulator::{demo_world, Chaos, ListShape, Simulator, TokenGrant, World};
use makesync_tests::aws::{create_resources, moto_sdk_config, MOTO_ENDPOINT_ENV};
use makesync_tests::fault_proxy::FaultProxy;
use makesync_tests::CapturedLogs;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_SEED: u64 = 20_261_123;
/// Rounds with faults, then clean rounds until everything synced.
const CHAOS_ROUNDS: u32 = 4;
const MAKE_FAULT_RATE: f64 = 0.08;
const AWS_FAULT_RATE: f64 = 0.04;
/// SQS's `maxReceiveCount` in the template: then the dead-letter queue.
const MAX_RECEIVES: u32 = 5;
const BATCH: usize = 10;
const FIRST_ORGANIZATION: u64 = 7000;

struct Connection {
    /// Minted by connect on the first connect (a placeholder before).
    id: ConnectionId,
    connected: bool,
    organization: u64,
    tenant: String,
    token: String,
}

struct Run {
    seed: u64,
    rng: fastrand::Rng,
    clock: ManualClock,
    simulator: Simulator,
    proxy: FaultProxy,
    direct: AwsBackend,
    worker: Worker,
    scheduler: Scheduler,
    connect: ConnectService,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    connections: Vec<Connection>,
    /// Every token ever issued: none may appear in any output.
    tokens: BTreeSet<String>,
    deleted: BTreeSet<u64>,
    next_user: u64,
    responses: Vec<String>,
    logs: CapturedLogs,
    // What the run counted.
    deliveries: u32,
    lost: u32,
    dead_lettered: u32,
    duplicates: u32,
    false_removals: Vec<String>,
    scheduler_failed_sends: u32,
    make_faults: BTreeMap<String, u32>,
    /// For each deleted organization's connections, the users removed when it was deleted.
    removed_at_deletion: BTreeMap<String, BTreeSet<u64>>,
}

fn world(rng: &mut fastrand::Rng, connections: usize) -> World {
    let mut world = demo_world();
    for n in 0..connections as u64 {
        let organization = FIRST_ORGANIZATION + n;
        // Most organizations are small; every tenth is large enough to be paged.
        let members = if n % 10 == 9 {
            rng.u64(300..500)
        } else {
            rng.u64(3..40)
        };
        world.add_generated_organization(
            organization,
            "eu1.make.com",
            Some(600),
            members,
            organization * 10_000,
        );
        world.add_member(organization, 1, 12, None);
    }
    world
}

impl Run {
    async fn start(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let organizations = 50;
        let clock = ManualClock::default();
        let simulator =
            Simulator::start_on(world(&mut rng, organizations), Arc::new(clock.clone()), 0)
                .await
                .expect("simulator");
        let moto = std::env::var(MOTO_ENDPOINT_ENV).expect("moto: run `bash tests/run.sh`");
        let proxy = FaultProxy::start(&moto, seed).await.expect("proxy");

        let moto_sdk = moto_sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&moto_sdk);
        let sqs = aws_sdk_sqs::Client::new(&moto_sdk);
        let vars = create_resources(&dynamodb, &sqs).await;
        let settings = AwsSettings::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let queue_url = settings.queue_url.clone().unwrap();
        let proxied_sdk = moto_sdk.to_builder().endpoint_url(proxy.url()).build();
        let clock_arc: Arc<dyn Clock> = Arc::new(clock.clone());
        let backend = AwsBackend::new(&proxied_sdk, settings.clone(), clock_arc.clone());
        let direct = AwsBackend::new(&moto_sdk, settings, clock_arc.clone());

        let config = MakeApiConfig {
            base_url_override: Some(simulator.base_url().parse().unwrap()),
            page_size: 100,
            member_lookups: 500,
            request_timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(60),
            },
            ..MakeApiConfig::default()
        };
        let make = MakeApi::new(config, clock_arc.clone()).unwrap();
        let metrics = Arc::new(makesync::metrics::NoMetrics);
        let worker =
            makesync_worker::worker_for(&backend, make.clone(), clock_arc.clone(), metrics.clone());
        let scheduler =
            makesync_scheduler::scheduler_for(&backend, make.clone(), clock_arc.clone(), metrics)
                .unwrap();
        let connect = makesync_connect::service_for(&backend, make, clock_arc).unwrap();
        Self {
            seed,
            rng,
            clock,
            simulator,
            proxy,
            direct,
            worker,
            scheduler,
            connect,
            sqs,
            queue_url,
            connections: Vec::new(),
            tokens: BTreeSet::new(),
            deleted: BTreeSet::new(),
            next_user: 90_000_000,
            responses: Vec::new(),
            logs: CapturedLogs::default(),
            deliveries: 0,
            lost: 0,
            dead_lettered: 0,
            duplicates: 0,
            false_removals: Vec::new(),
            scheduler_failed_sends: 0,
            make_faults: BTreeMap::new(),
            removed_at_deletion: BTreeMap::new(),
        }
    }

    fn new_token(&mut self) -> String {
        let token = format!("chaos-{:016x}{:016x}", self.rng.u64(..), self.rng.u64(..));
        self.simulator.world().add_token(
            &token,
            TokenGrant::new(1, &["organizations:read", "user:read"]),
        );
        self.tokens.insert(token.clone());
        token
    }

    /// Connects (or reconnects) connection `index` with a fresh token, as the backend would.
    async fn connect(&mut self, index: usize) {
        let token = self.new_token();
        let connection = &mut self.connections[index];
        connection.token = token.clone();
        let mut payload = json!({
            "host": "eu1.make.com",
            "organizationId": connection.organization,
            "token": token,
            "tenantId": connection.tenant,
        });
        if connection.connected {
            payload["connectionId"] = json!(connection.id.as_str());
        }
        let response = response_json(&self.connect.handle_payload(&payload).await);
        self.responses.push(response.to_string());
        assert_eq!(response["status"], "active", "{response}");
        connection.id = ConnectionId::parse(response["connectionId"].as_str().unwrap()).unwrap();
        connection.connected = true;
    }

    fn set_faults(&mut self, on: bool, cut_members: bool) {
        let mut world = self.simulator.world();
        if let Some(chaos) = world.faults.chaos.take() {
            for (kind, count) in chaos.injected {
                *self.make_faults.entry(kind).or_default() += count;
            }
        }
        world.faults.chaos = on.then(|| {
            Chaos::new(
                self.seed ^ u64::from(self.clock.monotonic().as_secs() as u32),
                MAKE_FAULT_RATE,
                Duration::from_millis(1500),
            )
        });
        // In some rounds the member list is cut short (lookups fill it in): a sync that took
        // the cut list for the whole one would remove the members past the cut.
        world.faults.members_list = if on && cut_members {
            ListShape::UnpagedCut { at: 250 }
        } else {
            ListShape::Unpaged
        };
        drop(world);
        self.proxy.set_rate(if on { AWS_FAULT_RATE } else { 0.0 });
    }

    /// Between rounds: members join and leave, roles change, people log in. A member who
    /// left never comes back, so a stored removal of someone still in Make is always false.
    fn change_make(&mut self) {
        let mut world = self.simulator.world();
        for connection in &self.connections {
            let organization = connection.organization;
            if self.deleted.contains(&organization) || self.rng.f64() > 0.5 {
                continue;
            }
            let members: Vec<u64> = world.organizations[&organization]
                .members
                .keys()
                .copied()
                .filter(|id| *id != 1)
                .collect();
            if let Some(leaving) = members.get(self.rng.usize(0..members.len().max(1))) {
                world.remove_member(organization, *leaving);
            }
            if let Some(promoted) = members.get(self.rng.usize(0..members.len().max(1))) {
                if world.organizations[&organization]
                    .members
                    .contains_key(promoted)
                {
                    world.set_role(organization, *promoted, 12);
                    world.log_in(*promoted, self.clock.wall());
                }
            }
            self.next_user += 1;
            let id = self.next_user;
            world.add_user(
                id,
                &format!("Joiner {id}"),
                &format!("j{id}@chaos.example"),
                None,
            );
            world.add_member(organization, id, 13, Some("pending"));
        }
    }

    /// One scheduler fan-out, then every message through the worker until none is left.
    async fn round(&mut self, deadline_secs: u64) {
        match self.scheduler.fan_out().await {
            Ok(summary) => self.scheduler_failed_sends += summary.failed,
            Err(_) => self.scheduler_failed_sends += 1,
        }
        self.drain(deadline_secs).await;
    }

    async fn take_queue(&self) -> Vec<SqsMessage> {
        let mut messages = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(3600)
                .send()
                .await
                .expect("receive");
            if output.messages().is_empty() {
                return messages;
            }
            for message in output.messages() {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
                let mut record = SqsMessage::default();
                record.message_id = message.message_id().map(str::to_string);
                record.body = message.body().map(str::to_string);
                messages.push(record);
            }
        }
    }

    /// SQS, played by the harness: batches of up to ten, some messages twice, in shuffled
    /// order, three batches at once; what the worker returns comes back (same message id)
    /// until its fifth receive, then goes to the dead-letter queue.
    async fn drain(&mut self, deadline_secs: u64) {
        let mut pending: Vec<(SqsMessage, u32)> = self
            .take_queue()
            .await
            .into_iter()
            .map(|m| (m, 0))
            .collect();
        while !pending.is_empty() {
            let mut deliveries: Vec<SqsMessage> = Vec::new();
            let mut receives: HashMap<String, u32> = HashMap::new();
            for (message, count) in &pending {
                let id = message.message_id.clone().unwrap();
                receives.insert(id, count + 1);
                deliveries.push(message.clone());
                if self.rng.f64() < 0.1 {
                    deliveries.push(message.clone());
                    self.duplicates += 1;
                }
            }
            self.rng.shuffle(&mut deliveries);
            self.deliveries += deliveries.len() as u32;
            let delivered: BTreeMap<String, usize> =
                deliveries.iter().fold(BTreeMap::new(), |mut counts, m| {
                    *counts.entry(m.message_id.clone().unwrap()).or_default() += 1;
                    counts
                });
            let before = self.logs.text().len();
            let _ = &delivered;
            let mut returned: BTreeSet<String> = BTreeSet::new();
            for group in deliveries.chunks(BATCH * 3) {
                let deadline = Deadline::at(
                    self.clock.wall() + chrono::Duration::seconds(deadline_secs as i64),
                    &self.clock,
                );
                let batches = group.chunks(BATCH).map(|batch| {
                    let mut event = SqsEvent::default();
                    event.records = batch.to_vec();
                    makesync_worker::handle(&self.worker, event, Some(deadline))
                });
                for response in futures_util::future::join_all(batches).await {
                    for failure in response.batch_item_failures {
                        returned.insert(failure.item_identifier);
                    }
                }
            }
            let lines = self.logs.text()[before..].to_string();
            self.account(&lines, &delivered, &returned);
            pending = pending
                .into_iter()
                .filter(|(m, _)| returned.contains(m.message_id.as_ref().unwrap()))
                .filter_map(|(m, _)| {
                    let count = receives[m.message_id.as_ref().unwrap()];
                    if count >= MAX_RECEIVES {
                        self.dead_lettered += 1;
                        None
                    } else {
                        Some((m, count))
                    }
                })
                .collect();
            // The visibility timeout passes before SQS delivers them again.
            self.clock.advance(Duration::from_secs(1800));
        }
    }

    /// Every delivery must have left exactly one line saying what became of it; the ones
    /// that say "returned" must be the batch item failures, and only those.
    fn account(
        &mut self,
        logs: &str,
        delivered: &BTreeMap<String, usize>,
        returned: &BTreeSet<String>,
    ) {
        let mut outcomes: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        for line in logs.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let (Some(id), Some(message)) =
                (entry["message_id"].as_str(), entry["message"].as_str())
            else {
                continue;
            };
            let goes_back = match message {
                "sync succeeded" | "sync message dropped" => false,
                "sync failed" => entry["retry"].as_bool().unwrap_or(true),
                "sync deferred; SQS will deliver it again"
                | "sync not started; SQS will deliver it again" => true,
                _ => continue,
            };
            outcomes
                .entry(id.to_string())
                .or_default()
                .push((message.to_string(), goes_back));
        }
        for (id, count) in delivered {
            let seen = outcomes.get(id).map_or(0, Vec::len);
            if seen < *count {
                self.lost += (*count - seen) as u32;
            }
            let wants_back = outcomes
                .get(id)
                .is_some_and(|o| o.iter().any(|(_, back)| *back));
            assert_eq!(
                wants_back,
                returned.contains(id),
                "message {id}: the worker's lines {:?} and its batch item failures disagree",
                outcomes.get(id)
            );
        }
    }

    /// A user the store marks removed who is still a member in Make was removed falsely.
    async fn check_no_false_removal(&mut self, round: u32) {
        let world = self.simulator.world().clone();
        for connection in &self.connections {
            let Some(organization) = world.organizations.get(&connection.organization) else {
                continue;
            };
            for user in self.direct.store.list_users(&connection.id).await.unwrap() {
                if user.status == UserStatus::Removed
                    && organization.members.contains_key(&user.user_id)
                {
                    self.false_removals.push(format!(
                        "round {round}: {} user {}",
                        connection.id, user.user_id
                    ));
                }
            }
        }
    }
}

#[tokio::test]
async fn the_store_matches_make_after_a_run_of_faults() {
    let seed = std::env::var("MAKESYNC_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut run = Run::start(seed).await;
    let logs = run.logs.clone();
    let _capture = logs.install_filtered("makesync=trace,makesync_worker=trace,warn");

    // Fifty organizations, one of them connected twice (two tenants).
    for n in 0..51u64 {
        let organization = FIRST_ORGANIZATION + (n % 50);
        run.connections.push(Connection {
            id: ConnectionId::parse(&format!("chaos-{n:02}")).unwrap(),
            connected: false,
            organization,
            tenant: format!("tenant-{}", n / 50),
            token: String::new(),
        });
        run.connect(n as usize).await;
    }

    for round in 0..CHAOS_ROUNDS {
        run.set_faults(true, round % 2 == 1);
        if round == 1 {
            // A token is revoked while its sync reads the member list.
            let victim = 3;
            let (organization, token) = (
                run.connections[victim].organization,
                run.connections[victim].token.clone(),
            );
            run.simulator.world().faults.revoke_during = Some((organization, token));
        }
        if round == 2 {
            // An organization is deleted in Make.
            let gone = FIRST_ORGANIZATION + 7;
            run.simulator.world().organizations.remove(&gone);
            run.deleted.insert(gone);
            for connection in run.connections.iter().filter(|c| c.organization == gone) {
                let removed = run
                    .direct
                    .store
                    .list_users(&connection.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|u| u.status == UserStatus::Removed)
                    .map(|u| u.user_id)
                    .collect();
                run.removed_at_deletion
                    .insert(connection.id.to_string(), removed);
            }
        }
        run.round(280).await;
        run.check_no_false_removal(round).await;
        run.change_make();
    }

    // Faults off. The customer reconnects what was revoked or paused; time passes (leases and
    // cached tokens expire); then clean rounds until every connection has synced.
    run.set_faults(false, false);
    run.clock.advance(Duration::from_secs(3600));
    for index in 0..run.connections.len() {
        let connection = &run.connections[index];
        if run.deleted.contains(&connection.organization) {
            continue;
        }
        let stored = run
            .direct
            .store
            .get_connection(&connection.id)
            .await
            .unwrap()
            .unwrap();
        let revoked = run
            .simulator
            .world()
            .tokens
            .get(&connection.token)
            .is_none_or(|grant| grant.revoked);
        if stored.status != ConnectionStatus::Active || revoked {
            run.connect(index).await;
        }
    }
    for clean in 0..3 {
        run.round(280).await;
        run.check_no_false_removal(CHAOS_ROUNDS + clean).await;
        let mut unsynced = 0;
        for connection in &run.connections {
            if run.deleted.contains(&connection.organization) {
                continue;
            }
            let runs = run.direct.store.list_runs(&connection.id, 1).await.unwrap();
            if runs
                .first()
                .is_none_or(|r| r.outcome != RunOutcome::Succeeded)
            {
                unsynced += 1;
            }
        }
        if unsynced == 0 {
            break;
        }
        run.clock.advance(Duration::from_secs(3600));
    }

    // Every connection's users equal Make's.
    let world = run.simulator.world().clone();
    let mut mismatches = Vec::new();
    for connection in &run.connections {
        let stored = run.direct.store.list_users(&connection.id).await.unwrap();
        let Some(organization) = world.organizations.get(&connection.organization) else {
            // Deleted in Make: its syncs fail, and nobody was marked removed on that account.
            let removed: BTreeSet<u64> = stored
                .iter()
                .filter(|u| u.status == UserStatus::Removed)
                .map(|u| u.user_id)
                .collect();
            assert_eq!(
                Some(&removed),
                run.removed_at_deletion.get(connection.id.as_str()),
                "{}",
                connection.id
            );
            continue;
        };
        let present: BTreeMap<u64, (u32, UserStatus, String)> = stored
            .iter()
            .filter(|u| u.status != UserStatus::Removed)
            .map(|u| (u.user_id, (u.role_id, u.status, u.email.clone())))
            .collect();
        let expected: BTreeMap<u64, (u32, UserStatus, String)> = organization
            .members
            .iter()
            .map(|(id, membership)| {
                let status = UserStatus::from_invitation(membership.invitation.as_deref()).unwrap();
                (
                    *id,
                    (membership.role_id, status, world.users[id].email.clone()),
                )
            })
            .collect();
        if present != expected {
            mismatches.push(connection.id.to_string());
        }
        let lease = run
            .direct
            .store
            .get_connection(&connection.id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !lease.is_leased_at(run.clock.wall()),
            "{} is still leased",
            connection.id
        );
        let host = MakeHost::parse("eu1.make.com").unwrap();
        let probe = ConnectionId::parse("chaos-probe").unwrap();
        let organization_id = OrganizationId::new(connection.organization).unwrap();
        let now = run.clock.wall();
        assert!(
            run.direct
                .store
                .acquire_organization_lease(&host, organization_id, &probe, now, now)
                .await
                .unwrap(),
            "organization {} is still leased",
            connection.organization
        );
        // Runs add up: finished, and every fetched member counted once.
        for sync in run
            .direct
            .store
            .list_runs(&connection.id, 1000)
            .await
            .unwrap()
        {
            assert_ne!(
                sync.outcome,
                RunOutcome::Running,
                "{} left a run running",
                connection.id
            );
            if sync.outcome == RunOutcome::Succeeded {
                let c = sync.counts;
                assert_eq!(
                    c.fetched,
                    c.added + c.updated + c.unchanged,
                    "{}: {c:?}",
                    connection.id
                );
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "users differ from Make's: {mismatches:?}"
    );

    // No token byte anywhere: logs, connect's answers, and every item of every table.
    let mut outputs = vec![logs.text()];
    outputs.extend(run.responses.iter().cloned());
    for table in [
        &run.direct.settings.connections_table,
        &run.direct.settings.users_table,
        &run.direct.settings.runs_table,
    ] {
        let client = aws_sdk_dynamodb::Client::new(&moto_sdk_config().await);
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            outputs.push(format!("{:?}", page.items()));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
    }
    let leaked = run
        .tokens
        .iter()
        .filter(|token| outputs.iter().any(|text| text.contains(token.as_str())))
        .count();

    println!(
        "chaos: seed {}, connections {}, rounds {} + clean, deliveries {} ({} duplicated), faults injected: Make {:?}, AWS {:?}, scheduler sends failed {}, dead-lettered {}, false removals {}, lost messages {}, leaked tokens {}",
        run.seed,
        run.connections.len(),
        CHAOS_ROUNDS,
        run.deliveries,
        run.duplicates,
        run.make_faults,
        run.proxy.injected(),
        run.scheduler_failed_sends,
        run.dead_lettered,
        run.false_removals.len(),
        run.lost,
        leaked
    );
    assert!(run.false_removals.is_empty(), "{:?}", run.false_removals);
    assert_eq!(run.lost, 0, "messages without an outcome");
    assert_eq!(leaked, 0, "a token is in an output");
}
