//! The simulated Make instance: users, organizations in zones, roles, tokens.

use crate::faults::Faults;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// The demo world's token with the integration's two scopes, `organizations:read` and
/// `user:read` (not `teams:read`: see [`DEMO_TEAMS_TOKEN`]).
pub const DEMO_TOKEN: &str = "sim-token-users-and-orgs";
/// The demo world's token with `teams:read` besides the integration's two scopes.
pub const DEMO_TEAMS_TOKEN: &str = "sim-token-teams-read";
/// The demo world's White Label instance (allow it with `MAKESYNC_EXTRA_HOSTS`).
pub const DEMO_INSTANCE_HOST: &str = "make.partner.example";
/// An administrator of [`DEMO_INSTANCE_HOST`]: `admin:read`, `organizations:read`, `user:read`.
pub const DEMO_INSTANCE_TOKEN: &str = "sim-token-instance-admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub last_login: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMembership {
    pub role_id: u32,
    /// `None` (member), `"pending"` or `"expired"`.
    pub invitation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOrganization {
    pub id: u64,
    pub name: String,
    /// The host of the zone the organization lives in, e.g. `eu1.make.com`.
    pub zone: String,
    pub api_limit: Option<u32>,
    pub members: BTreeMap<u64, SimMembership>,
    /// `isPaused` (002, 003).
    pub paused: bool,
    /// Deleted in a White Label instance: still listed by `GET /admin/organizations` with
    /// `deleted: true` (003), gone everywhere else (assumed: 404).
    pub deleted: bool,
    /// `externalId`: a White Label instance's own id for it; `null` on Make Cloud (002).
    pub external_id: Option<String>,
    /// The license feature `customRoles`: its own roles are listed (Make's SDK, roles.ts).
    pub custom_roles: bool,
    /// Its teams by id (`GET /teams?organizationId=`, Make's SDK teams.ts). Each new
    /// organization has one, "My Team" at `{id}0` (assumed: Make creates a first team; its
    /// id scheme is this simulator's own).
    pub teams: BTreeMap<u64, SimTeam>,
}

/// A team: its name, whether it is a private space (`type: personal`, listed only with
/// `includePrivateSpaces`, Make's SDK teams.ts) and its members' team role ids
/// (`GET /teams/{teamId}/user-team-roles`: `usersRoleId` per `userId`, notes "Teams").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimTeam {
    pub name: String,
    pub personal: bool,
    pub roles: BTreeMap<u64, u32>,
}

/// A role an organization defined itself (Make's SDK, `src/endpoints/roles.ts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCustomRole {
    pub organization_id: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The user the token belongs to (`/users/me`).
    pub user_id: u64,
    pub scopes: BTreeSet<String>,
    /// Revoked or expired: every call answers 401.
    pub revoked: bool,
    /// The zone the token was created on, when it matters (see
    /// [`crate::Faults::tokens_cross_zones`]).
    pub zone: Option<String>,
}

impl TokenGrant {
    pub fn new(user_id: u64, scopes: &[&str]) -> Self {
        Self {
            user_id,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            revoked: false,
            zone: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RateWindow {
    pub started: Duration,
    pub used: u32,
}

#[derive(Debug, Clone)]
pub struct World {
    pub users: BTreeMap<u64, SimUser>,
    pub organizations: BTreeMap<u64, SimOrganization>,
    /// `GET /users/roles`: Make's built-in roles, id → name.
    pub roles: BTreeMap<u32, String>,
    /// Roles organizations defined themselves, by id (ids apart from the built-in ones).
    pub custom_roles: BTreeMap<u32, SimCustomRole>,
    pub tokens: HashMap<String, TokenGrant>,
    /// Users with an instance-level role that may list the instance (SA, Admin, BI, support:
    /// White Label documentation, notes "Finding organizations"). Anyone else holding
    /// `admin:read` gets 403 Access denied (Make's scopes page).
    pub instance_admins: BTreeSet<u64>,
    pub faults: Faults,
    pub(crate) windows: HashMap<u64, RateWindow>,
}

impl Default for World {
    fn default() -> Self {
        Self {
            users: BTreeMap::new(),
            organizations: BTreeMap::new(),
            roles: make_roles(),
            custom_roles: BTreeMap::new(),
            tokens: HashMap::new(),
            instance_admins: BTreeSet::new(),
            faults: Faults::default(),
            windows: HashMap::new(),
        }
    }
}

/// Make's documented roles, team and organization level ("Users > Roles": ids 1, 3, 4, 6 are
/// team roles, 11 to 14 organization roles).
fn make_roles() -> BTreeMap<u32, String> {
    [
        (1, "Team Admin"),
        (3, "Team Member"),
        (4, "Team Monitoring"),
        (6, "Team Operator"),
        (11, "Owner"),
        (12, "Admin"),
        (13, "Member"),
        (14, "Accountant"),
    ]
    .into_iter()
    .map(|(id, name)| (id, name.to_string()))
    .collect()
}

impl World {
    pub fn add_user(
        &mut self,
        id: u64,
        name: &str,
        email: &str,
        last_login: Option<DateTime<Utc>>,
    ) -> &mut Self {
        self.users.insert(
            id,
            SimUser {
                id,
                name: name.to_string(),
                email: email.to_string(),
                last_login,
            },
        );
        self
    }

    pub fn add_organization(
        &mut self,
        id: u64,
        name: &str,
        zone: &str,
        api_limit: Option<u32>,
    ) -> &mut Self {
        self.organizations.insert(
            id,
            SimOrganization {
                id,
                name: name.to_string(),
                zone: zone.to_string(),
                api_limit,
                members: BTreeMap::new(),
                paused: false,
                deleted: false,
                external_id: None,
                custom_roles: false,
                teams: BTreeMap::from([(
                    id * 10,
                    SimTeam {
                        name: "My Team".to_string(),
                        ..SimTeam::default()
                    },
                )]),
            },
        );
        self
    }

    /// Adds (or renames) a team of the organization.
    pub fn add_team(&mut self, organization: u64, team: u64, name: &str) -> &mut Self {
        self.organization_mut(organization)
            .teams
            .entry(team)
            .or_default()
            .name = name.to_string();
        self
    }

    /// Gives a user a team role (a team role id of `GET /users/roles?category=team`), or
    /// with `None` takes them out of the team.
    pub fn set_team_role(
        &mut self,
        organization: u64,
        team: u64,
        user: u64,
        role: Option<u32>,
    ) -> &mut Self {
        let team = self
            .organization_mut(organization)
            .teams
            .get_mut(&team)
            .expect("the team exists");
        match role {
            Some(role) => team.roles.insert(user, role),
            None => team.roles.remove(&user),
        };
        self
    }

    /// Adds `teams` teams to an organization, ids from `first_team_id`, and puts each member
    /// in one of them (by the member's place in id order) and every seventh member in the next
    /// one too, team roles taking turns: the shape of a generated organization's team access.
    pub fn add_generated_teams(
        &mut self,
        organization: u64,
        teams: u64,
        first_team_id: u64,
    ) -> &mut Self {
        const TEAM_ROLES: [u32; 4] = [1, 3, 4, 6];
        for k in 0..teams {
            self.add_team(organization, first_team_id + k, &format!("Team {k}"));
        }
        let members: Vec<u64> = self
            .organization_mut(organization)
            .members
            .keys()
            .copied()
            .collect();
        for (n, user) in members.into_iter().enumerate() {
            let n = n as u64;
            let role = TEAM_ROLES[(n % 4) as usize];
            self.set_team_role(organization, first_team_id + n % teams, user, Some(role));
            if n.is_multiple_of(7) && teams > 1 {
                let next = first_team_id + (n + 1) % teams;
                self.set_team_role(organization, next, user, Some(3));
            }
        }
        self
    }

    /// A team of an organization.
    pub fn team(&self, organization: u64, team: u64) -> Option<&SimTeam> {
        self.organizations.get(&organization)?.teams.get(&team)
    }

    /// The organization a team belongs to.
    pub fn team_organization(&self, team: u64) -> Option<u64> {
        self.organizations
            .values()
            .find(|o| !o.deleted && o.teams.contains_key(&team))
            .map(|o| o.id)
    }

    /// Defines a role of the organization's own and turns its license's `customRoles` on.
    pub fn add_custom_role(&mut self, organization: u64, role_id: u32, name: &str) -> &mut Self {
        self.organization_mut(organization).custom_roles = true;
        self.custom_roles.insert(
            role_id,
            SimCustomRole {
                organization_id: organization,
                name: name.to_string(),
            },
        );
        self
    }

    /// Renames a custom role, as the organization's administrator would in Make.
    pub fn rename_custom_role(&mut self, role_id: u32, name: &str) -> &mut Self {
        self.custom_roles
            .get_mut(&role_id)
            .unwrap_or_else(|| panic!("no custom role {role_id}"))
            .name = name.to_string();
        self
    }

    /// Pauses or resumes an organization (`isPaused`).
    pub fn set_paused(&mut self, organization: u64, paused: bool) -> &mut Self {
        self.organization_mut(organization).paused = paused;
        self
    }

    /// Deletes an organization the White Label way: it stays listed by
    /// `GET /admin/organizations` with `deleted: true` and cannot be restored (003).
    pub fn delete_in_instance(&mut self, organization: u64) -> &mut Self {
        self.organization_mut(organization).deleted = true;
        self
    }

    /// Gives `user` an instance-level role that may list the instance's organizations.
    pub fn make_instance_admin(&mut self, user: u64) -> &mut Self {
        self.instance_admins.insert(user);
        self
    }

    /// Adds (or replaces) a membership. Panics on an unknown organization: a test mistake.
    pub fn add_member(
        &mut self,
        organization: u64,
        user: u64,
        role_id: u32,
        invitation: Option<&str>,
    ) -> &mut Self {
        self.organization_mut(organization).members.insert(
            user,
            SimMembership {
                role_id,
                invitation: invitation.map(str::to_string),
            },
        );
        self
    }

    /// Revokes the token in Make (`true`), or takes the revocation back (`false`): every
    /// request with it answers 401 while it is revoked.
    pub fn set_revoked(&mut self, token: &str, revoked: bool) -> &mut Self {
        if let Some(grant) = self.tokens.get_mut(token) {
            grant.revoked = revoked;
        }
        self
    }

    pub fn remove_member(&mut self, organization: u64, user: u64) -> &mut Self {
        self.organization_mut(organization).members.remove(&user);
        self
    }

    pub fn set_role(&mut self, organization: u64, user: u64, role_id: u32) -> &mut Self {
        self.membership_mut(organization, user).role_id = role_id;
        self
    }

    pub fn accept_invitation(&mut self, organization: u64, user: u64) -> &mut Self {
        self.membership_mut(organization, user).invitation = None;
        self
    }

    pub fn log_in(&mut self, user: u64, at: DateTime<Utc>) -> &mut Self {
        self.users
            .get_mut(&user)
            .unwrap_or_else(|| panic!("no simulated user {user}"))
            .last_login = Some(at);
        self
    }

    pub fn add_token(&mut self, token: &str, grant: TokenGrant) -> &mut Self {
        self.tokens.insert(token.to_string(), grant);
        self
    }

    /// Spends `requests` of the organization's current rate-limit window, as the customer's
    /// own scenarios would.
    pub fn spend_budget(&mut self, organization: u64, requests: u32, now: Duration) -> &mut Self {
        let window = self.windows.entry(organization).or_insert(RateWindow {
            started: now,
            used: 0,
        });
        window.used += requests;
        self
    }

    /// Starts the organization's rate-limit window afresh, as a minute's wait would: a
    /// harness control (the benchmark measures each sync in a minute of its own), not a
    /// behaviour of Make.
    pub fn start_minute_afresh(&mut self, organization: u64) -> &mut Self {
        self.windows.remove(&organization);
        self
    }

    /// Adds an organization with `members` generated members (user ids from `first_user_id`):
    /// one Owner, an Admin in every 50, pending invitations in every 97, and two in three
    /// logged in. For load tests and benchmarks.
    pub fn add_generated_organization(
        &mut self,
        id: u64,
        zone: &str,
        api_limit: Option<u32>,
        members: u64,
        first_user_id: u64,
    ) -> &mut Self {
        self.add_organization(id, &format!("Generated {members}"), zone, api_limit);
        let base = at("2026-11-01T00:00:00Z");
        for n in 0..members {
            let user_id = first_user_id + n;
            let last_login =
                (n % 3 != 0).then(|| base + chrono::Duration::minutes((n % 30_000) as i64));
            self.add_user(
                user_id,
                &format!("User {n}"),
                &format!("user{n}@org{id}.example"),
                last_login,
            );
            let role = match n {
                0 => 11,
                n if n % 50 == 0 => 12,
                _ => 13,
            };
            let invitation = (n > 0 && n % 97 == 0).then_some("pending");
            self.add_member(id, user_id, role, invitation);
        }
        self
    }

    /// The category `/users/roles` gives a role (`category=organization|team`).
    pub fn role_category(role_id: u32) -> &'static str {
        // "Users > Roles": ids 1, 3, 4, 6 are team roles; others are read as organization roles
        // (assumed for ids the page does not list).
        match role_id {
            1 | 3 | 4 | 6 => "team",
            _ => "organization",
        }
    }

    pub fn organization(&self, id: u64) -> Option<&SimOrganization> {
        self.organizations.get(&id)
    }

    fn organization_mut(&mut self, id: u64) -> &mut SimOrganization {
        self.organizations
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no simulated organization {id}"))
    }

    fn membership_mut(&mut self, organization: u64, user: u64) -> &mut SimMembership {
        self.organization_mut(organization)
            .members
            .get_mut(&user)
            .unwrap_or_else(|| panic!("user {user} is not in organization {organization}"))
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("seed timestamps are valid")
        .with_timezone(&Utc)
}

/// Three organizations in three zones, members in every role and invitation state, users who
/// never logged in, non-ASCII names, and tokens for every kind of failure:
///
/// | token | can |
/// |---|---|
/// | `sim-token-users-and-orgs` | the integration's scopes, `organizations:read` and `user:read` (user 1, member of all three) |
/// | `sim-token-teams-read` | those and `teams:read` |
/// | `sim-token-no-user-read` | `organizations:read` only |
/// | `sim-token-no-organizations-read` | `user:read` only |
/// | `sim-token-revoked` | nothing: 401 |
/// | `sim-token-outsider` | both scopes, but its user belongs to no organization |
pub fn demo_world() -> World {
    let mut world = World::default();
    add_demo_people(&mut world);
    add_acme(&mut world);
    add_globex(&mut world);
    add_celonis(&mut world);
    add_demo_tokens(&mut world);
    add_demo_instance(&mut world);
    world
}

/// The demo's named people: id, name, email, last login (`None`: never logged in).
const DEMO_PEOPLE: [(u64, &str, &str, Option<&str>); 16] = [
    (
        1,
        "Ada Lovelace",
        "ada@acme.example",
        Some("2026-11-20T08:15:00Z"),
    ),
    (
        2,
        "Zoë Müller",
        "zoe@acme.example",
        Some("2026-11-19T17:02:11Z"),
    ),
    (3, "Łukasz Żółć", "lukasz@acme.example", None),
    (
        4,
        "李雷",
        "li.lei@acme.example",
        Some("2026-10-02T03:45:00Z"),
    ),
    (
        5,
        "José Ñúñez",
        "jose@globex.example",
        Some("2026-11-21T12:00:00Z"),
    ),
    (
        6,
        "Grace Hopper",
        "grace@globex.example",
        Some("2026-09-30T09:00:00Z"),
    ),
    (7, "Søren Kierkegaard", "soren@globex.example", None),
    (
        8,
        "Amélie Poulain",
        "amelie@celonis-ops.example",
        Some("2026-11-18T10:30:00Z"),
    ),
    (9, "Björk Guðmundsdóttir", "bjork@celonis-ops.example", None),
    (
        10,
        "Ngozi Okonjo",
        "ngozi@celonis-ops.example",
        Some("2026-11-01T14:20:00Z"),
    ),
    (
        11,
        "Rafael Núñez",
        "rafael@acme.example",
        Some("2026-08-12T07:00:00Z"),
    ),
    (12, "Chloé Dubois", "chloe@acme.example", None),
    (
        13,
        "Outsider Olsen",
        "olsen@elsewhere.example",
        Some("2026-11-01T00:00:00Z"),
    ),
    (
        14,
        "Dmitri Иванов",
        "dmitri@globex.example",
        Some("2026-11-10T11:11:11Z"),
    ),
    (
        15,
        "Aiko 山田",
        "aiko@celonis-ops.example",
        Some("2026-11-21T23:59:59Z"),
    ),
    (16, "Pending Pat", "pat@globex.example", None),
];

/// The named people, and 30 builders more so that Acme's lists span several pages.
fn add_demo_people(world: &mut World) {
    for (id, name, email, last_login) in DEMO_PEOPLE {
        world.add_user(id, name, email, last_login.map(at));
    }
    for n in 0..30u64 {
        let id = 100 + n;
        let last_login = (!n.is_multiple_of(3))
            .then(|| at("2026-11-01T09:00:00Z") + chrono::Duration::hours(n as i64));
        world.add_user(
            id,
            &format!("Acme Builder {n:02}"),
            &format!("builder{n:02}@acme.example"),
            last_login,
        );
    }
}

/// Acme Robotics on eu1.make.com: every built-in role, a pending and an expired invitation,
/// and the 30 builders.
fn add_acme(world: &mut World) {
    world.add_organization(1001, "Acme Robotics", "eu1.make.com", Some(60));
    world
        .add_member(1001, 1, 11, None)
        .add_member(1001, 2, 12, None)
        .add_member(1001, 3, 13, Some("pending"))
        .add_member(1001, 4, 14, None)
        .add_member(1001, 11, 13, None)
        .add_member(1001, 12, 13, Some("expired"));
    for n in 0..30u64 {
        world.add_member(
            1001,
            100 + n,
            if n.is_multiple_of(10) { 12 } else { 13 },
            None,
        );
    }
    // Team roles: 1 Team Admin, 3 Team Member, 4 Team Monitoring, 6 Team Operator ("Users >
    // Roles"); a private space, listed only when asked for.
    world
        .set_team_role(1001, 10010, 1, Some(1))
        .add_team(1001, 10011, "Finance")
        .set_team_role(1001, 10011, 2, Some(1))
        .set_team_role(1001, 10011, 11, Some(3))
        .set_team_role(1001, 10011, 100, Some(6))
        .add_team(1001, 10012, "Marketing")
        .set_team_role(1001, 10012, 1, Some(4))
        .set_team_role(1001, 10012, 4, Some(3))
        .add_team(1001, 10013, "Ada's private space")
        .set_team_role(1001, 10013, 1, Some(1));
    if let Some(team) = world.organization_mut(1001).teams.get_mut(&10013) {
        team.personal = true;
    }
}

/// Globex Corporation on us2.make.com, with a member in a custom role of its own.
fn add_globex(world: &mut World) {
    world.add_organization(2002, "Globex Corporation", "us2.make.com", Some(120));
    world
        .add_member(2002, 1, 12, None)
        .add_member(2002, 5, 11, None)
        .add_member(2002, 6, 13, None)
        .add_member(2002, 7, 14, None)
        .add_member(2002, 14, 17, None) // a custom role, listed only for Globex
        .add_member(2002, 16, 13, Some("pending"));

    world.add_custom_role(2002, 17, "Scenario Reviewer");
}

/// Celonis Operations on eu1.make.celonis.com.
fn add_celonis(world: &mut World) {
    world.add_organization(
        3003,
        "Celonis Operations",
        "eu1.make.celonis.com",
        Some(240),
    );
    world
        .add_member(3003, 1, 13, None)
        .add_member(3003, 8, 11, None)
        .add_member(3003, 9, 12, Some("pending"))
        .add_member(3003, 10, 13, None)
        .add_member(3003, 15, 14, None);
}

/// The demo tokens of the table above.
fn add_demo_tokens(world: &mut World) {
    world
        .add_token(
            DEMO_TOKEN,
            TokenGrant::new(1, &["organizations:read", "user:read"]),
        )
        .add_token(
            DEMO_TEAMS_TOKEN,
            TokenGrant::new(1, &["organizations:read", "user:read", "teams:read"]),
        )
        .add_token(
            "sim-token-no-user-read",
            TokenGrant::new(1, &["organizations:read"]),
        )
        .add_token(
            "sim-token-no-organizations-read",
            TokenGrant::new(1, &["user:read"]),
        )
        .add_token(
            "sim-token-revoked",
            TokenGrant {
                revoked: true,
                ..TokenGrant::new(1, &["organizations:read", "user:read"])
            },
        )
        .add_token(
            "sim-token-outsider",
            TokenGrant::new(13, &["organizations:read", "user:read"]),
        );
}

/// A White Label instance on [`DEMO_INSTANCE_HOST`] with one organization of each kind the
/// admin list shows (003): active, paused, deleted, and one whose `apiLimit` is 0. Its
/// administrator (user 20) is a member of the first only.
fn add_demo_instance(world: &mut World) {
    world.add_user(20, "Ingrid Instance", "ingrid@partner.example", None);
    for (id, name) in [
        (21, "Partner Pia"),
        (22, "Partner Paul"),
        (23, "Partner Petra"),
    ] {
        world.add_user(
            id,
            name,
            &format!("{}@partner.example", name.to_lowercase().replace(' ', ".")),
            None,
        );
    }
    let organizations: [(u64, &str, Option<u32>); 4] = [
        (5001, "Partner Alpha", Some(240)),
        (5002, "Partner Beta", Some(60)),
        (5003, "Partner Gamma", Some(60)),
        (5004, "Partner Delta", Some(0)),
    ];
    for (id, name, api_limit) in organizations {
        world.add_organization(id, name, DEMO_INSTANCE_HOST, api_limit);
        world.organization_mut(id).external_id = Some(format!("partner-{id}"));
        world
            .add_member(id, 21, 11, None)
            .add_member(id, 22, 13, None);
    }
    world
        .add_member(5001, 20, 12, None)
        .add_member(5001, 23, 13, None);
    world.set_paused(5002, true).delete_in_instance(5003);
    world.make_instance_admin(20).add_token(
        DEMO_INSTANCE_TOKEN,
        TokenGrant::new(20, &["admin:read", "organizations:read", "user:read"]),
    );
}
