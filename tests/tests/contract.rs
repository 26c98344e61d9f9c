//! Make's documented responses (`tests/fixtures/make/`) read through the client: every
//! fixture parses, unknown fields are ignored, and a missing required field is a protocol
//! error naming the endpoint.

use makesync::make::{MakeClient, MakeError};
use makesync::organization::OrganizationId;
use makesync_simulator::{World, DEMO_TOKEN};
use makesync_tests::{simulator::TokenGrant, TestEnv};
use serde_json::Value;

/// The organization the list fixtures describe, and the one the detail fixture describes.
const LISTED: u64 = 11;
const DETAILED: u64 = 10;

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/make/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Where each fixture is served, and the label the client gives that call in errors.
fn served_at(name: &str) -> (&'static str, &'static str) {
    match name {
        "users_me.json" => ("/api/v2/users/me", "GET /users/me"),
        "organization.json" => ("/api/v2/organizations/10", "GET /organizations/10"),
        "users_roles.json" | "users_roles_custom.json" => {
            ("/api/v2/users/roles", "GET /users/roles?organizationId=11")
        }
        "users_role.json" => ("/api/v2/users/roles/42", "GET /users/roles/42"),
        "user_organization_roles.json" => (
            "/api/v2/organizations/11/user-organization-roles",
            "GET /organizations/11/user-organization-roles",
        ),
        "user_organization_role.json" => (
            "/api/v2/organizations/11/user-organization-roles/111",
            "GET /organizations/11/user-organization-roles/111",
        ),
        "users.json" => ("/api/v2/users", "GET /users?organizationId=11"),
        "organizations.json" => ("/api/v2/organizations", "GET /organizations"),
        "admin_organizations.json" => ("/api/v2/admin/organizations", "GET /admin/organizations"),
        other => panic!("no endpoint for {other}"),
    }
}

/// Reads the fixture's endpoint with the client; a summary of what it understood.
async fn read(client: &MakeClient, name: &str) -> Result<String, MakeError> {
    let listed = OrganizationId::new(LISTED).unwrap();
    Ok(match name {
        "users_me.json" => format!("{:?}", client.get_me().await?),
        "organization.json" => format!(
            "{:?}",
            client
                .get_organization(OrganizationId::new(DETAILED).unwrap())
                .await?
        ),
        "users_roles.json" | "users_roles_custom.json" => {
            format!("{:?}", client.list_roles(listed).await?)
        }
        "users_role.json" => format!("{:?}", client.get_role(42).await?),
        "user_organization_roles.json" => format!("{:?}", client.list_members(listed, None).await?),
        "user_organization_role.json" => format!("{:?}", client.get_member(listed, 111).await?),
        "users.json" => format!("{:?}", client.list_users(listed).await?),
        "organizations.json" => format!("{:?}", client.list_organizations().await?),
        "admin_organizations.json" => {
            format!("{:?}", client.list_instance_organizations().await?)
        }
        other => panic!("no reader for {other}"),
    })
}

async fn env_serving(name: &str, body: &Value) -> TestEnv {
    let mut world = World::default();
    world.add_user(1, "Martin", "martin@example.com", None);
    world.add_organization(DETAILED, "Organization 10", "eu1.make.com", None);
    world.add_organization(LISTED, "Organization 11", "eu1.make.com", None);
    world.add_member(DETAILED, 1, 11, None);
    world.add_member(LISTED, 1, 11, None);
    world.add_token(
        DEMO_TOKEN,
        TokenGrant::new(1, &["organizations:read", "user:read", "admin:read"]),
    );
    world.make_instance_admin(1);
    let (path, _) = served_at(name);
    world
        .faults
        .canned_bodies
        .insert(path.to_string(), body.to_string());
    TestEnv::start_with(world, |_| {}).await
}

async fn read_served(name: &str, body: &Value) -> Result<String, MakeError> {
    let env = env_serving(name, body).await;
    let connection = env.connection("eu1.make.com", LISTED);
    let client = env.client(&connection, DEMO_TOKEN);
    read(&client, name).await
}

const FIXTURES: [&str; 10] = [
    "users_roles_custom.json",
    "users_role.json",
    "organizations.json",
    "admin_organizations.json",
    "users_me.json",
    "organization.json",
    "users_roles.json",
    "user_organization_roles.json",
    "user_organization_role.json",
    "users.json",
];

#[tokio::test]
async fn every_documented_response_is_read_with_its_extra_fields_ignored() {
    let expected = [
        ("users_me.json", "Martin"),
        ("organization.json", "Organization 10"),
        ("users_roles.json", "Accountant"),
        ("user_organization_roles.json", "Some(\"expired\")"),
        ("user_organization_role.json", "Some(\"pending\")"),
        ("users.json", "2023-01-03T11:24:25.460Z"),
        ("organizations.json", "New organization"),
        (
            "users_roles_custom.json",
            "management_type: Some(\"custom_managed\")",
        ),
        ("users_role.json", "Custom Viewer"),
        ("admin_organizations.json", "deleted: Some(true)"),
    ];
    for (name, shows) in expected {
        let summary = read_served(name, &fixture(name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(summary.contains(shows), "{name}: {summary}");
    }
}

#[tokio::test]
async fn the_fixtures_read_as_the_values_they_hold() {
    let env = env_serving("users_roles.json", &fixture("users_roles.json")).await;
    let client = env.client(&env.connection("eu1.make.com", LISTED), DEMO_TOKEN);
    let roles = client
        .list_roles(OrganizationId::new(LISTED).unwrap())
        .await
        .unwrap();
    let names: Vec<(u32, &str)> = roles.iter().map(|r| (r.id, r.name.as_str())).collect();
    assert_eq!(
        names,
        vec![
            (1, "Team Admin"),
            (3, "Team Member"),
            (4, "Team Monitoring"),
            (6, "Team Operator"),
            (11, "Owner"),
            (12, "Admin"),
            (13, "Member"),
            (14, "Accountant"),
        ]
    );

    let env = env_serving("users.json", &fixture("users.json")).await;
    let client = env.client(&env.connection("eu1.make.com", LISTED), DEMO_TOKEN);
    let users = client
        .list_users(OrganizationId::new(LISTED).unwrap())
        .await
        .unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[1].last_login, None);
    assert_eq!(
        env.simulator.requests().len(),
        1,
        "a short page ends the list"
    );

    let env = env_serving(
        "user_organization_role.json",
        &fixture("user_organization_role.json"),
    )
    .await;
    let client = env.client(&env.connection("eu1.make.com", LISTED), DEMO_TOKEN);
    let member = client
        .get_member(OrganizationId::new(LISTED).unwrap(), 111)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            member.user_id,
            member.users_role_id,
            member.invitation.as_deref()
        ),
        (111, 12, Some("pending"))
    );
}

/// The fields makesync cannot do without, as JSON pointers into each fixture.
const REQUIRED: [(&str, &str); 24] = [
    ("users_roles_custom.json", "/usersRoles/1/id"),
    ("users_role.json", "/usersRole/id"),
    ("users_role.json", "/usersRole/name"),
    ("organizations.json", "/organizations/0/id"),
    ("organizations.json", "/organizations/1/name"),
    ("admin_organizations.json", "/organizations/0/id"),
    ("admin_organizations.json", "/organizations/1/name"),
    ("users_me.json", "/authUser/id"),
    ("users_me.json", "/authUser/name"),
    ("organization.json", "/organization/id"),
    ("organization.json", "/organization/name"),
    ("users_roles.json", "/usersRoles/0/id"),
    ("users_roles.json", "/usersRoles/0/name"),
    (
        "user_organization_roles.json",
        "/userOrganizationRoles/0/userId",
    ),
    (
        "user_organization_roles.json",
        "/userOrganizationRoles/0/usersRoleId",
    ),
    (
        "user_organization_roles.json",
        "/userOrganizationRoles/1/invitation",
    ),
    (
        "user_organization_role.json",
        "/userOrganizationRole/userId",
    ),
    (
        "user_organization_role.json",
        "/userOrganizationRole/usersRoleId",
    ),
    (
        "user_organization_role.json",
        "/userOrganizationRole/invitation",
    ),
    ("users.json", "/users/0/id"),
    ("users.json", "/users/0/name"),
    ("users.json", "/users/0/email"),
    ("users.json", "/users/1/lastLogin"),
    ("users.json", "/users"),
];

fn without(mut value: Value, pointer: &str) -> Value {
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    match value.pointer_mut(parent).unwrap() {
        Value::Object(map) => {
            assert!(map.remove(field).is_some(), "{pointer} is in the fixture");
        }
        other => panic!("{pointer}: parent is {other}"),
    }
    value
}

#[tokio::test]
async fn a_missing_required_field_is_a_protocol_error_naming_the_endpoint() {
    for (name, pointer) in REQUIRED {
        let body = without(fixture(name), pointer);
        let error = read_served(name, &body)
            .await
            .expect_err(&format!("{name} without {pointer} was accepted"));
        let (_, label) = served_at(name);
        assert!(
            matches!(error, MakeError::Protocol { .. }),
            "{name} without {pointer}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(label),
            "{name} without {pointer}: {message}"
        );
        let field = pointer.rsplit('/').next().unwrap();
        assert!(
            message.contains(field),
            "{name} without {pointer}: the field is named: {message}"
        );
    }
    for name in FIXTURES {
        assert!(
            REQUIRED.iter().any(|(fixture, _)| *fixture == name),
            "{name} has a required field checked"
        );
    }
}
