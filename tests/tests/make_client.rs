//! The Make client against the simulator: paging, retries, rate limits, classified errors.

use makesync::clock::Clock;
use makesync::error::ErrorKind;
use makesync::host::MakeHost;
use makesync::make::MakeError;
use makesync::ports::UserStore;
use makesync::run::RunOutcome;
use makesync::token::ApiToken;
use makesync::user::UserStatus;
use makesync_simulator::{demo_world, PageChange, DEMO_TOKEN};
use makesync_tests::{TestEnv, ACME, GLOBEX};
use std::time::Duration;

const ACME_MEMBERS: u32 = 36;

#[tokio::test]
async fn a_server_capped_page_size_does_not_end_the_sync_early() {
    let env = TestEnv::start_with(demo_world(), |config| config.page_size = 100).await;
    env.simulator.world().faults.max_page_size = 7;
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
    let member_pages = env
        .simulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/user-organization-roles"))
        .count();
    assert!(
        member_pages >= 6,
        "36 members in pages of 7 need at least 6 pages, saw {member_pages}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_echo_the_limit_is_paged_to_an_empty_page() {
    let env = TestEnv::start().await;
    {
        let mut world = env.simulator.world();
        world.faults.echo_page = false;
        world.faults.max_page_size = 5;
    }
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
}

#[tokio::test]
async fn an_offset_the_server_ignores_fails_the_run_instead_of_looping_and_removes_nobody() {
    let env = TestEnv::start().await;
    let connection = env.connection("eu1.make.com", ACME);
    assert_eq!(
        env.sync(&connection).await.run.outcome,
        RunOutcome::Succeeded
    );
    {
        let mut world = env.simulator.world();
        world.faults.ignore_offset = true;
        world.remove_member(ACME, 11);
    }
    env.simulator.clear_requests();
    let report = env.sync(&connection).await;
    assert_eq!(report.run.outcome, RunOutcome::Failed);
    let error = report.run.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Protocol);
    assert!(error.message.contains("not advancing"), "{}", error.message);
    assert!(
        env.simulator.requests().len() < 10,
        "the walk stopped at once"
    );
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert!(users.iter().all(|u| u.status != UserStatus::Removed));
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_it_names() {
    let env = TestEnv::start().await;
    {
        let mut world = env.simulator.world();
        world.faults.rate_limited = 2;
        world.faults.rate_limited_retry_after = 7;
    }
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.retries, 2);
    let waits_of_seven = env
        .clock
        .sleeps()
        .iter()
        .filter(|wait| **wait == Duration::from_secs(7))
        .count();
    assert_eq!(waits_of_seven, 2, "sleeps: {:?}", env.clock.sleeps());
}

#[tokio::test]
async fn a_rate_limit_that_does_not_clear_fails_the_run_with_its_own_error() {
    let env = TestEnv::start().await;
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

#[tokio::test]
async fn a_budget_spent_by_the_customer_is_waited_out_using_the_reset_make_reports() {
    let env = TestEnv::start().await;
    let now = env.clock.monotonic();
    env.simulator.world().spend_budget(ACME, 60, now);
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert!(report.run.retries >= 1);
    assert!(
        env.clock.total_slept() >= Duration::from_secs(60),
        "waited for the window to reset: {:?}",
        env.clock.sleeps()
    );
}

#[tokio::test]
async fn a_sync_stays_within_its_share_of_the_organization_budget() {
    // Acme's plan allows 60 requests a minute; makesync takes half.
    let env = TestEnv::start_with(demo_world(), |config| config.page_size = 3).await;
    let connection = env.connection("eu1.make.com", ACME);
    for _ in 0..3 {
        let report = env.sync(&connection).await;
        assert_eq!(
            report.run.outcome,
            RunOutcome::Succeeded,
            "{:?}",
            report.run.error
        );
    }
    let times: Vec<Duration> = env
        .simulator
        .requests()
        .iter()
        .filter(|r| r.path != "/api/v2/users/roles" && r.path != "/api/v2/users/me")
        .map(|r| r.at)
        .collect();
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

#[tokio::test]
async fn a_5xx_burst_is_retried_with_backoff() {
    let env = TestEnv::start().await;
    env.simulator.world().faults.server_errors = 3;
    let report = env.sync(&env.connection("eu1.make.com", ACME)).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.retries, 3);
    assert_eq!(report.run.counts.fetched, ACME_MEMBERS);
}

#[tokio::test]
async fn a_5xx_that_does_not_pass_fails_the_run_as_transient() {
    let env = TestEnv::start().await;
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

#[tokio::test]
async fn a_malformed_page_fails_the_run_and_removes_nobody() {
    let env = TestEnv::start().await;
    let connection = env.connection("eu1.make.com", ACME);
    assert_eq!(
        env.sync(&connection).await.run.outcome,
        RunOutcome::Succeeded
    );
    let before = env.store.list_users(&connection.id).await.unwrap();
    {
        let mut world = env.simulator.world();
        world.remove_member(ACME, 11);
        world.faults.malformed_pages = 1;
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

#[tokio::test]
async fn an_invalid_token_a_missing_scope_and_a_wrong_organization_each_say_what_to_do() {
    let env = TestEnv::start().await;
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

    let error = env
        .sync_with(&acme, "sim-token-no-user-read")
        .await
        .run
        .error
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Permission);
    assert!(
        error.message.contains("lacks scope user:read"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("organizations:read and user:read"),
        "{}",
        error.message
    );

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
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert!(
        error.message.contains("connect it with host eu1.make.com"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_host_outside_the_allowlist_gets_no_request_and_no_token() {
    let env = TestEnv::start().await;
    for host in [
        "make.evil.example",
        "eu1.make.com.evil.example",
        "eu9.make.com",
    ] {
        let host = MakeHost::parse(host).unwrap();
        let refused = env.make.client(&host, ApiToken::parse(DEMO_TOKEN).unwrap());
        assert!(refused.is_err(), "{host} was admitted");
    }
    assert!(env.simulator.requests().is_empty());
}

#[tokio::test]
async fn every_request_goes_to_the_connections_zone() {
    let env = TestEnv::start().await;
    let report = env.sync(&env.connection("us2.make.com", GLOBEX)).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    let requests = env.simulator.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.host.as_deref() == Some("us2.make.com")));
}

#[tokio::test]
async fn members_who_change_between_pages_are_read_again_not_lost() {
    let env = TestEnv::start().await;
    let connection = env.connection("eu1.make.com", ACME);
    assert_eq!(
        env.sync(&connection).await.run.outcome,
        RunOutcome::Succeeded
    );
    // After the first page, a member on that page leaves: a naive offset walk would skip the
    // member that slides into the gap and then mark them removed.
    env.simulator.world().faults.change_between_pages = Some(PageChange {
        organization_id: ACME,
        remove_user: Some(2),
        add_member: None,
    });
    let report = env.sync(&connection).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    assert_eq!(report.run.counts.removed, 1);
    let removed: Vec<u64> = env
        .store
        .list_users(&connection.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.status == UserStatus::Removed)
        .map(|u| u.user_id)
        .collect();
    assert_eq!(removed, vec![2]);
}

#[tokio::test]
async fn the_client_reports_organization_details_and_the_budget_it_uses() {
    let env = TestEnv::start().await;
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
