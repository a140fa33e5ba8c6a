//! The safety verdict: a load's history of operations checked against etcd's guarantees, using
//! revisions as etcd's own robustness tests do.
//!
//! - **No lost writes**: every acknowledged put is in etcd's history at its revision (read back at
//!   that revision: the key's value there is the one written, with that mod revision).
//! - **Linearizable reads are not stale**: a linearizable read never returns a mod revision older
//!   than that of a put to the same key acknowledged before the read was sent.
//! - **Revisions are unique and follow real time**: two acknowledged puts never share a revision,
//!   and a put acknowledged before another was sent has the lower revision.
//!
//! Operations whose outcome is unknown (a timeout, a lost connection: the write may or may not
//! have been applied) are never required to be visible, and may explain what a read returned.
//!
//! **Other writers**: the prefix's changes during the load are replayed from etcd's history (a
//! watch from the load's first revision to its last, [`Change`]). A change that is none of the
//! load's own puts or deletes is a *foreign write*: counted, never a violation, and a read that
//! returned a key deleted meanwhile (by anyone) is not stale. When the history cannot be replayed
//! (compacted), `foreign_writes` is `null` and such a read still counts as stale.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// etcd answered with success.
    Ok,
    /// etcd answered with an error: the operation was not applied.
    Failed,
    /// No answer (timeout, connection lost): it may or may not have been applied.
    Unknown,
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A put of the value numbered `value`.
    Put {
        /// The value's number (values are unique per load).
        value: u64,
    },
    /// A read of one key: the value number and mod revision it returned (`None`: not found).
    Get {
        /// Whether it was linearizable (not serializable).
        linearizable: bool,
        /// What it read: value number and mod revision.
        read: Option<(u64, i64)>,
    },
    /// A delete of one key (its revision: the response's header revision).
    Delete,
}

/// One change of the load's key prefix, as etcd's history replays it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// The change's revision.
    pub revision: i64,
    /// A put's value number (`u64::MAX`: a value that is not one of a load's); `None`: a delete.
    pub put: Option<u64>,
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// The client (worker) that sent it.
    pub client: u32,
    /// The key.
    pub key: String,
    /// What it did.
    pub kind: Kind,
    /// The revision etcd returned (a put's new revision; a read's header revision).
    pub revision: Option<i64>,
    /// When it was sent and answered, ns since the load started.
    pub sent: u64,
    /// When it was answered (or given up on).
    pub done: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the checks found: counts per check and the first few violations, explained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SafetyRecord {
    /// Operations recorded.
    pub operations: u64,
    /// Acknowledged puts (each checked for loss).
    pub writes_acknowledged: u64,
    /// Puts with an unknown outcome (allowed either way).
    pub writes_unknown: u64,
    /// Linearizable reads checked for staleness.
    pub reads_checked: u64,
    /// Acknowledged puts not found in etcd's history at their revision.
    #[schemars(extend("x-better" = "lower"))]
    pub lost_writes: u64,
    /// Linearizable reads older than a put acknowledged before they were sent.
    #[schemars(extend("x-better" = "lower"))]
    pub stale_reads: u64,
    /// Pairs of acknowledged puts whose revisions contradict real time, or share a revision.
    #[schemars(extend("x-better" = "lower"))]
    pub revision_violations: u64,
    /// Acknowledged puts that could not be read back at their revision (compacted away).
    pub unverifiable: u64,
    /// Changes under the load's prefix during the load that were not the load's own (another
    /// client's puts and deletes): counted, not violations (`null`: the history could not be
    /// replayed, so they could not be told apart).
    pub foreign_writes: Option<u64>,
    /// Linearizable reads that found a key missing because it was deleted (by another client,
    /// or the load) after the put they had to see: correct, not stale.
    pub reads_after_deletes: u64,
    /// Whether every check passed (never with nothing checked).
    pub passed: bool,
    /// The first violations, each with the operations involved.
    pub violations: Vec<String>,
}

/// What etcd's history says a key held at a revision: the value number and its mod revision
/// (`None`: the key did not exist then); `Err` when that revision was compacted.
pub type AtRevision = HashMap<(String, i64), Result<Option<(u64, i64)>, ()>>;

/// The keys and revisions of acknowledged puts: what to read back before [`check`].
pub fn to_read_back(ops: &[Op]) -> Vec<(String, i64)> {
    ops.iter()
        .filter(|o| o.outcome == Outcome::Ok && matches!(o.kind, Kind::Put { .. }))
        .filter_map(|o| Some((o.key.clone(), o.revision?)))
        .collect()
}

fn describe(o: &Op) -> String {
    let what = match &o.kind {
        Kind::Put { value } => format!("put {}={value}", o.key),
        Kind::Delete => format!("delete {}", o.key),
        Kind::Get { read, .. } => match read {
            Some((v, m)) => format!("get {} -> {v} (mod revision {m})", o.key),
            None => format!("get {} -> not found", o.key),
        },
    };
    format!(
        "client {} {what} at revision {} [{:.3}s..{:.3}s]",
        o.client,
        o.revision.map_or("?".into(), |r| r.to_string()),
        o.sent as f64 / 1e9,
        o.done as f64 / 1e9
    )
}

/// The revision range to replay for [`check`]'s `changes`: from the lowest revision the load saw
/// to the highest (`None`: no operation returned one).
pub fn replay_range(ops: &[Op]) -> Option<(i64, i64)> {
    let revs = ops.iter().filter_map(|o| o.revision);
    Some((revs.clone().min()?, revs.max()?))
}

/// The changes none of the load's own operations explain: puts of values it never wrote, and
/// deletes at revisions none of its acknowledged deletes had (a key with a delete of unknown
/// outcome may be the load's own).
fn foreign<'a>(ops: &[Op], changes: &'a [Change]) -> Vec<&'a Change> {
    let values: std::collections::HashSet<u64> = ops
        .iter()
        .filter_map(|o| match o.kind {
            Kind::Put { value } if o.outcome != Outcome::Failed => Some(value),
            _ => None,
        })
        .collect();
    let deletes: std::collections::HashSet<(&str, i64)> = ops
        .iter()
        .filter(|o| o.kind == Kind::Delete && o.outcome == Outcome::Ok)
        .filter_map(|o| Some((o.key.as_str(), o.revision?)))
        .collect();
    let unknown_deletes: std::collections::HashSet<&str> = ops
        .iter()
        .filter(|o| o.kind == Kind::Delete && o.outcome == Outcome::Unknown)
        .map(|o| o.key.as_str())
        .collect();
    changes
        .iter()
        .filter(|c| match c.put {
            Some(v) => !values.contains(&v),
            None => {
                !deletes.contains(&(c.key.as_str(), c.revision))
                    && !unknown_deletes.contains(c.key.as_str())
            }
        })
        .collect()
}

/// Checks `ops` with what etcd's history held at each acknowledged put's revision, and the
/// prefix's `changes` during the load (`None`: could not be replayed).
pub fn check(ops: &[Op], at: &AtRevision, changes: Option<&[Change]>) -> SafetyRecord {
    let mut r = SafetyRecord {
        operations: ops.len() as u64,
        ..SafetyRecord::default()
    };
    let note = |r: &mut SafetyRecord, what: String| {
        if r.violations.len() < 5 {
            r.violations.push(what);
        }
    };
    let puts: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Put { .. }))
        .collect();
    let acked: Vec<&Op> = puts
        .iter()
        .copied()
        .filter(|o| o.outcome == Outcome::Ok && o.revision.is_some())
        .collect();
    r.writes_acknowledged = acked.len() as u64;
    r.writes_unknown = puts
        .iter()
        .filter(|o| o.outcome == Outcome::Unknown)
        .count() as u64;

    // No lost writes: each acknowledged put is in the history at its revision.
    for o in &acked {
        let (Kind::Put { value }, Some(rev)) = (&o.kind, o.revision) else {
            continue;
        };
        match at.get(&(o.key.clone(), rev)) {
            Some(Ok(Some((v, m)))) if v == value && *m == rev => {}
            Some(Err(())) | None => r.unverifiable += 1,
            Some(Ok(found)) => {
                r.lost_writes += 1;
                let saw = match found {
                    Some((v, m)) => format!("value {v} with mod revision {m}"),
                    None => "no key".into(),
                };
                note(
                    &mut r,
                    format!(
                        "lost write: {} — etcd holds {saw} at that revision",
                        describe(o)
                    ),
                );
            }
        }
    }

    // Revisions unique, and in real-time order: sweep puts by send time, against the highest
    // revision among puts answered before.
    let mut by_rev: BTreeMap<i64, &Op> = BTreeMap::new();
    for o in &acked {
        let rev = o.revision.expect("acked");
        if let Some(other) = by_rev.insert(rev, o) {
            r.revision_violations += 1;
            note(
                &mut r,
                format!(
                    "two acknowledged puts share revision {rev}: {} and {}",
                    describe(other),
                    describe(o)
                ),
            );
        }
    }
    let mut by_done: Vec<&Op> = acked.clone();
    by_done.sort_by_key(|o| o.done);
    let mut by_sent: Vec<&Op> = acked.clone();
    by_sent.sort_by_key(|o| o.sent);
    let (mut i, mut best): (usize, Option<&Op>) = (0, None);
    for b in &by_sent {
        while i < by_done.len() && by_done[i].done < b.sent {
            if best.is_none_or(|x| by_done[i].revision > x.revision) {
                best = Some(by_done[i]);
            }
            i += 1;
        }
        if let Some(a) = best {
            if a.revision >= b.revision {
                r.revision_violations += 1;
                note(
                    &mut r,
                    format!(
                        "revision went back in real time: {} was answered before {} was sent",
                        describe(a),
                        describe(b)
                    ),
                );
            }
        }
    }

    // Linearizable reads not stale: per key, the latest put acknowledged before the read was sent.
    let mut per_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for o in &acked {
        per_key.entry(o.key.as_str()).or_default().push(o);
    }
    for v in per_key.values_mut() {
        v.sort_by_key(|o| o.done);
    }
    for o in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let Kind::Get {
            linearizable: true,
            read,
        } = &o.kind
        else {
            continue;
        };
        r.reads_checked += 1;
        let Some(writes) = per_key.get(o.key.as_str()) else {
            continue;
        };
        let newest = writes
            .iter()
            .take_while(|w| w.done < o.sent)
            .filter_map(|w| w.revision)
            .max();
        let seen = read.map(|(_, m)| m);
        if let Some(must) = newest {
            // Not found because the key was deleted after that put, by the read's revision.
            let deleted_since = seen.is_none()
                && changes.is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.put.is_none()
                            && c.key == o.key
                            && c.revision > must
                            && o.revision.is_none_or(|r| c.revision <= r)
                    })
                });
            if deleted_since {
                r.reads_after_deletes += 1;
            } else if seen.is_none_or(|m| m < must) {
                r.stale_reads += 1;
                let w = writes
                    .iter()
                    .find(|w| w.revision == Some(must))
                    .expect("found");
                note(
                    &mut r,
                    format!(
                        "stale read: {} was sent after {} was acknowledged",
                        describe(o),
                        describe(w)
                    ),
                );
            }
        }
    }
    if let Some(cs) = changes {
        r.foreign_writes = Some(foreign(ops, cs).len() as u64);
    }
    // No data is never a pass: a history with nothing checked passes nothing.
    if r.writes_acknowledged == 0 && r.reads_checked == 0 {
        r.violations.push(
            "nothing to check: no put was acknowledged and no linearizable read succeeded".into(),
        );
    }
    r.passed = r.lost_writes == 0
        && r.stale_reads == 0
        && r.revision_violations == 0
        && (r.writes_acknowledged > 0 || r.reads_checked > 0);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(client: u32, key: &str, value: u64, rev: i64, sent: u64, done: u64) -> Op {
        Op {
            client,
            key: key.into(),
            kind: Kind::Put { value },
            revision: Some(rev),
            sent,
            done,
            outcome: Outcome::Ok,
        }
    }

    fn get(client: u32, key: &str, read: Option<(u64, i64)>, sent: u64, done: u64) -> Op {
        Op {
            client,
            key: key.into(),
            kind: Kind::Get {
                linearizable: true,
                read,
            },
            revision: None,
            sent,
            done,
            outcome: Outcome::Ok,
        }
    }

    /// What etcd held at each acknowledged put's revision, as a correct etcd would: the put itself.
    fn faithful(ops: &[Op]) -> AtRevision {
        ops.iter()
            .filter_map(|o| match (&o.kind, o.revision, o.outcome) {
                (Kind::Put { value }, Some(r), Outcome::Ok) => {
                    Some(((o.key.clone(), r), Ok(Some((*value, r)))))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_correct_history_with_concurrency_and_unknown_outcomes_passes() {
        let mut unknown = put(3, "a", 9, 0, 15, 40);
        unknown.outcome = Outcome::Unknown;
        unknown.revision = None;
        let ops = vec![
            // Concurrent puts (overlapping in time) may take either order.
            put(1, "a", 1, 11, 0, 10),
            put(2, "a", 2, 10, 1, 12),
            unknown,
            // A read sent after both answered sees the later revision (11).
            get(1, "a", Some((1, 11)), 13, 14),
            // A read concurrent with a put may see the old value.
            put(1, "b", 3, 12, 20, 30),
            get(2, "b", None, 21, 22),
            // A read may see a write whose outcome is unknown.
            get(2, "a", Some((9, 13)), 41, 42),
        ];
        let r = check(&ops, &faithful(&ops), None);
        assert!(r.passed, "{r:?}");
        assert_eq!(
            (r.writes_acknowledged, r.writes_unknown, r.reads_checked),
            (3, 1, 3)
        );
    }

    #[test]
    fn a_lost_write_is_found_with_what_etcd_holds_instead() {
        let ops = vec![put(1, "a", 1, 10, 0, 5), put(1, "a", 2, 11, 6, 9)];
        let mut at = faithful(&ops);
        at.insert(("a".into(), 11), Ok(Some((1, 10))));
        let r = check(&ops, &at, None);
        assert_eq!(r.lost_writes, 1);
        assert!(!r.passed);
        assert!(
            r.violations[0].starts_with("lost write: client 1 put a=2 at revision 11"),
            "{r:?}"
        );
    }

    #[test]
    fn a_stale_linearizable_read_is_found_and_a_serializable_one_is_not_checked() {
        let mut serializable = get(2, "a", Some((1, 10)), 20, 21);
        serializable.kind = Kind::Get {
            linearizable: false,
            read: Some((1, 10)),
        };
        let ops = vec![
            put(1, "a", 1, 10, 0, 5),
            put(1, "a", 2, 11, 6, 9),
            get(2, "a", Some((1, 10)), 10, 12),
            serializable,
            get(3, "a", None, 13, 14),
        ];
        let r = check(&ops, &faithful(&ops), None);
        assert_eq!(r.stale_reads, 2, "{r:?}");
        assert_eq!(r.reads_checked, 2);
        assert!(r.violations[0].starts_with("stale read: client 2 get a -> 1 (mod revision 10)"));
    }

    #[test]
    fn revisions_going_back_in_real_time_or_shared_are_found() {
        let ops = vec![put(1, "a", 1, 20, 0, 5), put(2, "b", 2, 15, 6, 9)];
        let r = check(&ops, &faithful(&ops), None);
        assert_eq!(r.revision_violations, 1, "{r:?}");
        assert!(r.violations[0].contains("revision went back in real time"));
        let ops = vec![put(1, "a", 1, 20, 0, 5), put(2, "b", 2, 20, 1, 9)];
        let r = check(&ops, &faithful(&ops), None);
        assert_eq!(r.revision_violations, 1);
        assert!(r.violations[0].contains("share revision 20"));
    }

    #[test]
    fn an_empty_history_does_not_pass() {
        let r = check(&[], &AtRevision::new(), None);
        assert!(!r.passed);
        assert!(r.violations[0].starts_with("nothing to check"));
    }

    #[test]
    fn a_compacted_revision_is_unverifiable_not_lost() {
        let ops = vec![put(1, "a", 1, 10, 0, 5)];
        let mut at = AtRevision::new();
        at.insert(("a".into(), 10), Err(()));
        let r = check(&ops, &at, None);
        assert_eq!((r.lost_writes, r.unverifiable), (0, 1));
        assert!(r.passed);
    }

    #[test]
    fn another_clients_delete_is_a_foreign_write_not_a_stale_read() {
        // The load puts a=1 at 10; someone else deletes a at 12; the load's read sent later
        // finds nothing, at header revision 13.
        let mut read = get(1, "a", None, 20, 21);
        read.revision = Some(13);
        let ops = vec![put(1, "a", 1, 10, 0, 5), read];
        let theirs = |rev, put| Change {
            key: "a".into(),
            revision: rev,
            put,
        };
        let without = check(&ops, &faithful(&ops), None);
        assert_eq!(
            without.stale_reads, 1,
            "unseen, the delete looks like staleness"
        );
        assert_eq!(without.foreign_writes, None);
        let changes = vec![theirs(10, Some(1)), theirs(12, None)];
        let r = check(&ops, &faithful(&ops), Some(&changes));
        assert!(r.passed, "{r:?}");
        assert_eq!((r.stale_reads, r.reads_after_deletes), (0, 1));
        assert_eq!(
            r.foreign_writes,
            Some(1),
            "the delete is theirs, the put ours"
        );
        // A delete after the read's revision explains nothing: still stale.
        let late = vec![theirs(10, Some(1)), theirs(14, None)];
        let r = check(&ops, &faithful(&ops), Some(&late));
        assert_eq!(r.stale_reads, 1, "{r:?}");
        // Another client's put (a value no load wrote) is foreign too; the load's own acknowledged
        // delete is not.
        let mut del = put(2, "a", 0, 12, 6, 8);
        del.kind = Kind::Delete;
        let mut ops2 = ops.clone();
        ops2.push(del);
        let changes = vec![
            theirs(10, Some(1)),
            theirs(12, None),
            theirs(15, Some(u64::MAX)),
        ];
        let r = check(&ops2, &faithful(&ops2), Some(&changes));
        assert_eq!(r.foreign_writes, Some(1), "{r:?}");
        assert_eq!(r.reads_after_deletes, 1);
    }
}
