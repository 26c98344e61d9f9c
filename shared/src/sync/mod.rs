//! One sync of one connection: read Make's snapshot, compare it with the store, write what
//! changed, record the run.

mod engine;
mod error;
mod plan;
mod snapshot;

pub use engine::{SyncEngine, SyncReport};
pub use error::SyncError;
pub use plan::{plan_changes, ChangeKind, SyncPlan, UserChange};
pub use snapshot::{fetch_snapshot, OrganizationSnapshot, SnapshotMember};
