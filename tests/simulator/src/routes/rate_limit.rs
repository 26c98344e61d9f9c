//! Each organization's per-minute budget: the `X-RateLimit-*` headers, and the rate-limit answer
//! once the budget is spent.

use super::Reply;
use crate::world::{RateWindow, World};
use axum::http::StatusCode;
use makesync::clock::Clock;
use std::time::Duration;

/// Counts the request against the organization's per-minute budget (`license.apiLimit`,
/// notes "Rate limits"), adds the `X-RateLimit-*` headers (notes: inferred from an
/// open-source connector), and answers the rate-limit status with `Retry-After` once the
/// budget is spent.
pub(super) fn budgeted(
    world: &mut World,
    clock: &dyn Clock,
    org_id: u64,
    serve: impl FnOnce(&mut World) -> Reply,
) -> Reply {
    let limit = world
        .organizations
        .get(&org_id)
        .and_then(|o| o.api_limit)
        .unwrap_or(60);
    let now = clock.monotonic();
    let window = world.windows.entry(org_id).or_insert(RateWindow {
        started: now,
        used: 0,
    });
    if now.saturating_sub(window.started) >= Duration::from_secs(60) {
        *window = RateWindow {
            started: now,
            used: 0,
        };
    }
    window.used += 1;
    let used = window.used;
    let resets_in = Duration::from_secs(60).saturating_sub(now.saturating_sub(window.started));
    let reset_epoch =
        (clock.wall() + chrono::Duration::from_std(resets_in).unwrap_or_default()).timestamp();
    let mut reply = if world.faults.enforce_budget && used > limit {
        rate_limited(world, resets_in.as_secs().max(1))
    } else {
        serve(world)
    };
    reply.headers.push(("x-ratelimit-limit", limit.to_string()));
    reply.headers.push((
        "x-ratelimit-remaining",
        limit.saturating_sub(used).to_string(),
    ));
    reply
        .headers
        .push(("x-ratelimit-reset", reset_epoch.to_string()));
    reply
}

pub(super) fn rate_limited(world: &World, retry_after: impl ToString) -> Reply {
    let status = StatusCode::from_u16(world.faults.rate_limit_status)
        .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut reply = Reply::error(
        status,
        "Requests limit for organization exceeded",
        "",
        "SC429",
    );
    reply.headers.push(("retry-after", retry_after.to_string()));
    reply
}
