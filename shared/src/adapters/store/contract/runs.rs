//! The contract of sync runs ([`SyncRunStore`]): kept and listed newest first.
//!
//! [`SyncRunStore`]: crate::ports::SyncRunStore

use super::{at, Store};
use crate::connection::Connection;
use crate::error::{ErrorKind, ErrorReport};
use crate::run::{RunCounts, SyncReason, SyncRun};

/// Runs are replaced by id and listed newest first.
pub(super) async fn check_runs(store: &dyn Store, first: &Connection) {
    let mut old = SyncRun::start(
        first.id.clone(),
        SyncReason::Scheduled,
        at("2026-01-01T00:00:00Z"),
    );
    store.put_run(&old).await.unwrap();
    old.succeed(
        RunCounts {
            fetched: 3,
            added: 3,
            ..RunCounts::default()
        },
        at("2026-01-01T00:00:01Z"),
    );
    old.make_requests = 4;
    store.put_run(&old).await.unwrap();
    let mut new = SyncRun::start(
        first.id.clone(),
        SyncReason::OnDemand,
        at("2026-01-02T00:00:00Z"),
    );
    new.fail(
        ErrorReport::new(ErrorKind::RateLimited, "429"),
        at("2026-01-02T00:00:09Z"),
    );
    store.put_run(&new).await.unwrap();
    assert_eq!(
        store.list_runs(&first.id, 10).await.unwrap(),
        vec![new.clone(), old]
    );
    assert_eq!(store.list_runs(&first.id, 1).await.unwrap(), vec![new]);
}
