//! Comparing Make's snapshot with what is stored: the pure heart of a sync.
//!
//! The plan is made from each stored user's digest ([`StoredUser`]), not from the records, and
//! names what to write by position in the snapshot: a sync holds one compact record per member
//! and nothing per unchanged user. The records are made only when they are written
//! ([`resolve`]), a chunk at a time, from the snapshot and — for users that were stored before
//! — the stored record.

use super::snapshot::SnapshotMember;
use crate::run::RunCounts;
use crate::user::{MakeUserId, StoredUser, UserRecord, UserStatus};
use chrono::{DateTime, Utc};

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

/// One user record written, with what was stored before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub kind: ChangeKind,
    pub before: Option<UserRecord>,
    pub after: UserRecord,
}

/// One user to write, or to compare first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedWrite {
    /// The snapshot's member at `index`: `Added` (not stored), `Restored` (stored as removed)
    /// or `Updated` (its digest differs).
    Member { index: usize, kind: ChangeKind },
    /// The member at `index` is stored without a digest (written by an earlier makesync):
    /// the records are compared when the stored one is read.
    Compare { index: usize },
    /// Stored, not removed, and missing from the complete snapshot.
    Remove { user_id: MakeUserId },
    /// Stored as removed without an expiry: written again as it is, so that the store gives it
    /// one. Not a change: not counted, not reported, not announced.
    Expire { user_id: MakeUserId },
}

impl PlannedWrite {
    pub fn user_id(&self, snapshot: &[SnapshotMember]) -> MakeUserId {
        match *self {
            PlannedWrite::Member { index, .. } | PlannedWrite::Compare { index } => {
                snapshot[index].user_id
            }
            PlannedWrite::Remove { user_id } | PlannedWrite::Expire { user_id } => user_id,
        }
    }

    /// Whether writing it needs the stored record (to keep `first_seen`, to show the change).
    pub fn needs_stored(&self) -> bool {
        !matches!(
            self,
            PlannedWrite::Member {
                kind: ChangeKind::Added,
                ..
            }
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Only users that are new, changed, removed — or to compare; unchanged users are not
    /// written.
    pub writes: Vec<PlannedWrite>,
    /// `fetched` and every decided write; a [`PlannedWrite::Compare`] is counted when it is
    /// resolved.
    pub counts: RunCounts,
}

/// What a run does with the team roles stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredTeams {
    /// The snapshot's replace them: team access was read, or is known unreadable (the token
    /// lacks `teams:read`: the roles stored are no longer known).
    Replace,
    /// Team access was not read this run for a passing reason: each member keeps the team
    /// roles stored, and a change of the rest of the member is written with them.
    Keep,
}

/// What to write so that the store matches a *complete* snapshot; with `expire_removed`,
/// also the removed users stored without an expiry. Writes come in snapshot order, then the
/// removals in stored order.
pub fn plan_changes(
    stored: &[StoredUser],
    snapshot: &[SnapshotMember],
    expire_removed: bool,
    teams: StoredTeams,
) -> SyncPlan {
    let joined = join_by_id(stored, snapshot);
    let mut plan = SyncPlan::default();
    for (index, member) in snapshot.iter().enumerate() {
        plan.counts.fetched += 1;
        let write = match joined.stored_of[index].map(|at| &stored[at]) {
            None => PlannedWrite::Member {
                index,
                kind: ChangeKind::Added,
            },
            Some(stored) if stored.removed => PlannedWrite::Member {
                index,
                kind: ChangeKind::Restored,
            },
            Some(StoredUser { digest: None, .. }) => PlannedWrite::Compare { index },
            Some(StoredUser {
                digest: Some(digest),
                teams_digest,
                ..
            }) if !unchanged(member, *digest, *teams_digest, teams) => PlannedWrite::Member {
                index,
                kind: ChangeKind::Updated,
            },
            Some(_) => {
                plan.counts.unchanged += 1;
                continue;
            }
        };
        match write {
            PlannedWrite::Member {
                kind: ChangeKind::Added | ChangeKind::Restored,
                ..
            } => plan.counts.added += 1,
            PlannedWrite::Member { .. } => plan.counts.updated += 1,
            _ => {}
        }
        plan.writes.push(write);
    }
    for (user, present) in stored.iter().zip(&joined.present) {
        if *present {
            continue;
        }
        if user.removed {
            if expire_removed && user.lacks_expiry {
                plan.writes.push(PlannedWrite::Expire {
                    user_id: user.user_id,
                });
            }
            continue;
        }
        plan.counts.removed += 1;
        plan.writes.push(PlannedWrite::Remove {
            user_id: user.user_id,
        });
    }
    plan
}

/// The stored users and the snapshot's members matched by id.
struct Joined {
    /// By snapshot position: the position of the stored user with the member's id (the last,
    /// should the store list an id twice).
    stored_of: Vec<Option<usize>>,
    /// By stored position: whether the snapshot has the user's id.
    present: Vec<bool>,
}

/// Matches both lists by merging them in id order: no map of every user beside them. Both
/// usually come sorted by id (the snapshot always does), and are then walked as they are;
/// a list that does not is walked through its positions sorted by id.
fn join_by_id(stored: &[StoredUser], snapshot: &[SnapshotMember]) -> Joined {
    let stored_order = positions_by_id(stored, |user| user.user_id);
    let snapshot_order = positions_by_id(snapshot, |member| member.user_id);
    let mut joined = Joined {
        stored_of: vec![None; snapshot.len()],
        present: vec![false; stored.len()],
    };
    let mut next = 0;
    for &index in &snapshot_order {
        let id = snapshot[index].user_id;
        while next < stored_order.len() && stored[stored_order[next]].user_id < id {
            next += 1;
        }
        // Every stored user with this id (one, unless the store lists it twice); `next` stays
        // on the first, for a snapshot that has the id twice.
        let mut same = next;
        while same < stored_order.len() && stored[stored_order[same]].user_id == id {
            joined.present[stored_order[same]] = true;
            joined.stored_of[index] = Some(stored_order[same]);
            same += 1;
        }
    }
    joined
}

/// The positions of `items` in ascending order of `id` (equal ids in the order they come).
fn positions_by_id<T>(items: &[T], id: impl Fn(&T) -> MakeUserId) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..items.len()).collect();
    if !items.windows(2).all(|pair| id(&pair[0]) <= id(&pair[1])) {
        positions.sort_by_key(|&at| id(&items[at]));
    }
    positions
}

/// The record a planned write writes, made at `now` from the snapshot and the stored record
/// (`None` when the user is not stored). `None` when there is nothing to write after all: a
/// compared record that does not differ, or a removal of a user no longer stored.
/// Whether `member` is the user stored with `digest` (and `teams_digest`): with
/// [`StoredTeams::Keep`], the member is compared as holding the team roles stored.
fn unchanged(
    member: &SnapshotMember,
    digest: u64,
    teams_digest: Option<u64>,
    teams: StoredTeams,
) -> bool {
    member.digest() == digest
        || (teams == StoredTeams::Keep && member.digest_with_teams(teams_digest) == digest)
}

/// [`resolve`] for a run that keeps the team roles stored ([`StoredTeams::Keep`]): the
/// record written holds the stored team roles, and a member whose only difference was their
/// team roles is no change. A member restored (stored as removed) keeps none: the team
/// roles of a membership that ended are not theirs now, and are not read yet.
pub fn resolve_keeping_teams(
    write: PlannedWrite,
    snapshot: &[SnapshotMember],
    stored: Option<&UserRecord>,
    now: DateTime<Utc>,
) -> Option<UserChange> {
    let mut change = resolve(write, snapshot, stored, now)?;
    let (PlannedWrite::Member { .. } | PlannedWrite::Compare { .. }, Some(before)) =
        (write, stored)
    else {
        return Some(change);
    };
    if before.status == UserStatus::Removed {
        return Some(change);
    }
    change.after.teams = before.teams.clone();
    change.after.differs_from(before).then_some(change)
}

pub fn resolve(
    write: PlannedWrite,
    snapshot: &[SnapshotMember],
    stored: Option<&UserRecord>,
    now: DateTime<Utc>,
) -> Option<UserChange> {
    match write {
        PlannedWrite::Member { index, kind } => {
            let member = &snapshot[index];
            let kind = match (kind, stored) {
                (_, None) => ChangeKind::Added,
                (ChangeKind::Added, Some(before)) if before.status == UserStatus::Removed => {
                    ChangeKind::Restored
                }
                (ChangeKind::Added, Some(_)) => ChangeKind::Updated,
                (kind, Some(_)) => kind,
            };
            Some(UserChange {
                kind,
                before: stored.cloned(),
                after: member.to_record(stored.map_or(now, |b| b.first_seen)),
            })
        }
        PlannedWrite::Compare { index } => {
            let member = &snapshot[index];
            let Some(before) = stored else {
                return resolve(
                    PlannedWrite::Member {
                        index,
                        kind: ChangeKind::Added,
                    },
                    snapshot,
                    None,
                    now,
                );
            };
            let after = member.to_record(before.first_seen);
            after.differs_from(before).then(|| UserChange {
                kind: ChangeKind::Updated,
                before: Some(before.clone()),
                after,
            })
        }
        PlannedWrite::Expire { .. } => None,
        PlannedWrite::Remove { .. } => {
            let before = stored?;
            let mut after = before.clone();
            after.status = UserStatus::Removed;
            after.removed_at = Some(now);
            Some(UserChange {
                kind: ChangeKind::Removed,
                before: Some(before.clone()),
                after,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::snapshot::{MemberTeam, RoleLabel};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn member(id: u64, role_id: u32) -> SnapshotMember {
        SnapshotMember {
            user_id: id,
            name: format!("User {id}").into(),
            email: format!("u{id}@example.com").into(),
            role_id,
            role: RoleLabel::named("Member"),
            status: UserStatus::Active,
            last_login: None,
            teams: None,
            team_counts: None,
        }
    }

    /// Plans, resolves and applies a sync to `store` (a map of records) at `now`.
    fn sync(
        store: &mut HashMap<MakeUserId, UserRecord>,
        snapshot: &[SnapshotMember],
        now: DateTime<Utc>,
    ) -> (SyncPlan, Vec<UserChange>) {
        let digests: Vec<StoredUser> = store
            .values()
            .map(|u| StoredUser {
                user_id: u.user_id,
                digest: Some(u.digest()),
                teams_digest: u.teams_digest(),
                removed: u.status == UserStatus::Removed,
                lacks_expiry: false,
            })
            .collect();
        let plan = plan_changes(&digests, snapshot, false, StoredTeams::Replace);
        let changes: Vec<UserChange> = plan
            .writes
            .iter()
            .filter_map(|w| resolve(*w, snapshot, store.get(&w.user_id(snapshot)), now))
            .collect();
        for change in &changes {
            store.insert(change.after.user_id, change.after.clone());
        }
        (plan, changes)
    }

    #[test]
    fn first_sync_adds_everyone() {
        let now = at("2026-01-01T00:00:00Z");
        let mut store = HashMap::new();
        let (plan, changes) = sync(&mut store, &[member(1, 13), member(2, 11)], now);
        assert_eq!(plan.counts.fetched, 2);
        assert_eq!(plan.counts.added, 2);
        assert!(changes.iter().all(|c| c.after.first_seen == now));
    }

    #[test]
    fn an_identical_snapshot_writes_nothing() {
        let mut store = HashMap::new();
        sync(&mut store, &[member(1, 13)], at("2026-01-01T00:00:00Z"));
        let (plan, changes) = sync(&mut store, &[member(1, 13)], at("2026-01-02T00:00:00Z"));
        assert!(plan.writes.is_empty() && changes.is_empty());
        assert_eq!(plan.counts.unchanged, 1);
    }

    #[test]
    fn role_change_updates_and_keeps_first_seen() {
        let mut store = HashMap::new();
        sync(&mut store, &[member(1, 13)], at("2026-01-01T00:00:00Z"));
        let mut promoted = member(1, 12);
        promoted.role = RoleLabel::named("Admin");
        let (plan, changes) = sync(&mut store, &[promoted], at("2026-01-02T00:00:00Z"));
        assert_eq!(plan.counts.updated, 1);
        assert_eq!(changes[0].kind, ChangeKind::Updated);
        assert_eq!(changes[0].after.role_id, 12);
        assert_eq!(changes[0].after.first_seen, at("2026-01-01T00:00:00Z"));
        assert_eq!(changes[0].before.as_ref().unwrap().role_id, 13);
    }

    #[test]
    fn a_missing_member_is_removed_once_and_restored_when_back() {
        let mut store = HashMap::new();
        sync(
            &mut store,
            &[member(1, 13), member(2, 13)],
            at("2026-01-01T00:00:00Z"),
        );
        let removed_at = at("2026-01-02T00:00:00Z");
        let (plan, changes) = sync(&mut store, &[member(1, 13)], removed_at);
        assert_eq!(plan.counts.removed, 1);
        let tombstone = &changes[0].after;
        assert_eq!(tombstone.status, UserStatus::Removed);
        assert_eq!(tombstone.removed_at, Some(removed_at));

        let (plan, _) = sync(&mut store, &[member(1, 13)], at("2026-01-03T00:00:00Z"));
        assert!(plan.writes.is_empty(), "a tombstone is not removed again");

        let (plan, changes) = sync(
            &mut store,
            &[member(1, 13), member(2, 13)],
            at("2026-01-04T00:00:00Z"),
        );
        assert_eq!(plan.counts.added, 1);
        assert_eq!(changes[0].kind, ChangeKind::Restored);
        assert_eq!(changes[0].after.removed_at, None);
        assert_eq!(changes[0].after.status, UserStatus::Active);
        assert_eq!(changes[0].after.first_seen, at("2026-01-01T00:00:00Z"));
    }

    fn arbitrary_member() -> impl Strategy<Value = SnapshotMember> {
        (
            1u64..40,
            prop::sample::select(vec!["Ada", "Zoë", "李雷", ""]),
            prop::sample::select(vec![
                (11u32, "Owner"),
                (12, "Admin"),
                (13, "Member"),
                (17, "unknown"),
            ]),
            prop::sample::select(vec![
                UserStatus::Active,
                UserStatus::Invited,
                UserStatus::InvitationExpired,
            ]),
            prop::option::of(0i64..3),
        )
            .prop_map(
                |(id, name, (role_id, role_name), status, login)| SnapshotMember {
                    user_id: id,
                    name: name.into(),
                    email: format!("u{id}@example.com").into(),
                    role_id,
                    role: RoleLabel::named(role_name),
                    status,
                    last_login: login
                        .map(|days| at("2026-01-01T00:00:00Z") + chrono::Duration::days(days)),
                    // Team access not read, read and empty, or one team whose role moves
                    // with the organization role.
                    teams: match id % 3 {
                        0 => None,
                        1 => Some(Box::new([])),
                        _ => Some(Box::new([MemberTeam {
                            team_id: 7,
                            team_name: "Finance".into(),
                            role_id: role_id % 2 + 1,
                            role: RoleLabel::named(role_name),
                        }])),
                    },
                    team_counts: None,
                },
            )
    }

    fn snapshot() -> impl Strategy<Value = Vec<SnapshotMember>> {
        prop::collection::vec(arbitrary_member(), 0..30).prop_map(|mut members| {
            members.sort_by_key(|m| m.user_id);
            members.dedup_by_key(|m| m.user_id);
            members
        })
    }

    /// The plan as a lookup of every stored user by id makes it (the last of an id listed
    /// twice): what the merge join must match, in any order.
    fn plan_by_lookup(stored: &[StoredUser], snapshot: &[SnapshotMember]) -> Vec<PlannedWrite> {
        let by_id: HashMap<u64, &StoredUser> = stored.iter().map(|u| (u.user_id, u)).collect();
        let present: std::collections::HashSet<u64> = snapshot.iter().map(|m| m.user_id).collect();
        let mut writes = Vec::new();
        for (index, member) in snapshot.iter().enumerate() {
            writes.push(match by_id.get(&member.user_id) {
                None => PlannedWrite::Member {
                    index,
                    kind: ChangeKind::Added,
                },
                Some(u) if u.removed => PlannedWrite::Member {
                    index,
                    kind: ChangeKind::Restored,
                },
                Some(StoredUser { digest: None, .. }) => PlannedWrite::Compare { index },
                Some(u) if u.digest != Some(member.digest()) => PlannedWrite::Member {
                    index,
                    kind: ChangeKind::Updated,
                },
                Some(_) => continue,
            });
        }
        for user in stored.iter().filter(|u| !present.contains(&u.user_id)) {
            if user.removed {
                if user.lacks_expiry {
                    writes.push(PlannedWrite::Expire {
                        user_id: user.user_id,
                    });
                }
            } else {
                writes.push(PlannedWrite::Remove {
                    user_id: user.user_id,
                });
            }
        }
        writes
    }

    fn stored_user(member: SnapshotMember, kind: u8) -> StoredUser {
        StoredUser {
            user_id: member.user_id,
            digest: match kind % 3 {
                0 => None,
                1 => Some(member.digest()),
                _ => Some(member.digest() ^ 1),
            },
            teams_digest: None,
            removed: kind % 4 == 3,
            lacks_expiry: kind % 5 == 4,
        }
    }

    proptest! {
        /// Joined by merging, in whatever order either list comes and with ids listed twice,
        /// the plan writes what a lookup by id would, in the same order.
        #[test]
        fn the_merge_join_plans_what_a_lookup_by_id_plans(
            snapshot in prop::collection::vec(arbitrary_member(), 0..30),
            stored in prop::collection::vec((arbitrary_member(), any::<u8>()), 0..30),
        ) {
            let stored: Vec<StoredUser> =
                stored.into_iter().map(|(m, kind)| stored_user(m, kind)).collect();
            let plan = plan_changes(&stored, &snapshot, true, StoredTeams::Replace);
            prop_assert_eq!(plan.writes, plan_by_lookup(&stored, &snapshot));
        }
    }

    proptest! {
        /// Planning, writing, and planning again with the same snapshot writes nothing more,
        /// whatever was stored before.
        #[test]
        fn a_plan_applied_and_planned_again_changes_nothing(
            before in snapshot(),
            after in snapshot(),
        ) {
            let mut store = HashMap::new();
            sync(&mut store, &before, at("2026-01-01T00:00:00Z"));
            let (first, _) = sync(&mut store, &after, at("2026-01-02T00:00:00Z"));
            prop_assert_eq!(first.counts.fetched as usize, after.len());
            let (second, changes) = sync(&mut store, &after, at("2026-01-03T00:00:00Z"));
            prop_assert!(second.writes.is_empty(), "{:?}", second.writes);
            prop_assert!(changes.is_empty());
            prop_assert_eq!(second.counts.unchanged as usize, after.len());
            let present: Vec<u64> = store
                .values()
                .filter(|u| u.status != UserStatus::Removed)
                .map(|u| u.user_id)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let expected: Vec<u64> = after.iter().map(|m| m.user_id).collect();
            prop_assert_eq!(present, expected);
        }
    }

    /// A removed user stored without an expiry is written again (so that the store gives it
    /// one) when removed users expire, and only then; it is not counted as a change.
    #[test]
    fn a_removed_user_without_an_expiry_is_written_again_once_they_expire() {
        let tombstone = StoredUser {
            user_id: 2,
            digest: Some(1),
            teams_digest: None,
            removed: true,
            lacks_expiry: true,
        };
        let present = [member(1, 13)];
        let expiring = plan_changes(&[tombstone], &present, true, StoredTeams::Replace);
        assert_eq!(
            expiring.writes,
            vec![
                PlannedWrite::Member {
                    index: 0,
                    kind: ChangeKind::Added
                },
                PlannedWrite::Expire { user_id: 2 }
            ]
        );
        assert_eq!(expiring.counts.removed, 0);
        assert_eq!(expiring.counts.added, 1);
        let kept = plan_changes(&[tombstone], &present, false, StoredTeams::Replace);
        assert!(!kept.writes.contains(&PlannedWrite::Expire { user_id: 2 }));
        let with_expiry = StoredUser {
            lacks_expiry: false,
            ..tombstone
        };
        let again = plan_changes(&[with_expiry], &present, true, StoredTeams::Replace);
        assert!(!again.writes.contains(&PlannedWrite::Expire { user_id: 2 }));
    }

    /// A run that could not read team access for a passing reason keeps each member's team
    /// roles: a member unchanged but for them is no write, and one whose role changed is
    /// written with the team roles stored. A run that replaces them writes both.
    #[test]
    fn a_run_that_keeps_the_stored_teams_writes_only_what_else_changed() {
        let now = at("2026-01-01T00:00:00Z");
        let finance = MemberTeam {
            team_id: 7,
            team_name: "Finance".into(),
            role_id: 1,
            role: RoleLabel::named("Team Admin"),
        };
        let in_finance = |id, role_id| SnapshotMember {
            teams: Some(Box::new([finance.clone()])),
            ..member(id, role_id)
        };
        let records = [
            in_finance(1, 13).to_record(now),
            in_finance(2, 13).to_record(now),
        ];
        let digests: Vec<StoredUser> = records
            .iter()
            .map(|u| StoredUser {
                user_id: u.user_id,
                digest: Some(u.digest()),
                teams_digest: u.teams_digest(),
                removed: false,
                lacks_expiry: false,
            })
            .collect();
        // Team access not read: user 1 as stored, user 2 now an Admin.
        let snapshot = [member(1, 13), member(2, 12)];

        let kept = plan_changes(&digests, &snapshot, false, StoredTeams::Keep);
        assert_eq!((kept.counts.unchanged, kept.counts.updated), (1, 1));
        let written: Vec<UserChange> = kept
            .writes
            .iter()
            .filter_map(|w| resolve_keeping_teams(*w, &snapshot, Some(&records[1]), now))
            .collect();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].after.role_id, 12);
        assert_eq!(
            written[0].after.teams, records[1].teams,
            "the team roles stay"
        );

        let replaced = plan_changes(&digests, &snapshot, false, StoredTeams::Replace);
        assert_eq!(
            replaced.counts.updated, 2,
            "team roles no longer known: both written"
        );
    }

    #[test]
    fn a_record_stored_without_a_digest_is_compared_not_rewritten() {
        let now = at("2026-01-01T00:00:00Z");
        let stored = member(1, 13).to_record(now);
        let digests = [StoredUser {
            user_id: 1,
            digest: None,
            teams_digest: None,
            removed: false,
            lacks_expiry: false,
        }];
        let same = [member(1, 13)];
        let plan = plan_changes(&digests, &same, false, StoredTeams::Replace);
        assert_eq!(plan.writes, vec![PlannedWrite::Compare { index: 0 }]);
        assert_eq!(resolve(plan.writes[0], &same, Some(&stored), now), None);
        let changed = [member(1, 12)];
        let change = resolve(plan.writes[0], &changed, Some(&stored), now).unwrap();
        assert_eq!(change.kind, ChangeKind::Updated);
    }
}
