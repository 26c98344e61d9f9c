//! Comparing Make's snapshot with what is stored: the pure heart of a sync.

use super::snapshot::SnapshotMember;
use crate::run::RunCounts;
use crate::user::{MakeUserId, UserRecord, UserStatus};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Seen for the first time.
    Added,
    /// Was removed, is back.
    Restored,
    /// Present before and now, something differs.
    Updated,
    /// Present before, missing from the complete snapshot now.
    Removed,
}

/// One user record to write, with what was stored before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub kind: ChangeKind,
    pub before: Option<UserRecord>,
    pub after: UserRecord,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Only users that are new or changed; unchanged users are not written.
    pub changes: Vec<UserChange>,
    pub counts: RunCounts,
}

impl SyncPlan {
    pub fn records_to_write(&self) -> Vec<UserRecord> {
        self.changes
            .iter()
            .map(|change| change.after.clone())
            .collect()
    }
}

/// What to write so that the store matches a *complete* snapshot taken at `now`.
pub fn plan_changes(
    stored: &[UserRecord],
    snapshot: &[SnapshotMember],
    now: DateTime<Utc>,
) -> SyncPlan {
    let stored_by_id: BTreeMap<MakeUserId, &UserRecord> =
        stored.iter().map(|user| (user.user_id, user)).collect();
    let mut plan = SyncPlan::default();
    let mut present = HashSet::with_capacity(snapshot.len());
    for member in snapshot {
        present.insert(member.user_id);
        plan.counts.fetched += 1;
        let before = stored_by_id.get(&member.user_id).copied();
        let after = UserRecord {
            user_id: member.user_id,
            name: member.name.clone(),
            email: member.email.clone(),
            role_id: member.role_id,
            role_name: member.role_name.clone(),
            status: member.status,
            invitation: member.invitation.clone(),
            last_login: member.last_login,
            first_seen: before.map_or(now, |b| b.first_seen),
            removed_at: None,
        };
        let kind = match before {
            None => ChangeKind::Added,
            Some(b) if b.status == UserStatus::Removed => ChangeKind::Restored,
            Some(b) if b.differs_from(&after) => ChangeKind::Updated,
            Some(_) => {
                plan.counts.unchanged += 1;
                continue;
            }
        };
        match kind {
            ChangeKind::Added | ChangeKind::Restored => plan.counts.added += 1,
            _ => plan.counts.updated += 1,
        }
        plan.changes.push(UserChange {
            kind,
            before: before.cloned(),
            after,
        });
    }
    for user in stored {
        if present.contains(&user.user_id) || user.status == UserStatus::Removed {
            continue;
        }
        let mut after = user.clone();
        after.status = UserStatus::Removed;
        after.removed_at = Some(now);
        plan.counts.removed += 1;
        plan.changes.push(UserChange {
            kind: ChangeKind::Removed,
            before: Some(user.clone()),
            after,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn member(id: u64, role_id: u32) -> SnapshotMember {
        SnapshotMember {
            user_id: id,
            name: format!("User {id}"),
            email: format!("u{id}@example.com"),
            role_id,
            role_name: "Member".into(),
            status: UserStatus::Active,
            invitation: None,
            last_login: None,
        }
    }

    fn stored(plan: &SyncPlan) -> Vec<UserRecord> {
        plan.records_to_write()
    }

    #[test]
    fn first_sync_adds_everyone() {
        let now = at("2026-01-01T00:00:00Z");
        let plan = plan_changes(&[], &[member(1, 13), member(2, 11)], now);
        assert_eq!(plan.counts.fetched, 2);
        assert_eq!(plan.counts.added, 2);
        assert!(plan.changes.iter().all(|c| c.after.first_seen == now));
    }

    #[test]
    fn an_identical_snapshot_writes_nothing() {
        let first = plan_changes(&[], &[member(1, 13)], at("2026-01-01T00:00:00Z"));
        let second = plan_changes(
            &stored(&first),
            &[member(1, 13)],
            at("2026-01-02T00:00:00Z"),
        );
        assert!(second.changes.is_empty());
        assert_eq!(second.counts.unchanged, 1);
    }

    #[test]
    fn role_change_updates_and_keeps_first_seen() {
        let first = plan_changes(&[], &[member(1, 13)], at("2026-01-01T00:00:00Z"));
        let mut promoted = member(1, 12);
        promoted.role_name = "Admin".into();
        let second = plan_changes(&stored(&first), &[promoted], at("2026-01-02T00:00:00Z"));
        assert_eq!(second.counts.updated, 1);
        assert_eq!(second.changes[0].kind, ChangeKind::Updated);
        assert_eq!(second.changes[0].after.role_id, 12);
        assert_eq!(
            second.changes[0].after.first_seen,
            at("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn a_missing_member_is_removed_once_and_restored_when_back() {
        let first = plan_changes(
            &[],
            &[member(1, 13), member(2, 13)],
            at("2026-01-01T00:00:00Z"),
        );
        let removed_at = at("2026-01-02T00:00:00Z");
        let second = plan_changes(&stored(&first), &[member(1, 13)], removed_at);
        assert_eq!(second.counts.removed, 1);
        let tombstone = &second.changes[0].after;
        assert_eq!(tombstone.status, UserStatus::Removed);
        assert_eq!(tombstone.removed_at, Some(removed_at));

        let mut now_stored = stored(&first);
        now_stored[1] = tombstone.clone();
        let third = plan_changes(&now_stored, &[member(1, 13)], at("2026-01-03T00:00:00Z"));
        assert!(third.changes.is_empty(), "a tombstone is not removed again");

        let fourth = plan_changes(
            &now_stored,
            &[member(1, 13), member(2, 13)],
            at("2026-01-04T00:00:00Z"),
        );
        assert_eq!(fourth.counts.added, 1);
        assert_eq!(fourth.changes[0].kind, ChangeKind::Restored);
        assert_eq!(fourth.changes[0].after.removed_at, None);
        assert_eq!(fourth.changes[0].after.status, UserStatus::Active);
    }
}
