//! What a hostile host's answers cost the client in memory: a 20 MB `/users` page whose last
//! row is malformed (the review's F4), a 15 MB page of every shape (a `pg` echo of any size,
//! rows past the bound: N3), endless lists of well-formed pages (N6). Its own test binary, its
//! measurements one at a time, so that the peak resident memory it reads (`VmHWM`, reset
//! before each) is that read's alone.
//! `cargo test -p makesync-tests --test hostile_memory -- --nocapture` prints the numbers.

use makesync::make::{MakeClient, MakeError};
use makesync::memory_budget::{MemoryBudget, PROCESS_BASELINE};
use makesync::organization::OrganizationId;
use makesync::sync::fetch_snapshot;
use makesync::sync::{read_team_access, TeamAccess, MAX_TEAMS, MAX_TEAM_MEMBERSHIPS};
use makesync_tests::hostile_host::{
    client_of, endless_page, member_row, pg_array_page, pg_object_page, rows_page,
    teams_of_distinct_members, user_row, worker_config, Asked, Body, HostileHost,
};
use makesync_tests::measure::{measure_peak, run_measured, status_bytes};
use makesync_tests::simulator::demo_world;
use makesync_tests::{TestEnv, ACME};
use std::sync::Arc;
use std::time::Duration;

/// The process's peak resident memory so far, in bytes.
fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// The most a 15 MB answer, or a list at its bound, may add to a 256 MB worker's memory.
const GROWTH_ALLOWED: u64 = 64 * 1024 * 1024;

const FIFTEEN_MB: usize = 15 * 1024 * 1024;

/// A hostile answer, and the read that meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    UsersPgList,
    UsersPgObject,
    UsersShortRowsPastBound,
    UsersLongTexts,
    MembersPgList,
    MembersShortRowsPastBound,
    TeamsPastBound,
    EndlessUsersShortRows,
    EndlessUsersLongTexts,
    EndlessMembers,
    EndlessInstanceOrganizations,
    EndlessTeamMembers,
    LargePagesReadAhead,
    TeamAccessAtItsBound,
    WholeSnapshot,
    WholeSnapshotInABusyWorker,
}

impl Hostile {
    const ALL: [Hostile; 16] = [
        Hostile::UsersPgList,
        Hostile::UsersPgObject,
        Hostile::UsersShortRowsPastBound,
        Hostile::UsersLongTexts,
        Hostile::MembersPgList,
        Hostile::MembersShortRowsPastBound,
        Hostile::TeamsPastBound,
        Hostile::EndlessUsersShortRows,
        Hostile::EndlessUsersLongTexts,
        Hostile::EndlessMembers,
        Hostile::EndlessInstanceOrganizations,
        Hostile::EndlessTeamMembers,
        Hostile::LargePagesReadAhead,
        Hostile::TeamAccessAtItsBound,
        Hostile::WholeSnapshot,
        Hostile::WholeSnapshotInABusyWorker,
    ];

    /// The host: a 15 MB answer made now (before the measurement), or an endless list of
    /// well-formed, anchored, full pages.
    fn host(self) -> (HostileHost, u32) {
        let users = "/users";
        let members = "/organizations/7/user-organization-roles";
        let team_row = |id: u64| format!(r#"{{"id":{id},"name":"{}"}}"#, "T".repeat(1000));
        let page = |path: &'static str, body: bytes::Bytes| {
            HostileHost::new(move |asked: &Asked| (asked.path == path).then(|| body.clone()))
        };
        let endless = |path: &'static str, collection: &'static str, row: fn(u64) -> String| {
            HostileHost::new(move |asked: &Asked| {
                (asked.path == path).then(|| endless_page(collection, asked, row))
            })
        };
        match self {
            Hostile::UsersPgList => (page(users, pg_array_page("users", FIFTEEN_MB)), 10_000),
            Hostile::UsersPgObject => (page(users, pg_object_page("users", FIFTEEN_MB)), 10_000),
            Hostile::UsersShortRowsPastBound => (
                page(
                    users,
                    rows_page("users", FIFTEEN_MB, 1, |id| user_row(id, 0)),
                ),
                10_000,
            ),
            Hostile::UsersLongTexts => (
                page(
                    users,
                    rows_page("users", FIFTEEN_MB, 1, |id| user_row(id, 1000)),
                ),
                10_000,
            ),
            Hostile::MembersPgList => (
                page(members, pg_array_page("userOrganizationRoles", FIFTEEN_MB)),
                10_000,
            ),
            Hostile::MembersShortRowsPastBound => (
                page(
                    members,
                    rows_page("userOrganizationRoles", FIFTEEN_MB, 1, member_row),
                ),
                10_000,
            ),
            Hostile::TeamsPastBound => (
                page("/teams", rows_page("teams", FIFTEEN_MB, 1, team_row)),
                10_000,
            ),
            Hostile::EndlessUsersShortRows => {
                (endless(users, "users", |id| user_row(id, 0)), 10_000)
            }
            Hostile::EndlessUsersLongTexts => {
                (endless(users, "users", |id| user_row(id, 1000)), 1_000)
            }
            Hostile::EndlessMembers => (
                endless(members, "userOrganizationRoles", member_row),
                10_000,
            ),
            Hostile::EndlessInstanceOrganizations => (
                endless("/admin/organizations", "organizations", |id| {
                    format!(r#"{{"id":{id},"name":"O{id}"}}"#)
                }),
                10_000,
            ),
            // 10,000 rows of 1.4 KB a page: 15 MB pages, every one of them full, and a count
            // that says to read 16 of them at once.
            Hostile::LargePagesReadAhead => {
                (endless(users, "users", |id| user_row(id, 700)), 10_000)
            }
            Hostile::TeamAccessAtItsBound => {
                (HostileHost::new(|asked: &Asked| teams(asked)), 10_000)
            }
            Hostile::WholeSnapshot | Hostile::WholeSnapshotInABusyWorker => {
                (whole_organization(), 10_000)
            }
            Hostile::EndlessTeamMembers => (
                HostileHost::new(|asked: &Asked| match asked.path.as_str() {
                    "/teams" => Some(Body::from(bytes::Bytes::from_static(
                        br#"{"teams":[{"id":1,"name":"Everyone"}],"pg":{"limit":10000}}"#,
                    ))),
                    "/teams/1/user-team-roles" => {
                        Some(endless_page("userTeamRoles", asked, |id| {
                            format!(r#"{{"userId":{id},"usersRoleId":3,"teamId":1}}"#)
                        }))
                    }
                    _ => None,
                }),
                10_000,
            ),
        }
    }

    /// Reads what this host answers, as the sync would: the outcome in words.
    async fn read(self, client: &MakeClient) -> String {
        let organization = OrganizationId::new(7).unwrap();
        match self {
            Hostile::UsersPgList
            | Hostile::UsersPgObject
            | Hostile::UsersShortRowsPastBound
            | Hostile::UsersLongTexts
            | Hostile::EndlessUsersShortRows
            | Hostile::EndlessUsersLongTexts => counted(client.list_users(organization).await),
            Hostile::LargePagesReadAhead => counted(
                client
                    .list_users_expecting(organization, Some(160_000), std::future::ready(None))
                    .await,
            ),
            Hostile::MembersPgList
            | Hostile::MembersShortRowsPastBound
            | Hostile::EndlessMembers => counted(client.list_members(organization, None).await),
            Hostile::TeamsPastBound => counted(client.list_teams(organization, MAX_TEAMS).await),
            Hostile::EndlessInstanceOrganizations => {
                counted(client.list_instance_organizations().await)
            }
            Hostile::EndlessTeamMembers => {
                format!("{:?}", read_team_access(client, organization).await)
            }
            Hostile::TeamAccessAtItsBound => match read_team_access(client, organization).await {
                Ok(TeamAccess::Read(grants)) => format!("Read({} memberships)", grants.len()),
                other => format!("{other:?}"),
            },
            Hostile::WholeSnapshot | Hostile::WholeSnapshotInABusyWorker => {
                // A connection whose last sync counted 160,000 users: both lists read ahead.
                match fetch_snapshot(client, organization, Some(160_000), 3, async {}).await {
                    Ok((snapshot, ())) => format!("Ok({} members)", snapshot.members.len()),
                    Err(error) => format!("Err({error:?})"),
                }
            }
        }
    }
}

/// 50 teams of 10,000 members each, all different users: 500,000 memberships, the most
/// makesync reads.
fn teams(asked: &Asked) -> Option<Body> {
    teams_of_distinct_members(asked, 50)
}

/// A whole organization as a hostile host answers it, every list well formed (the review of
/// 7 December's case): its plan, its roles, the 50 teams above, and `/users` and the member
/// list as endless lists of anchored, full pages (15 MB pages of 1.4 KB users; members with a
/// 1 KB `invitation`).
fn whole_organization() -> HostileHost {
    HostileHost::new(|asked: &Asked| {
        match asked.path.as_str() {
        "/organizations/7" => Some(Body::from(bytes::Bytes::from_static(
            br#"{"organization":{"id":7,"name":"A","zone":"eu1.make.com","license":{"apiLimit":2000}}}"#,
        ))),
        "/users/roles" => Some(Body::from(bytes::Bytes::from_static(
            br#"{"usersRoles":[{"id":13,"name":"Member"},{"id":3,"name":"Team Member"}]}"#,
        ))),
        "/users" => Some(endless_page("users", asked, |id| user_row(id, 700))),
        "/organizations/7/user-organization-roles" => {
            Some(endless_page("userOrganizationRoles", asked, |id| {
                format!(
                    r#"{{"userId":{id},"usersRoleId":13,"invitation":"{}"}}"#,
                    "p".repeat(1000)
                )
            }))
        }
        _ => teams(asked),
    }
    })
}

/// A list read, as the rows it holds or the error.
fn counted<T>(read: Result<Vec<T>, MakeError>) -> String {
    format!("{:?}", read.map(|rows| rows.len()))
}

/// A client of `host` configured as in a 256 MB Lambda function (the template's), with
/// pages of `page_size`.
fn hostile_client(host: HostileHost, page_size: u32) -> (MakeClient, Arc<HostileHost>) {
    let mut config = worker_config();
    config.page_size = page_size;
    let host = Arc::new(host);
    (client_of(host.clone(), config), host)
}

const CASE_ENV: &str = "MAKESYNC_HOSTILE_CASE";

/// One measurement, in this process (started by [`measure`] for it): the host is made, then
/// the peak is reset and the read runs. Prints `growth <bytes> requests <n> outcome <text>`.
#[tokio::test]
#[ignore = "one measurement, run in a process of its own by the tests below"]
async fn measure_one() {
    let Some(case) = std::env::var(CASE_ENV).ok() else {
        return;
    };
    let hostile = Hostile::ALL
        .into_iter()
        .find(|h| format!("{h:?}") == case)
        .expect("a case");
    let (host, page_size) = hostile.host();
    let (client, host) = hostile_client(host, page_size);
    // A worker whose memory budget other syncs hold all but 24 MB of: this sync's share is
    // its 4 MB, and what it can grow into.
    let memory = MemoryBudget::for_function(256, 20_000);
    let (client, _others) = match hostile {
        Hostile::WholeSnapshotInABusyWorker => {
            let others = (memory.total_bytes() - 24 * 1024 * 1024) / 600;
            let others = memory.reserve(Some(others as u32), Duration::ZERO).await;
            let share = memory.reserve(Some(0), Duration::ZERO).await;
            let share = share.expect("a share of what is left");
            (client.with_memory_share(Arc::new(share)), others)
        }
        _ => (client, None),
    };
    let (outcome, growth) = measure_peak(hostile.read(&client)).await;
    println!(
        "growth {growth} requests {} outcome {outcome}",
        host.requests()
    );
}

/// What one hostile read cost, measured in a process of its own: memory one measurement
/// freed is not there for the next to reuse unseen.
struct Measured {
    growth: u64,
    requests: usize,
    outcome: String,
}

fn measure(hostile: Hostile) -> Measured {
    let line = run_measured("measure_one", CASE_ENV, &format!("{hostile:?}"));
    let mut words = line.splitn(4, ' ');
    let growth = words.next().unwrap().parse().unwrap();
    let requests = words.nth(1).unwrap().parse().unwrap();
    let outcome = words
        .next()
        .unwrap()
        .trim_start_matches("outcome ")
        .to_string();
    println!(
        "{hostile:?}: +{} MB after {requests} requests; {outcome}",
        growth >> 20
    );
    Measured {
        growth,
        requests,
        outcome,
    }
}

/// N3 and the rows' bound: a 15 MB answer of every shape a list can have — a `pg` echo that
/// is a list or an object of any size, rows far past what the list may hold, rows of the
/// longest text — costs a client configured as the 256 MB worker is less than 64 MB above
/// what it held, and is either an ordinary (empty) page or refused.
#[test]
fn a_15_mb_answer_of_any_shape_costs_under_64_mb() {
    for hostile in &Hostile::ALL[..7] {
        let measured = measure(*hostile);
        assert!(
            measured.growth < GROWTH_ALLOWED,
            "{hostile:?}: +{} B",
            measured.growth
        );
        match hostile {
            Hostile::UsersPgList | Hostile::UsersPgObject | Hostile::MembersPgList => {
                assert_eq!(
                    measured.outcome, "Ok(0)",
                    "{hostile:?}: an ordinary empty page"
                )
            }
            Hostile::UsersLongTexts => assert!(measured.outcome.starts_with("Err("), "{hostile:?}"),
            _ => assert!(
                measured.outcome.contains("ListTooLong") && measured.outcome.contains("Rows("),
                "{hostile:?}: {}",
                measured.outcome
            ),
        }
    }
}

/// N6: endless lists of well-formed, anchored, full pages stop at their bound while they are
/// read — `/users` of short rows at the row bound, of 1 KB texts at the bytes one sync's lists
/// may hold, the member list, the instance's organizations — and a team's member list at the
/// team memberships' bound, as team access not read; 15 MB pages that a count says to read 16
/// at once are read while the sync's read budget lasts. Each within what a 256 MB worker's
/// sync may hold of its lists (78.7 MB), and a page being decoded.
#[test]
fn an_endless_list_stops_at_its_bound_within_the_function_s_memory() {
    let read_bound = worker_config().max_read_bytes;
    for hostile in &Hostile::ALL[7..] {
        let measured = measure(*hostile);
        let allowed = read_bound + 16 * 1024 * 1024;
        assert!(
            measured.growth < allowed,
            "{hostile:?}: +{} B",
            measured.growth
        );
        match hostile {
            Hostile::EndlessTeamMembers => {
                assert!(
                    measured.outcome.contains("team memberships"),
                    "{}",
                    measured.outcome
                );
                // 10,000 rows a page, each from the last row of the one before.
                assert!(measured.requests <= 2 + MAX_TEAM_MEMBERSHIPS / 9_999);
            }
            Hostile::TeamAccessAtItsBound => {
                assert!(
                    measured.outcome.contains("Read(500000"),
                    "{}",
                    measured.outcome
                );
                assert!(measured.growth < GROWTH_ALLOWED, "+{} B", measured.growth);
            }
            Hostile::WholeSnapshot => {
                assert!(measured.outcome.starts_with("Err("), "{}", measured.outcome);
                assert!(measured.growth + PROCESS_BASELINE < 256 * 1024 * 1024);
            }
            Hostile::WholeSnapshotInABusyWorker => {
                // What the others hold is theirs: this sync is refused before it takes it.
                assert!(
                    measured.outcome.contains("MemoryTaken"),
                    "{}",
                    measured.outcome
                );
                assert!(measured.growth < 24 * 1024 * 1024 + 2 * 16 * 1024 * 1024);
            }
            Hostile::EndlessInstanceOrganizations => {
                assert!(measured.outcome.contains("Rows("), "{}", measured.outcome);
                // Short rows: the rows' bound of a 256 MB function stops it.
                let bound = worker_config().max_list_rows;
                assert!(
                    measured.requests <= 2 + bound / 9_999,
                    "{}",
                    measured.requests
                );
            }
            Hostile::EndlessUsersLongTexts | Hostile::LargePagesReadAhead => {
                assert!(measured.outcome.contains("Bytes("), "{}", measured.outcome)
            }
            _ => assert!(
                measured.outcome.contains("ListTooLong"),
                "{}",
                measured.outcome
            ),
        }
    }
}

/// Past 5,000 teams team access is not read, found at the page that passes them.
#[tokio::test]
async fn a_team_list_past_its_bound_is_not_read_from_the_page_that_passes_it() {
    let host = HostileHost::new(|asked: &Asked| match asked.path.as_str() {
        "/teams" => Some(endless_page("teams", asked, |id| {
            format!(r#"{{"id":{id},"name":"T{id}"}}"#)
        })),
        _ => None,
    });
    let (client, host) = hostile_client(host, 1_000);
    let access = read_team_access(&client, OrganizationId::new(7).unwrap())
        .await
        .unwrap();
    assert!(
        matches!(access, TeamAccess::NotRead(ref why) if why.contains("5000 teams")),
        "{access:?}"
    );
    // Pages of 1,000 rows, each from the last row of the one before: 1,000 + 4 × 999 rows
    // are within the 5,000, the sixth page passes them.
    assert_eq!(host.requests(), 6);
}

/// About `bytes` of well-formed `/users` rows, the last one with an email that is a number.
fn hostile_page(bytes: usize) -> String {
    let mut body = String::with_capacity(bytes + 200);
    body.push_str(r#"{"users":["#);
    let mut id = 1u64;
    while body.len() < bytes {
        body.push_str(&format!(
            r#"{{"id":{id},"name":"u{id}","email":"u{id}@x.example","lastLogin":null}},"#
        ));
        id += 1;
    }
    body.push_str(&format!(
        r#"{{"id":{id},"name":"last","email":1,"lastLogin":null}}],"pg":{{"limit":10000000,"offset":0}}}}"#
    ));
    body
}

#[tokio::test]
async fn a_20_mb_hostile_page_is_refused_within_the_function_s_memory() {
    const FUNCTION_MEMORY: u64 = 256 * 1024 * 1024;
    let body = hostile_page(20 * 1024 * 1024);
    let mut world = demo_world();
    world
        .faults
        .canned_bodies
        .insert("/api/v2/users".into(), body.clone());
    // The default bound refuses it unread; above it, the decode itself is what is measured.
    let env = TestEnv::start_with(world, |config| {
        config.max_response_bytes = 64 * 1024 * 1024;
    })
    .await;
    drop(body);
    let connection = env.connection("eu1.make.com", ACME);
    let client = env.client(&connection, makesync_tests::simulator::DEMO_TOKEN);
    let before = peak_rss();
    let error = client
        .list_users(connection.organization_id)
        .await
        .unwrap_err()
        .to_string();
    let after = peak_rss();
    // The simulator holds its canned copy and sends it: counted in `before` and `after` alike
    // only as far as it was resident before; the growth is the client's.
    let growth = after.saturating_sub(before);
    println!(
        "20 MB hostile page: peak RSS {} MB before, {} MB after (+{} MB); {error}",
        before / (1024 * 1024),
        after / (1024 * 1024),
        growth / (1024 * 1024)
    );
    assert!(error.contains("users["), "{error}");
    assert!(
        after < FUNCTION_MEMORY,
        "peak RSS {after} B is past a 256 MB function's memory"
    );

    // With the default bound it is not even read.
    let env = TestEnv::start_with(
        {
            let mut world = demo_world();
            world
                .faults
                .canned_bodies
                .insert("/api/v2/users".into(), hostile_page(20 * 1024 * 1024));
            world
        },
        |_| {},
    )
    .await;
    let client = env.client(&connection, makesync_tests::simulator::DEMO_TOKEN);
    let refused = client
        .list_users(connection.organization_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("MAKESYNC_MAX_RESPONSE_MB (16 MB)"),
        "{refused}"
    );
}
