//! One sync of one connection: read Make's snapshot, compare it with the store, write what
//! changed, record the run.

mod engine;
mod error;
mod plan;
mod snapshot;
mod team_check;
mod teams;

pub use engine::{
    SyncEngine, SyncReport, SyncTimings, DEFAULT_REMOVED_USER_RETENTION_DAYS, REPORTED_CHANGES,
};
pub use error::SyncError;
pub use plan::{
    plan_changes, resolve, resolve_keeping_teams, ChangeKind, PlannedWrite, StoredTeams, SyncPlan,
    UserChange,
};
pub use snapshot::{
    fetch_snapshot, MemberTeam, OrganizationSnapshot, SnapshotMember, TeamCounts,
    MAX_MEMBER_TEAM_BYTES,
};
pub use teams::{
    lacks_scope_note, read_team_access, MemberGrants, TeamAccess, TeamGrant, MAX_TEAMS,
    MAX_TEAM_MEMBERSHIPS,
};
