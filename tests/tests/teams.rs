//! Team access against the simulator: each member's team roles, named, in every shape the
//! team lists may have (paged with an echo, paged without one, whole) × every member-list and
//! missing-scope shape (`across_api_shapes!`); a token without `teams:read`.

use makesync::clock::Clock;
use makesync::ports::UserStore;
use makesync::run::RunOutcome;
use makesync::sync::lacks_scope_note;
use makesync::user::{TeamRole, UserRecord, UserStatus};
use makesync_simulator::{demo_world, ListShape, World, DEMO_TEAMS_TOKEN};
use makesync_tests::{across_api_shapes, TestEnv, ACME};
use serde_json::{json, Value};

const ACME_MEMBERS: u32 = 36;

/// How the teams list and each team's member list answer: documented (teams paged with an
/// echo, members whole), and the shapes the documentation leaves open — among them a member
/// list paged at fewer rows than asked (2 of the 10 the tests ask) without saying so.
const TEAM_SHAPES: [(ListShape, ListShape); 5] = [
    (ListShape::Paged { max: 10_000 }, ListShape::Unpaged),
    (ListShape::Paged { max: 2 }, ListShape::Paged { max: 2 }),
    (
        ListShape::Unpaged,
        ListShape::PagedWithoutEcho { max: 10_000 },
    ),
    (
        ListShape::PagedWithoutEcho { max: 10_000 },
        ListShape::Paged { max: 10_000 },
    ),
    (
        ListShape::Paged { max: 10_000 },
        ListShape::PagedWithoutEcho { max: 2 },
    ),
];

/// Whether the member list's team counts count private spaces: the documentation does not
/// say, so every shape runs both ways.
const COUNTS_PRIVATE_SPACES: [bool; 2] = [false, true];

fn shaped(teams: ListShape, members: ListShape) -> World {
    shaped_counting(teams, members, false)
}

fn shaped_counting(teams: ListShape, members: ListShape, private_spaces: bool) -> World {
    let mut world = demo_world();
    world.faults.teams_list = teams;
    world.faults.team_roles_list = members;
    world.faults.team_counts_include_private_spaces = private_spaces;
    world
}

fn role(team_id: u64, team_name: &str, role_id: u32, role_name: &str) -> TeamRole {
    TeamRole {
        team_id,
        team_name: team_name.into(),
        role_id,
        role_name: role_name.into(),
    }
}

/// The requests the simulator saw for the team endpoints.
fn team_requests(env: &TestEnv) -> usize {
    env.simulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/teams"))
        .count()
}

fn teams_of(users: &[UserRecord], user_id: u64) -> Option<Vec<TeamRole>> {
    users
        .iter()
        .find(|u| u.user_id == user_id)
        .unwrap_or_else(|| panic!("user {user_id} is stored"))
        .teams
        .clone()
}

across_api_shapes! {
    async fn every_member_s_team_roles_are_stored_with_their_names(shape: ApiShape) {
        for ((teams, members), private_spaces) in TEAM_SHAPES
            .into_iter()
            .flat_map(|shapes| COUNTS_PRIVATE_SPACES.map(|counted| (shapes, counted)))
        {
            let world = shaped_counting(teams, members, private_spaces);
            let env = TestEnv::start_shaped(world, shape, |_| {}).await;
            let connection = env.connection("eu1.make.com", ACME);
            let report = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(report.run.outcome, RunOutcome::Succeeded, "{:?}", report.run.error);
            assert_eq!(
                report.run.teams_not_read, None,
                "{teams:?} / {members:?}, private spaces counted: {private_spaces}"
            );
            let users = env.store.list_users(&connection.id).await.unwrap();
            assert_eq!(users.len(), ACME_MEMBERS as usize);
            // Ada: two teams; her private space is not a team anyone else can use.
            assert_eq!(
                teams_of(&users, 1),
                Some(vec![
                    role(10010, "My Team", 1, "Team Admin"),
                    role(10012, "Marketing", 4, "Team Monitoring"),
                ]),
                "{teams:?} / {members:?}"
            );
            assert_eq!(teams_of(&users, 2), Some(vec![role(10011, "Finance", 1, "Team Admin")]));
            assert_eq!(teams_of(&users, 100), Some(vec![role(10011, "Finance", 6, "Team Operator")]));
            assert_eq!(teams_of(&users, 12), Some(Vec::new()), "in no team");
        }
    }

    async fn a_team_role_changed_in_make_is_one_update_and_a_member_taken_out_loses_it(shape: ApiShape) {
        for (teams, members) in TEAM_SHAPES {
            let env = TestEnv::start_shaped(shaped(teams, members), shape, |_| {}).await;
            let connection = env.connection("eu1.make.com", ACME);
            let first = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(first.run.outcome, RunOutcome::Succeeded, "{:?}", first.run.error);

            // Rafael: Team Member → Team Admin of Finance.
            env.simulator.world().set_team_role(ACME, 10011, 11, Some(1));
            let changed = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(
                changed.run.counts.updated,
                1,
                "{teams:?} / {members:?}: {:?}",
                changed.changes.iter().map(|c| (c.before.clone(), c.after.clone())).collect::<Vec<_>>()
            );
            assert_eq!(changed.run.counts.unchanged, ACME_MEMBERS - 1);
            assert_eq!(changed.changes.len(), 1);
            let change = &changed.changes[0];
            assert_eq!(change.after.user_id, 11);
            assert_eq!(
                change.before.as_ref().and_then(|b| b.teams.clone()),
                Some(vec![role(10011, "Finance", 3, "Team Member")])
            );
            assert_eq!(change.after.teams, Some(vec![role(10011, "Finance", 1, "Team Admin")]));

            // Zoë leaves Finance: her membership is gone at the next complete snapshot.
            env.simulator.world().set_team_role(ACME, 10011, 2, None);
            let left = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(left.run.counts.updated, 1);
            let users = env.store.list_users(&connection.id).await.unwrap();
            assert_eq!(teams_of(&users, 2), Some(Vec::new()));

            let unchanged = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(unchanged.run.counts.updated, 0, "nothing written twice");
        }
    }

    async fn a_team_member_list_cut_without_saying_so_is_never_stored(shape: ApiShape) {
        // Finance has three members; Make answers the first two of any team, whatever was
        // asked, and says nothing of it.
        for private_spaces in COUNTS_PRIVATE_SPACES {
            let cut = ListShape::UnpagedCut { at: 2 };
            let world = shaped_counting(ListShape::Paged { max: 10_000 }, cut, private_spaces);
            let env = TestEnv::start_shaped(world, shape, |_| {}).await;
            let connection = env.connection("eu1.make.com", ACME);
            let report = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(report.run.outcome, RunOutcome::Succeeded, "{:?}", report.run.error);
            let why = report.run.teams_not_read.expect("teams not read: a list may be cut");
            assert!(why.contains("may be cut"), "{why}");
            let users = env.store.list_users(&connection.id).await.unwrap();
            assert_eq!(users.len(), ACME_MEMBERS as usize, "users and roles are synced");
            assert!(users.iter().all(|u| u.teams.is_none()), "no team data, not part of it");
        }
    }

    async fn team_lists_make_cannot_answer_now_leave_the_team_roles_last_read(shape: ApiShape) {
        let env = TestEnv::start_shaped(demo_world(), shape, |_| {}).await;
        let connection = env.connection("eu1.make.com", ACME);
        let first = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(first.run.teams_not_read, None, "{:?}", first.run.error);
        let read = env.store.list_users(&connection.id).await.unwrap();

        // Every team's member list answers 503, past the client's retries; meanwhile Ada
        // became an Admin and Rafael changed teams in Make.
        {
            let mut world = env.simulator.world();
            world.faults.unavailable_paths.insert("/teams/".into());
            world.set_role(ACME, 1, 12);
            world.set_team_role(ACME, 10011, 11, Some(1));
        }
        let down = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(down.run.outcome, RunOutcome::Succeeded, "{:?}", down.run.error);
        let why = down.run.teams_not_read.clone().expect("the run says teams were not read");
        assert!(why.contains("kept"), "{why}");
        assert_eq!(down.run.counts.updated, 1, "only Ada's role: {:?}", down.changes);
        let ada = &down.changes[0].after;
        assert_eq!((ada.user_id, ada.role_id), (1, 12));
        assert_eq!(ada.teams, teams_of(&read, 1), "written with the team roles last read");
        let kept = env.store.list_users(&connection.id).await.unwrap();
        for user in &kept {
            assert_eq!(user.teams, teams_of(&read, user.user_id), "user {}", user.user_id);
        }

        // Make answers again: the team change is read.
        env.simulator.world().faults.unavailable_paths.clear();
        let back = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(back.run.teams_not_read, None);
        assert_eq!(back.run.counts.updated, 1, "Rafael's team role");
        let users = env.store.list_users(&connection.id).await.unwrap();
        assert_eq!(teams_of(&users, 11), Some(vec![role(10011, "Finance", 1, "Team Admin")]));
    }

    async fn a_token_without_teams_read_syncs_users_and_says_why_teams_were_not_read(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let connection = env.connection("eu1.make.com", ACME);
        // The integration's token: organizations:read and user:read.
        let report = env.sync(&connection).await;
        assert_eq!(report.run.outcome, RunOutcome::Succeeded, "{:?}", report.run.error);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
        assert_eq!(report.run.teams_not_read, Some(lacks_scope_note()));
        assert!(lacks_scope_note().contains("teams:read"));
        let users = env.store.list_users(&connection.id).await.unwrap();
        assert_eq!(users.len(), ACME_MEMBERS as usize);
        assert!(users.iter().all(|u| u.teams.is_none()), "no team data, not part of it");
        let team_reads = team_requests(&env);
        assert_eq!(team_reads, 1, "one refused request, no team's members asked");
    }
}

/// The team reads cost one request for the teams and one per team, whatever the members:
/// measured on the documented shapes at 10 teams × 1,000 users and 100 teams × 10,000 users
/// (each organization also has its first team, "My Team").
#[tokio::test]
async fn team_access_costs_one_request_per_team_and_one_for_the_list() {
    for (teams, users, expected_requests) in [(10u64, 1_000u64, 16u32), (100, 10_000, 107)] {
        let mut world = demo_world();
        world.add_generated_organization(7100, "eu1.make.com", Some(1000), users, 71_000_000);
        world.add_member(7100, 1, 12, None);
        world.add_generated_teams(7100, teams, 710_000);
        let env = TestEnv::start_with(world, |config| {
            config.page_size = makesync::make::MakeApiConfig::default().page_size
        })
        .await;
        let connection = env.connection("eu1.make.com", 7100);
        let report = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "{:?}",
            report.run.error
        );
        let team_requests = team_requests(&env) as u64;
        // The generated teams and the organization's first team, "My Team".
        assert_eq!(team_requests, 1 + teams + 1, "the list, then one per team");
        // organization, roles, members, /users pages (10,000 a page, users + the token's
        // own), teams, each team's members.
        assert_eq!(
            report.run.make_requests, expected_requests,
            "{teams} teams × {users} users"
        );
        let stored = env.store.list_users(&connection.id).await.unwrap();
        assert!(stored.iter().all(|u| u.teams.is_some()));
        let memberships: usize = stored
            .iter()
            .map(|u| u.teams.as_ref().map_or(0, Vec::len))
            .sum();
        assert!(
            memberships as u64 > users,
            "every member in a team, some in two"
        );
    }
}

/// A host that lists more teams than makesync reads gets no team read at all (not one request
/// per team), and the run says why.
#[tokio::test]
async fn more_teams_than_makesync_reads_are_not_read_and_the_run_says_so() {
    let mut world = demo_world();
    for k in 0..=makesync::sync::MAX_TEAMS as u64 {
        world.add_team(ACME, 900_000 + k, &format!("Team {k}"));
    }
    let env = TestEnv::start_with(world, |config| {
        config.page_size = makesync::make::MakeApiConfig::default().page_size
    })
    .await;
    let connection = env.connection("eu1.make.com", ACME);
    let report = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    let why = report.run.teams_not_read.expect("teams not read");
    assert!(why.contains("more than the 5000"), "{why}");
    let team_reads = team_requests(&env);
    assert_eq!(team_reads, 1, "the list only");
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert!(users.iter().all(|u| u.teams.is_none()));
}

/// An organization with more teams than its API budget allows within one run (200 teams on a
/// Core plan: a sync's share is 30 requests a minute, a worker's run under 5 minutes) syncs
/// every user, and the run says why team access was not read — no team roles asked at all.
#[tokio::test]
async fn more_teams_than_the_plan_affords_in_a_run_leave_the_users_synced() {
    let world = organization_with_teams(60, 50, 200);
    let env = TestEnv::start_with(world, |_| {}).await;
    let connection = env.connection("eu1.make.com", 9001);
    env.ensure_stored(&connection).await;
    // The worker's deadline: a 300 s invocation less its margin.
    let report = sync_in_a_worker_run(&env, &connection, DEMO_TEAMS_TOKEN).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    let why = report.run.teams_not_read.expect("teams not read");
    assert!(why.contains("teams need a request each"), "{why}");
    let role_reads = env
        .simulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/user-team-roles"))
        .count();
    assert_eq!(role_reads, 0, "the teams' list only, no team's roles");
    assert_eq!(
        env.store.list_users(&connection.id).await.unwrap().len(),
        51
    );

    // On an Enterprise plan the same teams are read.
    let world = organization_with_teams(1000, 50, 200);
    let env = TestEnv::start_with(world, |_| {}).await;
    let connection = env.connection("eu1.make.com", 9001);
    env.ensure_stored(&connection).await;
    let report = sync_in_a_worker_run(&env, &connection, DEMO_TEAMS_TOKEN).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.teams_not_read, None);
}

/// A token connect found without `teams:read` costs no team request at any run: a 10,000-user
/// organization syncs in 6 requests, and its status says which scopes the token has.
#[tokio::test]
async fn a_token_known_to_lack_teams_read_is_not_asked_for_teams() {
    let mut world = demo_world();
    world.add_generated_organization(7100, "eu1.make.com", Some(1000), 9_999, 71_000_000);
    // The token's own user is the 10,000th member.
    world.add_member(7100, 1, 12, None);
    world.add_generated_teams(7100, 10, 710_000);
    let env = TestEnv::start_with(world, |config| {
        config.page_size = makesync::make::MakeApiConfig::default().page_size
    })
    .await;
    let secrets = std::sync::Arc::new(makesync::store::MemorySecrets::default());
    let queue = std::sync::Arc::new(makesync::store::MemoryQueue::default());
    let connect = makesync::connect::ConnectService::new(
        env.store.clone(),
        env.store.clone(),
        secrets.clone(),
        queue.clone(),
        env.make.clone(),
        env.clock_arc(),
    );
    let connected = makesync::connect::response_json(
        &connect
            .handle_payload(
                &serde_json::json!({"host": "eu1.make.com", "organizationId": 7100,
                "token": makesync_simulator::DEMO_TOKEN, "tenantId": "tenant-1"}),
            )
            .await,
    );
    assert_eq!(
        connected["optionalScopes"]["teams:read"], false,
        "{connected}"
    );
    let id = makesync::connection::ConnectionId::parse(connected["connectionId"].as_str().unwrap())
        .unwrap();
    let worker = makesync::worker::Worker::new(
        env.store.clone(),
        secrets,
        env.engine.clone(),
        env.make.clone(),
    );
    let before = team_requests(&env);
    for reason in [
        makesync::run::SyncReason::Connected,
        makesync::run::SyncReason::Scheduled,
    ] {
        let request = makesync::queue::SyncRequest::new(id.clone(), reason, env.clock.wall());
        let outcome = worker.handle(&request).await;
        let run = &outcome.report().expect("a run").run;
        assert_eq!(run.outcome, RunOutcome::Succeeded, "{:?}", run.error);
        assert!(
            run.make_requests <= 6,
            "{reason:?}: {} requests",
            run.make_requests
        );
        assert_eq!(
            run.teams_not_read.as_deref(),
            Some(lacks_scope_note().as_str())
        );
    }
    assert_eq!(team_requests(&env), before, "no team request");
    let status = makesync::connect::response_json(
        &connect
            .handle_payload(
                &serde_json::json!({"action": "status", "tenantId": "tenant-1",
                "connectionId": id.as_str()}),
            )
            .await,
    );
    assert_eq!(
        status["optionalScopes"],
        serde_json::json!({"teams:read": false}),
        "{status}"
    );
}

// ---------------------------------------------------------------- team access within a run's budget

/// On a Core plan, in an organization whose users' lists need a hundred requests, team access
/// never takes the share the lists need: the users sync at every run.
#[tokio::test]
async fn teams_read_never_cost_the_users_their_sync() {
    let mut world = organization_with_teams(60, 999, 100);
    // The teams list whole, in one answer (a shape the documentation leaves open).
    world.faults.teams_list = ListShape::Unpaged;
    let env = TestEnv::start_with(world, |_| {}).await;
    let connection = env.connection("eu1.make.com", 9001);
    env.ensure_stored(&connection).await;
    // Control: the same organization with a token without `teams:read` syncs within the run.
    let report = sync_in_a_worker_run(&env, &connection, makesync_simulator::DEMO_TOKEN).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    eprintln!("control: {} requests", report.run.make_requests);
    env.clock.advance(std::time::Duration::from_secs(600));
    for run in 0..2 {
        let report = sync_in_a_worker_run(&env, &connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "run {run}: {:?} (teams not read: {:?}, {} requests)",
            report.run.error,
            report.run.teams_not_read,
            report.run.make_requests
        );
        eprintln!(
            "run {run}: teams_not_read {:?}, {} requests",
            report.run.teams_not_read, report.run.make_requests
        );
        env.clock.advance(std::time::Duration::from_secs(600));
    }
    assert_eq!(
        env.store.list_users(&connection.id).await.unwrap().len(),
        1000
    );
}

/// Whether team access is affordable is counted from the plan, not from what the last minute
/// spent: a sync asked right after the scheduled one ("sync now", in the same warm worker, with
/// the same 290 s) decides as the first did, so team roles are not read at one run and dropped
/// at the next (one "changed" event per member each time).
#[tokio::test]
async fn whether_teams_are_affordable_is_the_same_at_every_run_of_a_plan() {
    for teams in [40u64, 95] {
        let world = organization_with_teams(60, 49, teams);
        let env = TestEnv::start_with(world, |_| {}).await;
        let connection = env.connection("eu1.make.com", 9001);
        env.ensure_stored(&connection).await;
        let mut runs = Vec::new();
        for _ in 0..2 {
            let report = sync_in_a_worker_run(&env, &connection, DEMO_TEAMS_TOKEN).await;
            assert_eq!(
                report.run.outcome,
                RunOutcome::Succeeded,
                "{:?}",
                report.run.error
            );
            runs.push(report.run.clone());
        }
        assert_eq!(
            runs[0].teams_not_read.is_some(),
            runs[1].teams_not_read.is_some(),
            "{teams} teams: {:?} then {:?}",
            runs[0].teams_not_read,
            runs[1].teams_not_read
        );
        assert_eq!(
            runs[1].counts.updated, 0,
            "{teams} teams: nothing changed in Make"
        );
    }
}

/// An Enterprise organization synced before (its organization read beside the lists)
/// whose organization answers slowly still has its 200 teams read: affordability waits for
/// the plan.
#[tokio::test]
async fn enterprise_teams_are_read_while_the_plan_answers_slowly() {
    let mut world = organization_with_teams(1000, 50, 200);
    world.faults.teams_list = ListShape::Unpaged;
    let env = TestEnv::start_with(world, |_| {}).await;
    let mut connection = env.connection("eu1.make.com", 9001);
    env.ensure_stored(&connection).await;
    for run in 0..2 {
        if run == 1 {
            connection.user_count = Some(51);
            env.simulator.world().faults.path_latency.insert(
                "/organizations/9001".into(),
                std::time::Duration::from_secs(5),
            );
        }
        let report = sync_in_a_worker_run(&env, &connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "{:?}",
            report.run.error
        );
        assert_eq!(report.run.teams_not_read, None, "run {run}");
        env.clock.advance(std::time::Duration::from_secs(600));
    }
}

/// Organization 9001 on a plan of `api_limit` requests a minute: `members` generated members
/// and the token's own user, in `teams` generated teams.
fn organization_with_teams(api_limit: u32, members: u64, teams: u64) -> World {
    let mut world = demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(api_limit), members, 700_000);
    world.add_member(9001, 1, 12, None);
    world.add_generated_teams(9001, teams, 900_000);
    world
}

/// A scheduled sync as the worker runs it: within a 300 s invocation less its margin.
async fn sync_in_a_worker_run(
    env: &TestEnv,
    connection: &makesync::connection::Connection,
    token: &str,
) -> makesync::sync::SyncReport {
    let client = env
        .client(connection, token)
        .with_deadline(env.clock.monotonic() + std::time::Duration::from_secs(290));
    env.engine
        .sync(connection, &client, makesync::run::SyncReason::Scheduled)
        .await
}

fn record(users: &[UserRecord], user_id: u64) -> &UserRecord {
    users
        .iter()
        .find(|u| u.user_id == user_id)
        .unwrap_or_else(|| panic!("user {user_id} is stored"))
}

fn marketing_member() -> TeamRole {
    role(10012, "Marketing", 3, "Team Member")
}

/// Marketing (Ada and user 4) answered with Ada alone, and no sign of the cut; every other
/// team answered whole, offsets honoured, no echo. Marketing's answer (one row) is shorter
/// than Finance's (three): a cut at a length of its own — by bytes, by time, by whatever
/// limit Make applies to that team — and not the one limit `team_check` assumes every team
/// is cut at. The counts say so (user 4 is in one team, and in none read), but once Finance,
/// the longest answer, is read on and found whole, the check takes every list as read.
#[tokio::test]
async fn a_team_list_cut_shorter_than_the_longest_answer_is_never_stored() {
    for private_spaces in [false, true] {
        let mut world = demo_world();
        world.faults.team_roles_list = ListShape::PagedWithoutEcho { max: 10_000 };
        world.faults.team_counts_include_private_spaces = private_spaces;
        world.faults.canned_bodies.insert(
            "/api/v2/teams/10012/user-team-roles".into(),
            json!({"userTeamRoles": [
                {"usersRoleId": 4, "userId": 1, "teamId": 10012, "changeable": true}
            ]})
            .to_string(),
        );
        let env = TestEnv::start_with(world, |_| {}).await;
        let connection = env.connection("eu1.make.com", ACME);
        let report = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "{:?}",
            report.run.error
        );
        let users = env.store.list_users(&connection.id).await.unwrap();
        assert_eq!(users.len(), ACME_MEMBERS as usize);
        let teams = record(&users, 4).teams.clone();
        assert!(
            teams.is_none() || teams == Some(vec![marketing_member()]),
            "private spaces counted: {private_spaces}: user 4 is in Marketing, stored as in {teams:?} (teams not read: {:?})",
            report.run.teams_not_read
        );
    }
}

/// User 4 (Marketing) leaves the organization, and with it Marketing; a later sync marks
/// them removed. They are invited back, in no team, at a sync that cannot read team access
/// (the team lists answer 503). The team roles "last read" for them are those of the
/// membership that ended: they are not theirs now, and the restored record (and its "user
/// added" event) must not say they are.
#[tokio::test]
async fn a_member_restored_while_teams_are_not_read_is_not_given_the_teams_of_an_earlier_membership(
) {
    let env = TestEnv::start_with(demo_world(), |_| {}).await;
    let connection = env.connection("eu1.make.com", ACME);
    let first = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
    assert_eq!(first.run.teams_not_read, None, "{:?}", first.run.error);
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert_eq!(record(&users, 4).teams, Some(vec![marketing_member()]));

    {
        let mut world = env.simulator.world();
        world.set_team_role(ACME, 10012, 4, None);
        world.remove_member(ACME, 4);
    }
    let left = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
    assert_eq!(
        left.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        left.run.error
    );
    assert_eq!(left.run.counts.removed, 1);

    {
        let mut world = env.simulator.world();
        world.add_member(ACME, 4, 13, None);
        world.faults.unavailable_paths.insert("/teams/".into());
    }
    let back = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
    assert_eq!(
        back.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        back.run.error
    );
    assert!(back.run.teams_not_read.is_some(), "team access kept");
    let users = env.store.list_users(&connection.id).await.unwrap();
    let restored = record(&users, 4);
    assert_eq!(restored.status, UserStatus::Active);
    assert_ne!(
        restored.teams,
        Some(vec![marketing_member()]),
        "user 4 left Marketing with the organization; restored with it: {:?}",
        back.changes
            .iter()
            .map(|c| (c.kind, c.after.teams.clone()))
            .collect::<Vec<_>>()
    );
}

/// The member list asks `joinedTeamsCount` and `organizationTeamsCount` only to check the
/// team lists. A row whose count is not a number makesync reads (past `u32`, negative, a
/// string) leaves nothing to check the team lists with — teams not read — but the users
/// and their roles, which the counts have nothing to do with, are synced as before the
/// counts were asked.
#[tokio::test]
async fn team_counts_that_do_not_read_leave_the_users_synced() {
    for odd in [json!(4_294_967_296u64), json!(-1), json!("2"), json!(1.5)] {
        let mut world = demo_world();
        // The member list as the simulator answers it, with one count that does not read.
        let mut rows: Vec<Value> = Vec::new();
        for (user_id, membership) in &world.organizations[&ACME].members {
            rows.push(json!({
                "userId": user_id,
                "organizationId": ACME,
                "usersRoleId": membership.role_id,
                "invitation": membership.invitation,
                "organizationTeamsCount": 3,
                "joinedTeamsCount": 0,
            }));
        }
        rows[0]["joinedTeamsCount"] = odd.clone();
        world.faults.canned_bodies.insert(
            format!("/api/v2/organizations/{ACME}/user-organization-roles"),
            json!({ "userOrganizationRoles": rows }).to_string(),
        );
        let env = TestEnv::start_with(world, |_| {}).await;
        let connection = env.connection("eu1.make.com", ACME);
        let report = env.sync_with(&connection, DEMO_TEAMS_TOKEN).await;
        assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "joinedTeamsCount {odd}: {:?}",
            report.run.error
        );
        let users = env.store.list_users(&connection.id).await.unwrap();
        assert_eq!(users.len(), ACME_MEMBERS as usize, "joinedTeamsCount {odd}");
    }
}
