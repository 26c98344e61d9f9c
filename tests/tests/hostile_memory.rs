//! The review's F4: a hostile host's 20 MB `/users` page whose last row is malformed. Its own
//! test binary, so that the peak resident memory it reads (`VmHWM`) is this decode's alone.
//! `cargo test -p makesync-tests --test hostile_memory -- --nocapture` prints the numbers.

use makesync_tests::simulator::demo_world;
use makesync_tests::{TestEnv, ACME};

/// The process's peak resident memory so far, in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
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
