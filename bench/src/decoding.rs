//! Decoding: the CPU a sync spends turning Make's answers into rows, without the network.
//! One `/users` page and the member list of an organization are read from the simulator
//! once, as makesync asks them, then decoded over and over by the client's own decoder; the
//! table gives the median time a body, per row and per megabyte. In a Lambda function of
//! 256 MB (about a sixth of a core) each millisecond here is about six of the sync's.

use crate::{print_table, Organization};
use makesync::make::{decode_list_rows, MakeUser, OrganizationMember};
use makesync_simulator::{Simulator, DEMO_TOKEN};
use std::time::{Duration, Instant};

pub async fn run(
    simulator: &Simulator,
    organization: &Organization,
    rounds: usize,
) -> anyhow::Result<()> {
    let id = organization.id;
    let users = read(
        simulator,
        &format!(
            "/users?organizationId={id}&cols[]=id&cols[]=name&cols[]=email&cols[]=lastLogin&pg[sortBy]=id&pg[sortDir]=asc&pg[offset]=0&pg[limit]=10000"
        ),
    )
    .await?;
    let members = read(
        simulator,
        &format!(
            "/organizations/{id}/user-organization-roles?cols[]=userId&cols[]=usersRoleId&cols[]=invitation"
        ),
    )
    .await?;
    let rows = vec![
        row("/users page", &users, rounds, |body| {
            decode_list_rows::<MakeUser>("users", "users", body).map(|r| r.len())
        })?,
        row("member list", &members, rounds, |body| {
            decode_list_rows::<OrganizationMember>("members", "userOrganizationRoles", body)
                .map(|r| r.len())
        })?,
    ];
    print_table(
        &format!("Decoding Make's answers (median of {rounds}, one thread)"),
        &["answer", "rows", "body", "a body", "a row", "throughput"],
        &rows,
    );
    Ok(())
}

async fn read(simulator: &Simulator, path: &str) -> anyhow::Result<Vec<u8>> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v2{path}", simulator.base_url()))
        .header("Authorization", format!("Token {DEMO_TOKEN}"))
        .header("Host", "eu1.make.com")
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    Ok(response.bytes().await?.to_vec())
}

fn row(
    name: &str,
    body: &[u8],
    rounds: usize,
    decode: impl Fn(&[u8]) -> Result<usize, makesync::make::MakeError>,
) -> anyhow::Result<Vec<String>> {
    let mut times = Vec::with_capacity(rounds);
    let mut rows = 0;
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        rows = decode(body)?;
        times.push(started.elapsed());
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    let seconds = median.as_secs_f64();
    Ok(vec![
        name.to_string(),
        rows.to_string(),
        format!("{:.2} MB", body.len() as f64 / 1e6),
        format!("{:.2} ms", seconds * 1000.0),
        format!("{:.0} ns", seconds * 1e9 / rows.max(1) as f64),
        format!("{:.0} MB/s", body.len() as f64 / 1e6 / seconds),
    ])
}
