//! Failures injected before anything is served: the chaos suite's dice (an error, a broken or
//! slow body, a member leaving mid-read) and the failures a test switches on (a redirect, an
//! outage, 5xx bursts, rate limits).

use super::rate_limit::rate_limited;
use super::{Delivery, Reply, Request};
use crate::faults::Chaos;
use crate::world::World;
use axum::http::StatusCode;

/// A failure a test switched on, answered before anything else is looked at.
pub(super) fn injected_failure(
    world: &mut World,
    path: &str,
    request: &Request<'_>,
) -> Option<Reply> {
    if let Some((status, location)) = &world.faults.redirect {
        let mut reply = Reply::error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND),
            "Moved",
            "",
            "SC302",
        );
        reply.headers.push(("location", location.clone()));
        return Some(reply);
    }
    if organization_in_outage(world, path, request) {
        return Some(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "",
            "SC503",
        ));
    }
    if world.faults.server_errors > 0 {
        world.faults.server_errors -= 1;
        return Some(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "",
            "SC503",
        ));
    }
    if let Some(value) = world.faults.retry_after_values.pop_front() {
        return Some(rate_limited(world, value));
    }
    if world.faults.rate_limited > 0 {
        world.faults.rate_limited -= 1;
        return Some(rate_limited(world, world.faults.rate_limited_retry_after));
    }
    None
}

fn organization_in_outage(world: &World, path: &str, request: &Request<'_>) -> bool {
    let unavailable = &world.faults.unavailable_paths;
    if unavailable
        .iter()
        .any(|down| path.starts_with(down.as_str()))
    {
        return true;
    }
    let outage = &world.faults.unavailable_organizations;
    if outage.is_empty() {
        return false;
    }
    let in_path = path
        .strip_prefix("/organizations/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse::<u64>().ok());
    let in_query = request
        .param("organizationId")
        .and_then(|id| id.parse::<u64>().ok());
    [in_path, in_query]
        .into_iter()
        .flatten()
        .any(|id| outage.contains(&id))
}

pub(super) enum Injected {
    Reply(Reply),
    Delivery(Delivery),
}

/// A fault for this request, if the chaos switch is on and its dice say so.
pub(super) fn draw_chaos(world: &mut World, request: &Request<'_>) -> Option<Injected> {
    let chaos = world.faults.chaos.as_mut()?;
    if chaos.rng.f64() >= chaos.rate {
        return None;
    }
    let draw = chaos.rng.u8(0..8);
    if draw == 7 {
        member_leaves(world, request);
        return None;
    }
    let (kind, injected) = chaos_fault(draw, chaos);
    let chaos = world.faults.chaos.as_mut()?;
    *chaos.injected.entry(kind.into()).or_default() += 1;
    Some(injected)
}

/// The fault drawn (0 to 6): an error reply, or a delivery that fails.
fn chaos_fault(draw: u8, chaos: &mut Chaos) -> (&'static str, Injected) {
    match draw {
        0 => {
            let retry_after = [1, 5, 86_400][chaos.rng.usize(0..3)];
            let retry_after_text = retry_after.to_string();
            let mut reply = Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "Requests limit for organization exceeded",
                "",
                "SC429",
            );
            reply.headers.push(("retry-after", retry_after_text));
            ("429", Injected::Reply(reply))
        }
        1 => {
            let mut reply = Reply::error(
                StatusCode::IM_A_TEAPOT,
                "Requests limit for organization exceeded",
                "",
                "SC429",
            );
            reply.headers.push(("retry-after", "2".to_string()));
            ("418", Injected::Reply(reply))
        }
        2 => (
            "503",
            Injected::Reply(Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "",
                "SC503",
            )),
        ),
        3 => ("connection reset", Injected::Delivery(Delivery::Broken)),
        4 => ("slow body", Injected::Delivery(Delivery::Slow(chaos.slow))),
        5 => (
            "truncated JSON",
            Injected::Reply(Reply::text(
                StatusCode::OK,
                "{\"users\": [{\"id\": 1, \"name\": \"A".to_string(),
            )),
        ),
        _ => (
            "malformed JSON",
            Injected::Reply(Reply::text(
                StatusCode::OK,
                "<html>502 Bad Gateway</html>".to_string(),
            )),
        ),
    }
}

/// A member leaves while the organization's lists are being read.
fn member_leaves(world: &mut World, request: &Request<'_>) -> Option<()> {
    let organization = request
        .path
        .strip_prefix("/api/v2/organizations/")
        .and_then(|rest| rest.split('/').next())
        .or_else(|| request.param("organizationId"))
        .and_then(|id| id.parse::<u64>().ok())?;
    let candidates: Vec<u64> = world
        .organizations
        .get(&organization)?
        .members
        .keys()
        .copied()
        .filter(|id| *id != 1)
        .collect();
    let chaos = world.faults.chaos.as_mut()?;
    let leaving = *candidates.get(chaos.rng.usize(0..candidates.len().max(1)))?;
    *chaos.injected.entry("member leaves".into()).or_default() += 1;
    world.remove_member(organization, leaving);
    Some(())
}
