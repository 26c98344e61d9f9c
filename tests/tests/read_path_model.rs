//! The read path, proven against a model of Make whose members join and leave at any moment
//! between any two answers, with the answers given in any order (`makesync_tests::make_model`),
//! in every API shape the other tests run in (`ApiShape::ALL`: the member list whole, paged or
//! cut, a missing scope answered 403 or 401). It drives the real client, snapshot and engine
//! on the memory store and checks every run:
//!
//! - a run that succeeds stored every member present throughout it, and none absent throughout
//!   (so a removal it wrote is one that happened);
//! - a run that fails changed no stored user;
//! - after the changes, a calm sync leaves the store equal to Make.
//!
//! `cargo test -p makesync-tests --test read_path_model -- --nocapture` prints the seed and
//! what the runs did; `MAKESYNC_MODEL_SEED=<seed>` runs a seed again, `MAKESYNC_MODEL_CASES`
//! more cases. A failure prints the shortest steps that break the property.

use makesync::clock::{Clock, ManualClock};
use makesync::connection::{Connection, ConnectionId};
use makesync::host::MakeHost;
use makesync::make::{MakeApi, MakeApiConfig, MakeClient};
use makesync::organization::OrganizationId;
use makesync::ports::{ConnectionStore, UserStore};
use makesync::run::{RunOutcome, SyncReason};
use makesync::store::MemoryStore;
use makesync::sync::{SyncEngine, SyncReport};
use makesync::tenant::TenantId;
use makesync::token::ApiToken;
use makesync::user::UserStatus;
use makesync_tests::make_model::{MakeModel, Step, Watched, MODEL_ORGANIZATION};
use makesync_tests::simulator::ListShape;
use makesync_tests::ApiShape;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Cases per API shape in a plain run (CI's).
const CASES: u32 = 256;

/// One case: an organization, how the client reads it, and what happens during two syncs.
#[derive(Debug, Clone)]
struct Case {
    members: BTreeSet<u64>,
    page_size: u32,
    /// Rows `/users` answers a page at most (Make may apply less than asked).
    users_page_cap: usize,
    page_concurrency: u32,
    /// Where a member list that Make cuts is cut, in the shapes that cut it: most often a few
    /// members short of the organization, where it leaves its newest members to `/users`.
    cut_at: u32,
    first_sync: Vec<Step>,
    second_sync: Vec<Step>,
}

/// A change to the organization: someone joins, or a member leaves.
fn change() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (1u64..50).prop_map(Step::Join),
        2 => (0usize..40).prop_map(Step::Leave),
    ]
}

/// The steps of one sync: answers, most of them to the oldest request waiting, some to any
/// other; before some answers, a few changes at once.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    let answer = prop_oneof![2 => Just(0usize), 3 => 0usize..8].prop_map(Step::Answer);
    let changes = prop_oneof![
        3 => Just(Vec::new()),
        2 => proptest::collection::vec(change(), 1..4),
    ];
    proptest::collection::vec((changes, answer), 0..24).prop_map(|groups| {
        groups
            .into_iter()
            .flat_map(|(mut changes, answer)| {
                changes.push(answer);
                changes
            })
            .collect()
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::btree_set(1u64..50, 0..32),
        2u32..7,
        0usize..3,
        1u32..5,
        prop_oneof![3 => (1u32..6).prop_map(|short| -(short as i64)), 1 => 1i64..30],
        steps(),
        steps(),
    )
        .prop_map(
            |(members, page_size, less, page_concurrency, cut, first_sync, second_sync)| {
                let cut_at = if cut < 0 {
                    (members.len() as i64 + cut).max(1) as u32
                } else {
                    cut as u32
                };
                Case {
                    members,
                    page_size,
                    users_page_cap: (page_size as usize).saturating_sub(less).max(2),
                    page_concurrency,
                    cut_at,
                    first_sync,
                    second_sync,
                }
            },
        )
}

/// What the runs of all cases did, to show the property was put to work.
#[derive(Default)]
struct Tally {
    complete: AtomicU32,
    complete_while_changing: AtomicU32,
    refused: AtomicU32,
}

/// A makesync stack on the memory store, reading Make through the model.
struct Stack {
    model: MakeModel,
    make: MakeApi,
    store: Arc<MemoryStore>,
    engine: SyncEngine,
    connection: Connection,
}

impl Stack {
    async fn new(model: MakeModel, page_size: u32, page_concurrency: u32) -> Stack {
        let clock = ManualClock::default();
        let config = MakeApiConfig {
            page_size,
            page_concurrency,
            ..MakeApiConfig::default()
        };
        let make =
            MakeApi::with_transport(config, Arc::new(clock.clone()), Arc::new(model.clone()));
        let store = Arc::new(MemoryStore::new());
        let engine = SyncEngine::new(
            store.clone(),
            store.clone(),
            store.clone(),
            Arc::new(clock.clone()),
        );
        let host = MakeHost::parse("eu1.make.com").unwrap();
        let organization = OrganizationId::new(MODEL_ORGANIZATION).unwrap();
        let connection = Connection::new(
            ConnectionId::for_organization(&host, organization),
            TenantId::parse("tenant-a").unwrap(),
            host,
            organization,
            clock.wall(),
        );
        store.create_connection(&connection).await.unwrap();
        Stack {
            model,
            make,
            store,
            engine,
            connection,
        }
    }

    /// The stored users: present ones, and every one with their status.
    async fn stored(&self) -> (BTreeSet<u64>, Vec<(u64, UserStatus)>) {
        let users = self.store.list_users(&self.connection.id).await.unwrap();
        let present = users
            .iter()
            .filter(|u| u.status != UserStatus::Removed)
            .map(|u| u.user_id)
            .collect();
        (
            present,
            users.iter().map(|u| (u.user_id, u.status)).collect(),
        )
    }

    /// The connection as stored (with its last count), and a client for it: what the worker
    /// syncs with.
    async fn as_the_worker_syncs(&self) -> (Connection, MakeClient) {
        let connection = self
            .store
            .get_connection(&self.connection.id)
            .await
            .unwrap()
            .unwrap();
        let client = self
            .make
            .client(
                &connection.host,
                connection.organization_id,
                ApiToken::parse("t-model").unwrap(),
            )
            .unwrap();
        (connection, client)
    }

    /// One sync, as the worker runs it, with `steps` deciding the answers; what the model saw
    /// during it.
    async fn sync(&self, steps: &[Step]) -> (SyncReport, Watched) {
        let (connection, client) = self.as_the_worker_syncs().await;
        self.model.start_watching();
        let sync = self
            .engine
            .sync(&connection, &client, SyncReason::Scheduled);
        let report = self.model.drive(sync, steps).await;
        (report, self.model.watched())
    }

    /// One sync, checked: a complete run stored every member present throughout and none
    /// absent throughout; a failed one changed nothing.
    async fn checked_sync(&self, steps: &[Step], tally: &Tally) -> Result<(), TestCaseError> {
        let before = self.stored().await.1;
        let (report, watched) = self.sync(steps).await;
        let (present, all) = self.stored().await;
        match report.run.outcome {
            RunOutcome::Succeeded => {
                tally.complete.fetch_add(1, Ordering::Relaxed);
                if watched.throughout != watched.ever {
                    tally
                        .complete_while_changing
                        .fetch_add(1, Ordering::Relaxed);
                }
                let missing: Vec<&u64> = watched.throughout.difference(&present).collect();
                prop_assert!(
                    missing.is_empty(),
                    "members present throughout stored as removed or missing: {:?}; answers: {:?}",
                    missing,
                    self.model.answered()
                );
                let never: Vec<&u64> = present.difference(&watched.ever).collect();
                prop_assert!(
                    never.is_empty(),
                    "stored as present, never a member during the run: {:?}",
                    never
                );
            }
            _ => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                prop_assert_eq!(
                    &before,
                    &all,
                    "a failed run changed stored users: {:?}",
                    report.run.error
                );
            }
        }
        Ok(())
    }
}

fn check(shape: ApiShape, case: &Case, tally: &Tally) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let shape = match shape.members {
        ListShape::UnpagedCut { .. } => ApiShape {
            members: ListShape::UnpagedCut { at: case.cut_at },
            ..shape
        },
        _ => shape,
    };
    runtime.block_on(async {
        let model = MakeModel::new(case.members.iter().copied(), shape, case.users_page_cap);
        let stack = Stack::new(model, case.page_size, case.page_concurrency).await;
        stack.checked_sync(&case.first_sync, tally).await?;
        stack.checked_sync(&case.second_sync, tally).await?;
        // Calm: nobody joins or leaves, answers in order. The store ends equal to Make.
        let (report, _) = stack.sync(&[]).await;
        prop_assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "a calm sync: {:?}",
            report.run.error
        );
        let (present, all) = stack.stored().await;
        prop_assert_eq!(&present, &stack.model.members(), "the store equals Make");
        prop_assert!(all
            .iter()
            .all(|(id, status)| present.contains(id) || *status == UserStatus::Removed));
        Ok(())
    })
}

fn seed() -> u64 {
    std::env::var("MAKESYNC_MODEL_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

#[test]
fn no_member_present_throughout_a_run_is_ever_stored_as_removed() {
    let seed = seed();
    let cases = std::env::var("MAKESYNC_MODEL_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CASES);
    println!(
        "read-path model: seed {seed}, {cases} cases per API shape (again: MAKESYNC_MODEL_SEED={seed})"
    );
    for (n, shape) in ApiShape::ALL.into_iter().enumerate() {
        let tally = Tally::default();
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            // Each shape its own cases.
            rng_seed: RngSeed::Fixed(seed.wrapping_add(n as u64)),
            ..Config::default()
        });
        if let Err(failure) = runner.run(&case(), |case| check(shape, &case, &tally)) {
            panic!("{shape:?}, seed {seed}: {failure}");
        }
        let (complete, changing, refused) = (
            tally.complete.load(Ordering::Relaxed),
            tally.complete_while_changing.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
        );
        println!(
            "  {shape:?}: {complete} runs complete ({changing} of them while members changed), {refused} refused"
        );
        // The property is put to work: most runs complete, many while members change.
        assert!(
            complete > cases,
            "{shape:?}: {complete} complete runs of {}",
            2 * cases
        );
        assert!(
            changing > cases / 4,
            "{shape:?}: {changing} complete while changing"
        );
    }
}

/// The review's N9, as a user met it: a synced organization of 11 members, pages of 4 (the
/// last page holds the anchor row and one more); during the next sync, 1, 2 or 3 members leave
/// just before the last page of `/users`, of the member list or of both is answered, those
/// pages answered after all the others. Whatever the member list's shape, no member who stayed
/// is stored as removed, and the next calm sync leaves the store equal to Make.
#[test]
fn members_leaving_before_the_last_page_never_remove_one_who_stayed() {
    let shapes = [
        ApiShape::new(ListShape::Unpaged, 403),
        ApiShape::new(ListShape::Paged { max: 7 }, 403),
        ApiShape::new(ListShape::UnpagedCut { at: 10 }, 403),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for shape in shapes {
        for held in [&["/users@9"][..], &["/user-organization-roles@9"], &["@9"]] {
            for leavers in 1..=3u64 {
                runtime.block_on(leave_before_the_last_page(shape, held, leavers));
            }
        }
    }
}

async fn leave_before_the_last_page(shape: ApiShape, held: &[&str], leavers: u64) {
    let model = MakeModel::new(1..=11, shape, 4);
    let stack = Stack::new(model.clone(), 4, 4).await;
    let (first, _) = stack.sync(&[]).await;
    assert_eq!(first.run.outcome, RunOutcome::Succeeded);
    // Members 2, 3 and 4 (as many as leave) go once only the last page is left to answer.
    let mut left = false;
    let (connection, client) = stack.as_the_worker_syncs().await;
    model.start_watching();
    let second = model
        .drive_with(
            stack
                .engine
                .sync(&connection, &client, SyncReason::Scheduled),
            |model, waiting| {
                let other = waiting
                    .iter()
                    .position(|w| !held.iter().any(|page| w.ends_with(page)));
                match other {
                    Some(index) => Some(index),
                    None if !left => {
                        left = true;
                        for id in 2..2 + leavers {
                            model.leave(id);
                        }
                        None
                    }
                    None => Some(0),
                }
            },
        )
        .await;
    let what = format!("{shape:?}, {leavers} leaving before {held:?}");
    let (present, _) = stack.stored().await;
    let stayed: BTreeSet<u64> = (1..=11)
        .filter(|id| !(2..2 + leavers).contains(id))
        .collect();
    assert!(
        stayed.is_subset(&present),
        "{what}: run {:?} ({:?}); stored present {present:?}",
        second.run.outcome,
        second.run.error
    );
    let (calm, _) = stack.sync(&[]).await;
    assert_eq!(calm.run.outcome, RunOutcome::Succeeded, "{what}");
    assert_eq!(stack.stored().await.0, model.members(), "{what}");
}

/// An unchanged sync reads the member list's reads together where every shape of the list
/// needs them, and never asks one a shape does not need: with a last count of exactly one
/// page, its first read and the read after it (which tells a whole list of exactly the rows
/// asked from a first page) at once; with a larger count, one read when the list answers
/// whole, and once it has answered as a page, the pages left at once.
#[test]
fn an_unchanged_sync_reads_the_member_list_ahead_only_where_no_shape_pays_for_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let whole = ApiShape::new(ListShape::Unpaged, 403);
    let paged = ApiShape::new(ListShape::Paged { max: 100 }, 403);
    // (shape, members, the member reads asked together at some moment, member reads in all)
    let cases: [(ApiShape, u64, &[&str], usize); 3] = [
        (whole, 10, &["@0", "@9"], 2),
        (whole, 11, &["@0"], 1),
        (paged, 25, &["@9", "@18"], 3),
    ];
    for (shape, members, together, reads) in cases {
        runtime.block_on(async {
            let model = MakeModel::new(1..=members, shape, 10);
            let stack = Stack::new(model.clone(), 10, 4).await;
            let (first, _) = stack.sync(&[]).await;
            assert_eq!(first.run.outcome, RunOutcome::Succeeded);
            let (connection, client) = stack.as_the_worker_syncs().await;
            model.start_watching();
            let mut waiting_members = Vec::new();
            let report = model
                .drive_with(
                    stack
                        .engine
                        .sync(&connection, &client, SyncReason::Scheduled),
                    |_, waiting| {
                        waiting_members.push(
                            waiting
                                .iter()
                                .filter(|w| w.contains("/user-organization-roles"))
                                .map(|w| w.rsplit_once('@').map_or("", |(_, o)| o).to_string())
                                .collect::<Vec<_>>(),
                        );
                        Some(0)
                    },
                )
                .await;
            assert_eq!(report.run.outcome, RunOutcome::Succeeded);
            let what = format!("{shape:?}, {members} members");
            let together: Vec<String> = together
                .iter()
                .map(|offset| offset.trim_start_matches('@').to_string())
                .collect();
            assert!(
                waiting_members.iter().any(|w| w == &together),
                "{what}: member reads waiting together {waiting_members:?}"
            );
            let asked = model
                .answered()
                .iter()
                .filter(|a| a.contains("/user-organization-roles"))
                .count();
            assert_eq!(asked, reads, "{what}: member reads {:?}", model.answered());
        });
    }
}

/// A first sync knows no count: it pages `/users` one by one until the member list's length
/// comes, and then asks the pages that length says are left at once — the page in flight when
/// it comes among them, not asked again.
#[test]
fn a_first_sync_reads_the_pages_the_member_count_says_are_left_at_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let model = MakeModel::new(1..=25, ApiShape::DOCUMENTED, 4);
        let stack = Stack::new(model.clone(), 4, 16).await;
        let (connection, client) = stack.as_the_worker_syncs().await;
        let mut users_waiting = Vec::new();
        let report = model
            .drive_with(
                stack
                    .engine
                    .sync(&connection, &client, SyncReason::Scheduled),
                |_, waiting| {
                    users_waiting.push(
                        waiting
                            .iter()
                            .filter(|w| w.starts_with("/api/v2/users@"))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    // The member list is held until the second /users page is in flight.
                    let members = waiting
                        .iter()
                        .position(|w| w.contains("/user-organization-roles"));
                    let second_page = waiting.iter().any(|w| w == "/api/v2/users@3");
                    match (members, second_page) {
                        (Some(members), true) => Some(members),
                        _ => waiting
                            .iter()
                            .position(|w| !w.contains("/user-organization-roles")),
                    }
                },
            )
            .await;
        assert_eq!(report.run.outcome, RunOutcome::Succeeded);
        assert_eq!(report.run.counts.fetched, 25);
        let together = users_waiting.iter().map(Vec::len).max().unwrap_or_default();
        assert!(
            users_waiting
                .iter()
                .any(|w| w.contains(&"/api/v2/users@3".to_string()) && w.len() > 1),
            "the page in flight and the pages left asked together: {users_waiting:?}"
        );
        assert_eq!(together, 8, "pages 3, 6, …, 24 at once: {users_waiting:?}");
        let user_pages = model
            .answered()
            .iter()
            .filter(|a| a.starts_with("/api/v2/users@"))
            .count();
        assert_eq!(user_pages, 9, "no page asked twice: {:?}", model.answered());
    });
}
