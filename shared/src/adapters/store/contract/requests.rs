//! The contract of the connect requests' answers ([`RequestLog`]): kept per tenant, the first
//! one stays until it expires.
//!
//! [`RequestLog`]: crate::ports::RequestLog

use super::{at, Store};
use crate::tenant::TenantId;
use chrono::Duration;

/// A request's answer is kept for its tenant only, the first one stays, and it is gone once
/// it expires.
pub(super) async fn check_request_answers(store: &dyn Store) {
    let (a, b) = (
        TenantId::parse("tenant-a#x").unwrap(),
        TenantId::parse("tenant-b").unwrap(),
    );
    let now = at("2026-12-01T00:00:00Z");
    let expires = now + Duration::hours(24);
    assert_eq!(store.answer_of(&a, "r-1", now).await.unwrap(), None);
    store
        .keep_answer(&a, "r-1", r#"{"n":1}"#, now, expires)
        .await
        .unwrap();
    store
        .keep_answer(&a, "r-1", r#"{"n":2}"#, now, expires)
        .await
        .unwrap();
    assert_eq!(
        store.answer_of(&a, "r-1", now).await.unwrap().as_deref(),
        Some(r#"{"n":1}"#),
        "the first answer stays"
    );
    assert_eq!(store.answer_of(&b, "r-1", now).await.unwrap(), None);
    // No other tenant and request meet on one key ("tenant-a#x" with "r-1" is not
    // "tenant-a" with "x#r-1" nor the reverse).
    let other = TenantId::parse("tenant-a").unwrap();
    assert_eq!(store.answer_of(&other, "r-1", now).await.unwrap(), None);
    assert_eq!(
        store
            .answer_of(&a, "r-1", expires + Duration::seconds(1))
            .await
            .unwrap(),
        None,
        "expired"
    );
    // Past its expiry, a new answer takes its place.
    let later = expires + Duration::seconds(1);
    store
        .keep_answer(&a, "r-1", r#"{"n":3}"#, later, later + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!(
        store.answer_of(&a, "r-1", later).await.unwrap().as_deref(),
        Some(r#"{"n":3}"#)
    );
}
