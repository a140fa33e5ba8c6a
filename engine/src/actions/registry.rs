//! The one list of actions a script can call, each with the Rust type of the record it returns:
//! what types a step's record wherever the script takes it (a `fn` around the call, a map of
//! several records, `result(...)` of an earlier step), and what reads a saved report's records.

use std::sync::LazyLock;

use serde_json::Value;

use super::{capacity, cluster, etcd, fault, maintenance, metrics, network, promql, stress};

/// A record type an action returns. Implemented by each record once, in [`records!`]; the
/// bindings' one conversion (`script::bridge::action`) reads it, so a binding cannot return a
/// record of another type than the list says.
pub trait ActionRecord: serde::Serialize {
    /// Which record this is.
    const TYPE: RecordType;
}

macro_rules! records {
    ($($(#[$doc:meta])* $variant:ident($ty:ty) = [$($action:literal),+ $(,)?]),+ $(,)?) => {
        /// The record types of the actions, one per Rust record type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RecordType {
            $($(#[$doc])* $variant),+
        }

        impl RecordType {
            /// Every record type, in declaration order.
            pub const ALL: &'static [RecordType] = &[$(RecordType::$variant),+];

            /// The record's JSON Schema, made from its Rust type (`x-unit`, `x-kind` on figures).
            fn make_schema(self) -> Value {
                match self {
                    $(RecordType::$variant => serde_json::to_value(schemars::schema_for!($ty))
                        .unwrap_or_default()),+
                }
            }
        }

        $(impl ActionRecord for $ty {
            const TYPE: RecordType = RecordType::$variant;
        })+

        /// Every action with the record type it returns (`"etcd::stress"`).
        pub const ACTIONS: &[(&str, RecordType)] = &[$($(($action, RecordType::$variant)),+),+];
    };
}

records! {
    /// `etcd::put`.
    Put(etcd::PutRecord) = ["etcd::put"],
    /// `etcd::get`.
    Get(etcd::GetRecord) = ["etcd::get"],
    /// `etcd::range`.
    Range(etcd::RangeRecord) = ["etcd::range"],
    /// `etcd::delete`.
    Delete(etcd::DeleteRecord) = ["etcd::delete"],
    /// `etcd::put_many`.
    PutMany(etcd::PutManyRecord) = ["etcd::put_many"],
    /// `etcd::status`.
    Status(etcd::StatusRecord) = ["etcd::status"],
    /// `etcd::health`.
    Health(etcd::HealthRecord) = ["etcd::health"],
    /// `etcd::alarms`.
    Alarms(etcd::AlarmsRecord) = ["etcd::alarms"],
    /// `etcd::stress`.
    Stress(stress::StressRecord) = ["etcd::stress"],
    /// `etcd::capacity`.
    Capacity(capacity::CapacityRecord) = ["etcd::capacity"],
    /// `etcd::compact`.
    Compact(maintenance::CompactRecord) = ["etcd::compact"],
    /// `etcd::defrag`.
    Defrag(maintenance::DefragRecord) = ["etcd::defrag"],
    /// `etcd::disarm`.
    Disarm(maintenance::DisarmRecord) = ["etcd::disarm"],
    /// `etcd::snapshot`.
    Snapshot(maintenance::SnapshotRecord) = ["etcd::snapshot"],
    /// `etcd::restore`.
    Restore(maintenance::RestoreRecord) = ["etcd::restore"],
    /// `metrics::scrape`.
    Scrape(metrics::ScrapeRecord) = ["metrics::scrape"],
    /// `metrics::query`.
    Query(promql::QueryRecord) = ["metrics::query"],
    /// `cluster::simulate`.
    Simulate(cluster::SimulateRecord) = ["cluster::simulate"],
    /// `cluster::inventory`.
    Inventory(cluster::InventoryRecord) = ["cluster::inventory"],
    /// `cluster::cleanup`.
    Cleanup(cluster::CleanupRecord) = ["cluster::cleanup"],
    /// `cluster::heartbeat`.
    Heartbeat(cluster::HeartbeatRecord) = ["cluster::heartbeat"],
    /// `cluster::lifecycle`.
    Lifecycle(cluster::LifecycleRecord) = ["cluster::lifecycle"],
    /// A member fault: kill, restart, pause, resume, slow_disk.
    Fault(fault::FaultRecord) = [
        "fault::kill", "fault::restart", "fault::pause", "fault::resume", "fault::slow_disk",
    ],
    /// `fault::members`.
    Members(fault::MembersRecord) = ["fault::members"],
    /// A network fault: partition, heal, link.
    Network(network::NetworkRecord) = ["fault::partition", "fault::heal", "fault::link"],
}

/// The schemas, made once.
static SCHEMAS: LazyLock<Vec<Value>> =
    LazyLock::new(|| RecordType::ALL.iter().map(|t| t.make_schema()).collect());

impl RecordType {
    /// The record's JSON Schema: each figure's unit and kind.
    pub fn schema(self) -> &'static Value {
        &SCHEMAS[self as usize]
    }

    /// The record type of an action (`"etcd::stress"`), `None` for a name not in [`ACTIONS`].
    pub fn of_action(action: &str) -> Option<RecordType> {
        ACTIONS.iter().find(|(a, _)| *a == action).map(|(_, t)| *t)
    }
}

/// The tag an action's record carries in the script (its place in [`ACTIONS`], from 1; 0 is
/// Rhai's "no tag"), `None` for a name not in the list.
pub fn tag_of(action: &str) -> Option<i32> {
    ACTIONS
        .iter()
        .position(|(a, _)| *a == action)
        .map(|i| i as i32 + 1)
}

/// The action a record's tag names, `None` for 0 or an unknown tag.
pub fn action_of_tag(tag: i32) -> Option<&'static str> {
    let i = usize::try_from(tag).ok()?.checked_sub(1)?;
    ACTIONS.get(i).map(|(a, _)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_every_type_has_an_action_and_a_schema() {
        for (action, ty) in ACTIONS {
            let tag = tag_of(action).unwrap();
            assert_eq!(action_of_tag(tag), Some(*action));
            assert_eq!(RecordType::of_action(action), Some(*ty));
        }
        assert_eq!(action_of_tag(0), None);
        assert_eq!(action_of_tag(ACTIONS.len() as i32 + 1), None);
        for ty in RecordType::ALL {
            assert!(ACTIONS.iter().any(|(_, t)| t == ty), "{ty:?} has no action");
            assert!(ty.schema().get("properties").is_some(), "{ty:?}: no schema");
        }
    }
}
