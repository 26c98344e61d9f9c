//! Naming every member's role, the organization's own (custom) roles included: Make lists
//! custom roles only when `GET /users/roles` is asked for the organization (Make's SDK,
//! roles.ts). Run in every API shape, times the roles list whole or paged, with Make's
//! documented default columns or every field, and with custom roles on or off.

use makesync::ports::UserStore;
use makesync::run::RunOutcome;
use makesync::sync::ChangeKind;
use makesync::user::{UserRecord, UNKNOWN_ROLE};
use makesync_tests::simulator::{demo_world, ListShape, World};
use makesync_tests::{across_api_shapes, ApiShape, TestEnv, GLOBEX};

const ROLE_SHAPES: [ListShape; 2] = [ListShape::Unpaged, ListShape::Paged { max: 3 }];

/// Globex with members in built-in roles and, with `custom` on, in two roles of its own.
fn world(shape: ApiShape, roles: ListShape, all_columns: bool, custom: bool) -> World {
    let mut world = demo_world();
    shape.apply(&mut world.faults);
    world.faults.roles_list = roles;
    world.faults.roles_all_columns = all_columns;
    if custom {
        world.add_custom_role(GLOBEX, 42, "Admin");
        world.add_member(GLOBEX, 2, 42, None);
    } else {
        // Without the license feature no member holds a custom role.
        world.organizations.get_mut(&GLOBEX).unwrap().custom_roles = false;
        world.custom_roles.clear();
        world.set_role(GLOBEX, 14, 13);
    }
    world
}

async fn synced(world: World) -> (TestEnv, Vec<UserRecord>, u32) {
    let env = TestEnv::start_shaped(world, ApiShape::DOCUMENTED, |_| {}).await;
    let connection = env.connection("us2.make.com", GLOBEX);
    let report = env.sync(&connection).await;
    assert_eq!(
        report.run.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.run.error
    );
    let users = env.store.list_users(&connection.id).await.unwrap();
    (env, users, report.run.make_requests)
}

across_api_shapes! {
    async fn every_role_is_named_built_in_and_custom(shape: ApiShape) {
        for roles in ROLE_SHAPES {
            for all_columns in [false, true] {
                for custom in [false, true] {
                    let case = format!("roles {roles:?}, all columns {all_columns}, custom {custom}");
                    let (env, users, _) = synced(world(shape, roles, all_columns, custom)).await;
                    assert!(
                        users.iter().all(|u| u.role_name != UNKNOWN_ROLE),
                        "{case}: {users:?}"
                    );
                    let role_of = |id: u64| users.iter().find(|u| u.user_id == id).unwrap();
                    assert_eq!(role_of(5).role_name, "Owner", "{case}");
                    if custom {
                        assert_eq!(role_of(14).role_name, "Scenario Reviewer", "{case}");
                        // A custom role called "Admin" and the built-in Admin, told apart
                        // where Make gives the kind of role.
                        let custom_admin = role_of(2);
                        let builtin_admin = role_of(1);
                        assert_eq!(custom_admin.role_name, "Admin");
                        assert_eq!(builtin_admin.role_name, "Admin");
                        if all_columns {
                            assert_eq!(custom_admin.role_management_type.as_deref(), Some("custom_managed"));
                            assert_eq!(custom_admin.role_identifier, None);
                            assert_eq!(builtin_admin.role_identifier.as_deref(), Some("admin"));
                        }
                    }
                    // The roles were asked for the organization, and none was looked up one by
                    // one: the list named them all.
                    let requests = env.simulator.requests();
                    assert!(requests.iter().any(|r| r.path == "/api/v2/users/roles"
                        && r.query.contains(&("organizationId".into(), GLOBEX.to_string()))), "{case}");
                    assert!(!requests.iter().any(|r| r.path.starts_with("/api/v2/users/roles/")), "{case}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_role_the_list_does_not_name_is_looked_up_once_and_only_an_unknown_one_is_unknown() {
    let mut world = world(ApiShape::DOCUMENTED, ListShape::Unpaged, false, true);
    // A role created after the list was read: the list does not have it, Make does.
    world.organizations.get_mut(&GLOBEX).unwrap().custom_roles = false;
    // A role Make does not know at all.
    world.add_member(GLOBEX, 6, 99, None);
    let (env, users, _) = synced(world).await;
    let role_of = |id: u64| users.iter().find(|u| u.user_id == id).unwrap();
    assert_eq!(role_of(14).role_name, "Scenario Reviewer");
    assert_eq!(role_of(2).role_name, "Admin");
    assert_eq!(role_of(6).role_name, UNKNOWN_ROLE);
    let lookups: Vec<String> = env
        .simulator
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v2/users/roles/"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        lookups,
        vec![
            "/api/v2/users/roles/17",
            "/api/v2/users/roles/42",
            "/api/v2/users/roles/99",
        ],
        "each unlisted role once"
    );
}

#[tokio::test]
async fn a_renamed_custom_role_changes_its_members_role_name_and_nothing_else() {
    let world = world(ApiShape::DOCUMENTED, ListShape::Unpaged, true, true);
    let env = TestEnv::start_shaped(world, ApiShape::DOCUMENTED, |_| {}).await;
    let connection = env.connection("us2.make.com", GLOBEX);
    let first = env.sync(&connection).await;
    assert_eq!(first.run.outcome, RunOutcome::Succeeded);
    let before = env.store.list_users(&connection.id).await.unwrap();

    env.simulator
        .world()
        .rename_custom_role(17, "Scenario Auditor");
    let second = env.sync(&connection).await;
    assert_eq!(second.run.outcome, RunOutcome::Succeeded);
    assert_eq!(second.run.counts.updated, 1, "{:?}", second.run.counts);
    assert_eq!(second.run.counts.added + second.run.counts.removed, 0);
    let change = &second.changes[0];
    assert_eq!(change.kind, ChangeKind::Updated);
    let (was, now) = (change.before.as_ref().unwrap(), &change.after);
    assert_eq!(was.role_name, "Scenario Reviewer");
    assert_eq!(now.role_name, "Scenario Auditor");
    let after = env.store.list_users(&connection.id).await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        let mut expected = old.clone();
        if old.user_id == 14 {
            expected.role_name = "Scenario Auditor".into();
        }
        assert_eq!(new, &expected, "only the role name of its member changed");
    }
}

#[tokio::test]
async fn ten_thousand_members_in_custom_roles_take_at_most_six_requests() {
    let mut world = demo_world();
    world.add_generated_organization(9001, "eu1.make.com", Some(1000), 10_000, 1_000_000);
    world.add_member(9001, 1, 12, None);
    world.add_custom_role(9001, 50, "Custom Viewer");
    world.add_custom_role(9001, 51, "Custom Builder");
    for n in (0..10_000u64).step_by(7) {
        world.set_role(9001, 1_000_000 + n, if n % 2 == 0 { 50 } else { 51 });
    }
    let env = TestEnv::start_with(world, |config| {
        config.page_size = makesync::make::MakeApiConfig::default().page_size
    })
    .await;
    let connection = env.connection("eu1.make.com", 9001);
    let report = env.sync(&connection).await;
    assert_eq!(report.run.outcome, RunOutcome::Succeeded);
    println!(
        "10,001 members, 1,429 in custom roles: {} requests to Make",
        report.run.make_requests
    );
    assert!(
        report.run.make_requests <= 6,
        "{} requests",
        report.run.make_requests
    );
    let users = env.store.list_users(&connection.id).await.unwrap();
    assert_eq!(users.len(), 10_001);
    assert!(users.iter().all(|u| u.role_name != UNKNOWN_ROLE));
    assert_eq!(
        users
            .iter()
            .filter(|u| u.role_name == "Custom Viewer")
            .count(),
        715
    );
}
