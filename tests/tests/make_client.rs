//! The Make client against the simulator: paging in every shape, retries, rate limits,
//! classified errors. Tests in `across_api_shapes!` run once per API shape (member list
//! unpaged / paged / cut × missing scope 403 / 401).

use makesync::clock::Clock;
use makesync::error::ErrorKind;
use makesync::host::MakeHost;
use makesync::make::MakeError;
use makesync::ports::UserStore;
use makesync::run::RunOutcome;
use makesync::token::ApiToken;
use makesync::user::{UserRecord, UserStatus};
use makesync_simulator::{demo_world, ListShape, PageChange, SeenRequest, DEMO_TOKEN};
use makesync_tests::{across_api_shapes, ApiShape, TestEnv, ACME, GLOBEX};
use std::time::Duration;

const ACME_MEMBERS: u32 = 36;

fn count(requests: &[SeenRequest], path_end: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.path.ends_with(path_end))
        .count()
}

fn assert_succeeded(report: &makesync::sync::SyncReport) {
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
}

fn removed(users: &[UserRecord]) -> Vec<u64> {
    users
        .iter()
        .filter(|u| u.status == UserStatus::Removed)
        .map(|u| u.user_id)
        .collect()
}

/// A sync of Acme (36 users) in pages of 3 with 50 ms a request, 150 ms a `/users` page (so
/// that the member list, paged alike in one shape, has answered while pages are left);
/// returns the users it stored, the `/users` requests it made and the most of them Make was
/// answering at once.
async fn sync_acme_in_small_pages(
    shape: ApiShape,
    pages_at_once: u32,
) -> (Vec<UserRecord>, usize, usize) {
    let mut world = demo_world();
    world.faults.latency = Duration::from_millis(50);
    world
        .faults
        .path_latency
        .insert("/users".to_string(), Duration::from_millis(100));
    let env = TestEnv::start_shaped(world, shape, |config| {
        config.page_size = 3;
        config.page_concurrency = pages_at_once;
    })
    .await;
    let connection = env.connection("eu1.make.com", ACME);
    let report = env.sync(&connection).await;
    assert_succeeded(&report);
    let users = env.store.list_users(&connection.id).await.unwrap();
    let user_pages = count(&env.simulator.requests(), "/users");
    (
        users,
        user_pages,
        env.simulator.most_in_flight("/api/v2/users"),
    )
}

/// A test environment whose client asks 3 rows a page and reads 4 pages at once.
async fn start_in_pages_of_three(world: makesync_simulator::World, shape: ApiShape) -> TestEnv {
    TestEnv::start_shaped(world, shape, |config| {
        config.page_size = 3;
        config.page_concurrency = 4;
    })
    .await
}

/// Where the `/users` requests stand against the member list's first answer: how many were
/// answered before it.
fn user_pages_before_member_list(requests: &[SeenRequest]) -> usize {
    requests
        .iter()
        .take_while(|r| !r.path.ends_with("/user-organization-roles"))
        .filter(|r| r.path.ends_with("/users"))
        .count()
}

/// A world whose member list answers a second late: long enough that any `/users` page read
/// after it is answered after it too.
fn world_with_a_slow_member_list() -> makesync_simulator::World {
    let mut world = demo_world();
    world.faults.path_latency.insert(
        format!("/organizations/{ACME}/user-organization-roles"),
        Duration::from_secs(1),
    );
    world
}

across_api_shapes! {
    async fn a_sync_that_knows_the_last_count_reads_the_user_pages_before_the_member_list_answers(shape: ApiShape) {
        let env = start_in_pages_of_three(world_with_a_slow_member_list(), shape).await;
        let connection = env.connection("eu1.make.com", ACME);
        assert_succeeded(&env.sync(&connection).await);
        let requests = env.simulator.requests();
        assert_eq!(
            user_pages_before_member_list(&requests),
            count(&requests, "/users"),
            "a first sync knows no count: it pages on one by one, not waiting for the member list"
        );
        assert_eq!(
            env.simulator.most_in_flight("/api/v2/users"),
            1,
            "without a count, one page at a time"
        );

        use makesync::ports::ConnectionStore;
        let stored = env.store.get_connection(&connection.id).await.unwrap().unwrap();
        assert_eq!(stored.user_count, Some(ACME_MEMBERS));
        env.simulator.clear_requests();
        let report = env.sync(&stored).await;
        assert_succeeded(&report);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
        let early = user_pages_before_member_list(&env.simulator.requests());
        assert!(
            early >= 4,
            "the last sync's count starts the pages at once: {early} answered before the member list"
        );
    }

    async fn a_sync_that_knows_the_last_count_asks_its_first_user_pages_together(shape: ApiShape) {
        // Every /users page answers 200 ms late, so that pages asked together are all in
        // flight when the first is answered.
        let mut world = demo_world();
        world
            .faults
            .path_latency
            .insert("/users".to_string(), Duration::from_millis(200));
        let env = start_in_pages_of_three(world, shape).await;
        let connection = env.connection("eu1.make.com", ACME);
        assert_succeeded(&env.sync(&connection).await);
        assert_eq!(
            env.simulator.in_flight_at_first_answer("/api/v2/users"),
            1,
            "a first sync asks one page first: nothing says yet that the list is paged"
        );

        use makesync::ports::ConnectionStore;
        let stored = env.store.get_connection(&connection.id).await.unwrap().unwrap();
        env.simulator.clear_requests();
        let report = env.sync(&stored).await;
        assert_succeeded(&report);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
        assert_eq!(
            env.simulator.in_flight_at_first_answer("/api/v2/users"),
            4,
            "the last sync's count asks the first pages together, the first among them"
        );
    }

    async fn a_remembered_count_on_a_user_list_that_ignores_paging_wastes_only_the_pages_in_flight(shape: ApiShape) {
        // Not Make's documented shape for /users (it is paged): a host that ignores pg[]
        // answers the whole list to each page asked together from the start.
        let mut world = demo_world();
        world.faults.users_list = ListShape::Unpaged;
        let env = start_in_pages_of_three(world, shape).await;
        let mut connection = env.connection("eu1.make.com", ACME);
        connection.user_count = Some(ACME_MEMBERS);
        let report = env.sync(&connection).await;
        assert_succeeded(&report);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
        let asked = count(&env.simulator.requests(), "/users");
        assert!(
            (1..=4).contains(&asked),
            "the first whole answer ends the read: {asked} /users requests"
        );
    }

    async fn a_wrong_remembered_count_costs_a_few_requests_never_a_row(shape: ApiShape) {
        let sync_remembering = |remembered: Option<u32>| async move {
            let env = start_in_pages_of_three(demo_world(), shape).await;
            let mut connection = env.connection("eu1.make.com", ACME);
            connection.user_count = remembered;
            let report = env.sync(&connection).await;
            assert_succeeded(&report);
            let users: Vec<_> = env
                .store
                .list_users(&connection.id)
                .await
                .unwrap()
                .into_iter()
                .map(|u| (u.user_id, u.name, u.email, u.role_name, u.status, u.last_login))
                .collect();
            (users, count(&env.simulator.requests(), "/users"))
        };
        let (truth, pages) = sync_remembering(None).await;
        assert_eq!(truth.len(), ACME_MEMBERS as usize);
        for wrong in [1, 20, 3_600] {
            let (users, asked) = sync_remembering(Some(wrong)).await;
            assert!(users == truth, "remembering {wrong} users: the same users stored");
            assert!(
                asked <= pages + 4,
                "remembering {wrong} users: {asked} /users requests, {pages} with no count"
            );
        }
    }
}

across_api_shapes! {
    async fn the_user_pages_left_are_read_at_once_once_the_member_count_is_known(shape: ApiShape) {
        let (one_by_one, sequential_pages, most) = sync_acme_in_small_pages(shape, 1).await;
        assert_eq!(most, 1, "one page at a time");
        let (at_once, pages, most) = sync_acme_in_small_pages(shape, 4).await;
        let synced = |users: &[UserRecord]| {
            users
                .iter()
                .map(|u| (u.user_id, u.email.clone(), u.role_name.clone(), u.status, u.last_login))
                .collect::<Vec<_>>()
        };
        assert!(synced(&at_once) == synced(&one_by_one), "the same users, read either way");
        assert_eq!(at_once.len(), ACME_MEMBERS as usize);
        assert_eq!(pages, sequential_pages, "no page more than one by one");
        assert!(most >= 2, "pages read at once: at most {most} were in flight");
    }

    async fn a_server_capped_page_size_does_not_end_the_sync_early(shape: ApiShape) {
        let mut world = demo_world();
        world.faults.users_list = ListShape::Paged { max: 7 };
        let env = TestEnv::start_shaped(world, shape, |config| config.page_size = 100).await;
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        assert_succeeded(&report);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
        let user_pages = count(&env.simulator.requests(), "/users");
        assert!(
            user_pages >= 6,
            "36 users in pages of 7 need at least 6 pages, saw {user_pages}"
        );
    }

    async fn a_paged_list_whose_offset_is_ignored_fails_the_run_instead_of_looping(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let connection = env.connection("eu1.make.com", ACME);
        assert_succeeded(&env.sync(&connection).await);
        {
            let mut world = env.simulator.world();
            world.faults.ignore_offset = true;
            world.remove_member(ACME, 11);
        }
        env.simulator.clear_requests();
        let report = env.sync(&connection).await;
        assert_eq!(report.run.outcome, RunOutcome::Failed);
        // A page of rows already read is what a list that moved can bring too: the member
        // read starts over, a bounded number of times, and then the run fails saying both.
        let error = report.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Transient);
        assert!(
            error.message.contains("the list moved, or Make is not advancing the offset"),
            "{}",
            error.message
        );
        assert!(
            env.simulator.requests().len() < 40,
            "the walk stopped: {} requests",
            env.simulator.requests().len()
        );
        let users = env.store.list_users(&connection.id).await.unwrap();
        assert!(removed(&users).is_empty());
    }

    async fn a_429_is_retried_after_the_retry_after_it_names(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        {
            let mut world = env.simulator.world();
            world.faults.rate_limited = 2;
            world.faults.rate_limited_retry_after = 7;
        }
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        assert_succeeded(&report);
        assert_eq!(report.run.retries, 2);
        let waits_of_seven = env
            .clock
            .sleeps()
            .iter()
            .filter(|wait| **wait == Duration::from_secs(7))
            .count();
        assert_eq!(waits_of_seven, 2, "sleeps: {:?}", env.clock.sleeps());
    }

    async fn a_418_is_a_rate_limit_retried_like_a_429(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        {
            let mut world = env.simulator.world();
            world.faults.rate_limit_status = 418;
            world.faults.rate_limited = 2;
            world.faults.rate_limited_retry_after = 3;
        }
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        assert_succeeded(&report);
        assert_eq!(report.run.retries, 2);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);

        env.simulator.world().faults.rate_limited = 1000;
        let error = env
            .sync(&env.connection("eu1.make.com", ACME))
            .await
            .run
            .error
            .unwrap();
        assert_eq!(error.kind, ErrorKind::RateLimited);
        assert!(error.message.contains("answered 418"), "{}", error.message);
    }

    async fn a_rate_limit_that_does_not_clear_fails_the_run_with_its_own_error(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        env.simulator.world().faults.rate_limited = 1000;
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        let error = report.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::RateLimited);
        assert!(
            error.message.contains("retry after 7 s"),
            "{}",
            error.message
        );
        assert_eq!(env.simulator.requests().len(), 5, "bounded attempts");
    }

    async fn a_budget_spent_by_the_customer_is_waited_out_using_the_reset_make_reports(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let now = env.clock.monotonic();
        env.simulator.world().spend_budget(ACME, 60, now);
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        assert_succeeded(&report);
        assert!(report.run.retries >= 1);
        assert!(
            env.clock.total_slept() >= Duration::from_secs(60),
            "waited for the window to reset: {:?}",
            env.clock.sleeps()
        );
    }

    async fn a_sync_stays_within_its_share_of_the_organization_budget(shape: ApiShape) {
        // Acme's plan allows 60 requests a minute; makesync takes half. A first sync reads the
        // organization first; the later ones, from the connection as stored (it has a count),
        // read it beside the lists. The windows are counted from when the client sent each
        // request (its TRACE line), on the clock the budget counts with: the simulator serves
        // a request only once the test clock has jumped past another request's wait.
        use makesync::ports::ConnectionStore;
        let logs = makesync_tests::CapturedLogs::default();
        let _capture = logs.install_filtered("makesync::make=trace");
        let env = TestEnv::start_shaped(demo_world(), shape, |config| config.page_size = 3).await;
        let mut connection = env.connection("eu1.make.com", ACME);
        for _ in 0..4 {
            assert_succeeded(&env.sync(&connection).await);
            connection = env.store.get_connection(&connection.id).await.unwrap().unwrap();
        }
        let mut times: Vec<Duration> = logs
            .text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["message"] == "sending a Make request")
            .map(|line| Duration::from_millis(line["sent_at_ms"].as_u64().unwrap()))
            .collect();
        times.sort();
        assert_eq!(times.len(), env.simulator.requests().len(), "every request logged");
        assert!(
            times.len() > 60,
            "enough requests to need spacing: {}",
            times.len()
        );
        assert!(env.simulator.requests().iter().all(|r| r.status != 429));
        for (i, start) in times.iter().enumerate() {
            let in_minute = times[i..]
                .iter()
                .take_while(|t| **t < *start + Duration::from_secs(60))
                .count();
            assert!(in_minute <= 30, "{in_minute} requests within one minute");
        }
    }

    async fn requests_beside_the_organization_wait_for_its_plan_not_for_the_smallest_share(shape: ApiShape) {
        // makesync takes 10 %: 6 requests a minute until the plan is known, 100 once the
        // organization says 1000. It answers late, so that the lists are asked before it.
        let mut world = demo_world();
        world.add_generated_organization(9001, "eu1.make.com", Some(1000), 40, 3_000_000);
        world.add_member(9001, 1, 12, None);
        world
            .faults
            .path_latency
            .insert("/organizations/9001".to_string(), Duration::from_millis(300));
        let env = TestEnv::start_shaped(world, shape, |config| {
            config.page_size = 3;
            config.page_concurrency = 4;
            config.budget_percent = 10;
        })
        .await;
        let mut connection = env.connection("eu1.make.com", 9001);
        connection.user_count = Some(41);
        let report = env.sync(&connection).await;
        assert_succeeded(&report);
        assert_eq!(report.run.counts.fetched, 41);
        assert!(
            report.run.make_requests > 6,
            "more requests than the smallest share: {}",
            report.run.make_requests
        );
        let requests = env.simulator.requests();
        let organization_at = requests
            .iter()
            .position(|r| r.path == "/api/v2/organizations/9001")
            .unwrap();
        assert!(organization_at > 0, "the lists are asked beside the organization");
        assert_eq!(
            env.clock.total_slept(),
            Duration::ZERO,
            "no request waited for the smallest share's window: {:?}",
            env.clock.sleeps()
        );
    }

    async fn a_5xx_burst_is_retried_with_backoff(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        env.simulator.world().faults.server_errors = 3;
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        assert_succeeded(&report);
        assert_eq!(report.run.retries, 3);
        assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
    }

    async fn a_5xx_that_does_not_pass_fails_the_run_as_transient(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        env.simulator.world().faults.server_errors = 1000;
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        let error = report.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Transient);
        assert!(
            error.message.contains("503 after 5 attempts"),
            "{}",
            error.message
        );
    }

    async fn a_body_that_does_not_parse_fails_the_run_names_the_endpoint_and_removes_nobody(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let connection = env.connection("eu1.make.com", ACME);
        assert_succeeded(&env.sync(&connection).await);
        let before = env.store.list_users(&connection.id).await.unwrap();
        {
            let mut world = env.simulator.world();
            world.remove_member(ACME, 11);
            world
                .faults
                .canned_bodies
                .insert("/api/v2/users/roles".into(), r#"{"usersRoles": [{"id": 1, "na"#.into());
        }
        let report = env.sync(&connection).await;
        assert_eq!(report.run.outcome, RunOutcome::Failed);
        let error = report.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Protocol);
        assert!(
            error.message.contains("GET /users/roles"),
            "names the endpoint: {}",
            error.message
        );
        assert_eq!(env.store.list_users(&connection.id).await.unwrap(), before);
    }

    async fn an_invalid_token_a_missing_scope_and_a_wrong_organization_each_say_what_to_do(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let acme = env.connection("eu1.make.com", ACME);

        let error = env
            .sync_with(&acme, "sim-token-revoked")
            .await
            .run
            .error
            .unwrap();
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(
            error.message.contains("invalid, expired or revoked"),
            "{}",
            error.message
        );

        for (token, scope) in [
            ("sim-token-no-user-read", "user:read"),
            ("sim-token-no-organizations-read", "organizations:read"),
        ] {
            let error = env.sync_with(&acme, token).await.run.error.unwrap();
            assert_eq!(error.kind, ErrorKind::Permission, "{token}: {}", error.message);
            assert!(
                error.message.contains(&format!("lacks scope {scope}")),
                "{token}: {}",
                error.message
            );
            assert!(
                error.message.contains("organizations:read and user:read"),
                "{}",
                error.message
            );
            for wrong in ["expired", "revoked", "invalid"] {
                assert!(!error.message.contains(wrong), "{token}: {}", error.message);
            }
        }

        let error = env
            .sync_with(&acme, "sim-token-outsider")
            .await
            .run
            .error
            .unwrap();
        assert_eq!(error.kind, ErrorKind::Permission);
        assert!(
            error.message.contains("no access to organization 1001"),
            "{}",
            error.message
        );

        let missing = env.connection("eu1.make.com", 999_999);
        let error = env.sync(&missing).await.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(
            error.message.contains("check the organization ID"),
            "{}",
            error.message
        );

        let wrong_zone = env.connection("us2.make.com", ACME);
        let error = env.sync(&wrong_zone).await.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(
            error.message.contains("connect it with host eu1.make.com"),
            "{}",
            error.message
        );
    }

    async fn an_organization_synced_before_is_read_beside_its_lists_and_its_errors_still_say_what_to_do(shape: ApiShape) {
        // The organization answers late, so that the lists answer before it.
        let mut world = demo_world();
        world
            .faults
            .path_latency
            .insert(format!("/organizations/{ACME}"), Duration::from_millis(300));
        let env = TestEnv::start_shaped(world, shape, |_| {}).await;
        let synced_before = |host: &str| {
            let mut connection = env.connection(host, ACME);
            connection.user_count = Some(ACME_MEMBERS);
            connection
        };
        let acme = synced_before("eu1.make.com");
        assert_succeeded(&env.sync(&acme).await);
        let requests = env.simulator.requests();
        let organization_path = format!("/api/v2/organizations/{ACME}");
        let answered_before: Vec<&str> = requests
            .iter()
            .take_while(|r| r.path != organization_path)
            .map(|r| r.path.as_str())
            .collect();
        assert!(
            answered_before.contains(&"/api/v2/users"),
            "the lists are asked beside the organization: {answered_before:?}"
        );

        for me_requires_user_read in [true, false] {
            env.simulator.world().faults.me_requires_user_read = me_requires_user_read;
            for (token, kind, says) in [
                ("sim-token-revoked", ErrorKind::Auth, "invalid, expired or revoked"),
                ("sim-token-no-user-read", ErrorKind::Permission, "lacks scope user:read"),
                ("sim-token-no-organizations-read", ErrorKind::Permission, "lacks scope organizations:read"),
                ("sim-token-outsider", ErrorKind::Permission, "no access to organization 1001"),
            ] {
                let error = env.sync_with(&acme, token).await.run.error.unwrap();
                let case = format!("{token}, /users/me needs user:read: {me_requires_user_read}");
                assert_eq!(error.kind, kind, "{case}: {}", error.message);
                assert!(error.message.contains(says), "{case}: {}", error.message);
            }
        }
        let error = env.sync(&synced_before("us2.make.com")).await.run.error.unwrap();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(
            error.message.contains("connect it with host eu1.make.com"),
            "{}",
            error.message
        );
    }

    async fn a_401_for_a_missing_scope_is_told_apart_however_users_me_is_scoped(shape: ApiShape) {
        for me_requires_user_read in [true, false] {
            let env = TestEnv::start_in(shape).await;
            env.simulator.world().faults.me_requires_user_read = me_requires_user_read;
            let acme = env.connection("eu1.make.com", ACME);
            for (token, kind) in [
                ("sim-token-no-user-read", ErrorKind::Permission),
                ("sim-token-no-organizations-read", ErrorKind::Permission),
                ("sim-token-revoked", ErrorKind::Auth),
            ] {
                let error = env.sync_with(&acme, token).await.run.error.unwrap();
                assert_eq!(
                    error.kind, kind,
                    "{token}, /users/me needs user:read: {me_requires_user_read}: {}",
                    error.message
                );
            }
        }
    }

    async fn a_host_outside_the_allowlist_gets_no_request_and_no_token(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        for host in [
            "make.evil.example",
            "eu1.make.com.evil.example",
            "eu9.make.com",
        ] {
            let host = MakeHost::parse(host).unwrap();
            let organization = makesync::organization::OrganizationId::new(ACME).unwrap();
            let refused = env
                .make
                .client(&host, organization, ApiToken::parse(DEMO_TOKEN).unwrap());
            assert!(refused.is_err(), "{host} was admitted");
        }
        assert!(env.simulator.requests().is_empty());
    }

    async fn every_request_goes_to_the_connections_zone(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let report = env.sync(&env.connection("us2.make.com", GLOBEX)).await;
        assert_succeeded(&report);
        let requests = env.simulator.requests();
        assert!(!requests.is_empty());
        assert!(requests
            .iter()
            .all(|r| r.host.as_deref() == Some("us2.make.com")));
    }

    async fn members_who_change_between_pages_are_read_again_not_lost(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let connection = env.connection("eu1.make.com", ACME);
        assert_succeeded(&env.sync(&connection).await);
        // After the first page, a member on that page leaves: a naive offset walk would skip
        // the member that slides into the gap and then mark them removed.
        env.simulator.world().faults.change_between_pages = Some(PageChange {
            organization_id: ACME,
            remove_user: Some(2),
            add_member: None,
        });
        let report = env.sync(&connection).await;
        assert_succeeded(&report);
        assert_eq!(report.run.counts.removed, 1);
        let users = env.store.list_users(&connection.id).await.unwrap();
        assert_eq!(removed(&users), vec![2]);
    }

    async fn the_client_reports_organization_details_and_the_budget_it_uses(shape: ApiShape) {
        let env = TestEnv::start_in(shape).await;
        let connection = env.connection("us2.make.com", GLOBEX);
        let client = env.client(&connection, DEMO_TOKEN);
        let me = client.get_me().await.unwrap();
        assert_eq!(me.id, 1);
        let organization = client
            .get_organization(connection.organization_id)
            .await
            .unwrap();
        assert_eq!(organization.name, "Globex Corporation");
        assert_eq!(organization.api_limit(), Some(120));
        assert_eq!(client.requests_per_minute(), 60);
        let error = client
            .get_organization(makesync::organization::OrganizationId::new(424242).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(error, MakeError::OrganizationNotFound { .. }),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn the_documented_shapes_cost_one_request_per_list_and_roles_are_asked_whole() {
    let env = TestEnv::start_with(demo_world(), |config| {
        config.page_size = makesync::make::MakeApiConfig::default().page_size
    })
    .await;
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    assert_succeeded(&report);
    assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
    let requests = env.simulator.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        report.run.make_requests, 5,
        "organization, roles, teams (refused: no teams:read), members, users: {paths:?}"
    );
    let roles = requests
        .iter()
        .find(|r| r.path == "/api/v2/users/roles")
        .unwrap();
    assert!(
        roles.query.iter().all(|(name, _)| !name.starts_with("pg[")),
        "roles are documented without pg[]: {:?}",
        roles.query
    );
    let users = requests.iter().find(|r| r.path == "/api/v2/users").unwrap();
    assert!(users
        .query
        .contains(&("pg[limit]".to_string(), "10000".to_string())));
}

#[tokio::test]
async fn a_cut_member_list_is_completed_by_looking_up_each_missing_member() {
    let env = TestEnv::start_shaped(
        demo_world(),
        ApiShape::new(ListShape::UnpagedCut { at: 20 }, 403),
        |_| {},
    )
    .await;
    let connection = env.connection("eu1.make.com", ACME);
    let report = env.sync(&connection).await;
    assert_succeeded(&report);
    assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
    let requests = env.simulator.requests();
    let lookups = requests
        .iter()
        .filter(|r| r.path.contains("/user-organization-roles/"))
        .count();
    assert_eq!(lookups, 16, "36 members, 20 listed");

    // A member beyond the cut leaves: still found removed, nobody else.
    env.simulator.world().remove_member(ACME, 129);
    let report = env.sync(&connection).await;
    assert_succeeded(&report);
    assert_eq!(report.run.counts.removed, 1);
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert_eq!(removed(&users), vec![129]);
}

#[tokio::test]
async fn a_cut_member_list_past_the_lookup_bound_fails_clearly_and_removes_nobody() {
    let env = TestEnv::start_shaped(demo_world(), ApiShape::DOCUMENTED, |config| {
        config.member_lookups = 5
    })
    .await;
    let connection = env.connection("eu1.make.com", ACME);
    assert_succeeded(&env.sync(&connection).await);
    let before = env.store.list_users(&connection.id).await.unwrap();
    env.simulator.world().faults.members_list = ListShape::UnpagedCut { at: 20 };
    env.simulator.clear_requests();
    let report = env.sync(&connection).await;
    assert_eq!(report.run.outcome, RunOutcome::Failed);
    let error = report.run.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(
        error.message.contains("names 20 members")
            && error.message.contains("36 users")
            && error.message.contains("MAKESYNC_MEMBER_LOOKUPS=5"),
        "{}",
        error.message
    );
    assert_eq!(env.store.list_users(&connection.id).await.unwrap(), before);
    assert!(
        env.simulator
            .requests()
            .iter()
            .all(|r| !r.path.contains("/user-organization-roles/")),
        "no lookup was started past the bound"
    );
}

#[tokio::test]
async fn a_user_list_cut_without_an_echo_fails_safe_and_removes_nobody() {
    let env = TestEnv::start().await;
    let connection = env.connection("eu1.make.com", ACME);
    assert_succeeded(&env.sync(&connection).await);
    let before = env.store.list_users(&connection.id).await.unwrap();
    // Assumed shape: pages of at most 5 with no echo, so a page of 5 where 10 were asked
    // looks like the end of the list.
    env.simulator.world().faults.users_list = ListShape::PagedWithoutEcho { max: 5 };
    let report = env.sync(&connection).await;
    assert_eq!(report.run.outcome, RunOutcome::Failed);
    let error = report.run.error.unwrap();
    assert!(
        error.message.contains("members without a user record"),
        "{}",
        error.message
    );
    assert_eq!(env.store.list_users(&connection.id).await.unwrap(), before);
}

#[tokio::test]
async fn ten_thousand_users_take_at_most_six_requests_and_a_cap_of_100_still_works() {
    let mut world = demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(1000), 10_000, 1_000_000);
    world.add_member(9001, 1, 12, None);
    let env = TestEnv::start_with(world, |config| {
        config.page_size = makesync::make::MakeApiConfig::default().page_size
    })
    .await;
    let report = env.sync(&env.connection("eu1.make.com", 9001)).await;
    assert_succeeded(&report);
    assert_eq!(report.run.counts.fetched, 10_001);
    assert!(
        report.run.make_requests <= 6,
        "{} requests",
        report.run.make_requests
    );

    let mut world = demo_world();
    world.add_generated_organization(9002, "eu1.make.com", Some(1000), 1_000, 2_000_000);
    world.add_member(9002, 1, 12, None);
    world.faults.users_list = ListShape::Paged { max: 100 };
    world.faults.members_list = ListShape::Paged { max: 100 };
    let env = TestEnv::start_with(world, |config| {
        config.page_size = makesync::make::MakeApiConfig::default().page_size
    })
    .await;
    let report = env.sync(&env.connection("eu1.make.com", 9002)).await;
    assert_succeeded(&report);
    assert_eq!(report.run.counts.fetched, 1_001);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_the_token_never_goes_there() {
    let elsewhere = makesync_simulator::Simulator::start(demo_world())
        .await
        .unwrap();
    for status in [301, 302, 307, 308] {
        let env = TestEnv::start().await;
        env.simulator.world().faults.redirect = Some((
            status,
            format!("{}/api/v2/organizations/1001", elsewhere.base_url()),
        ));
        let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
        assert_eq!(report.run.outcome, RunOutcome::Failed, "{status}");
        let error = report.run.error.unwrap();
        assert!(
            error.message.contains(&status.to_string()),
            "{status}: {}",
            error.message
        );
        assert!(!error.message.contains(DEMO_TOKEN));
    }
    assert!(
        elsewhere.requests().is_empty(),
        "no request, so no token, reached the other host"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_retry_budget_fails_at_once_naming_the_wait() {
    let env = TestEnv::start().await;
    {
        let mut world = env.simulator.world();
        world.faults.rate_limited = 1;
        world.faults.rate_limited_retry_after = 86_400;
    }
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    let error = report.run.error.unwrap();
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert!(
        error.message.contains("retry after 86400 s"),
        "{}",
        error.message
    );
    assert!(
        env.clock.total_slept() < Duration::from_secs(60),
        "it did not sleep a day: {:?}",
        env.clock.sleeps()
    );
    assert_eq!(env.simulator.requests().len(), 1);
}
