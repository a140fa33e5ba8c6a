//! The one list of actions a script can call, each with the Rust type of the record it returns:
//! what types a step's record wherever the script takes it (a `fn` around the call, a map of
//! several records, `result(...)` of an earlier step), and what reads a saved report's records.

use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};

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

        /// A step's record, a Rust value until it is rendered: the record of the action that made
        /// it, as that action's Rust type, or a map the script built itself.
        #[derive(Debug, Clone)]
        pub enum Record {
            $($(#[$doc])* $variant(Typed<$ty>),)+
            /// A map the script built (its fields that hold an action's record are typed by the
            /// step's `field_actions`), `{}` for none; also an action's record the script gave
            /// another shape, or an old report's, kept exactly as written.
            Script(Value),
        }

        impl Record {
            /// The record type of an action's record, `None` for a script's map.
            pub fn record_type(&self) -> Option<RecordType> {
                match self {
                    $(Record::$variant(_) => Some(RecordType::$variant),)+
                    Record::Script(_) => None,
                }
            }

            /// The record as JSON, exactly as the step's closure returned it (and the step's
            /// views added).
            pub fn to_value(&self) -> Value {
                match self {
                    $(Record::$variant(t) => t.to_value(),)+
                    Record::Script(v) => v.clone(),
                }
            }

            /// The fields added beside an action's own, mutable (a script's map is all added).
            fn added_mut(&mut self) -> Option<&mut Map<String, Value>> {
                match self {
                    $(Record::$variant(t) => Some(&mut t.added),)+
                    Record::Script(Value::Object(m)) => Some(m),
                    Record::Script(_) => None,
                }
            }

            /// A field of the record as JSON, its own or one added, without writing the whole
            /// record out; `None` when it has none (or is not a map).
            fn get(&self, key: &str) -> Option<&Value> {
                match self {
                    $(Record::$variant(t) => t.added.get(key).or_else(|| t.written.get(key)),)+
                    Record::Script(v) => v.get(key),
                }
            }

            /// The record of `ty` that `value` is, when it is one exactly.
            fn decode(ty: RecordType, value: &Value) -> Option<Record> {
                match ty {
                    $(RecordType::$variant => Typed::decode(value).map(Record::$variant),)+
                }
            }
        }
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

/// An action's record with the fields a step added beside its own: its views (`server`,
/// `apiserver`, `outage`) and any field the script set on it.
#[derive(Debug)]
pub struct Typed<T> {
    /// The action's record.
    pub record: Arc<T>,
    /// The record's own fields as they were written (an older scen's report lacks a field a
    /// newer record has; written back, it still lacks it).
    written: Map<String, Value>,
    /// Fields beside the record's own, by name.
    pub added: Map<String, Value>,
}

impl<T> Clone for Typed<T> {
    fn clone(&self) -> Self {
        Typed {
            record: self.record.clone(),
            written: self.written.clone(),
            added: self.added.clone(),
        }
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Typed<T> {
    /// A record from JSON that holds one: it reads as `T`, and `T` writes the same JSON back but
    /// for the fields the JSON lacks and `T` has as `null` (a field added since) and the fields
    /// `T` does not have (added beside it). Else `None`: a script changed its shape.
    fn decode(value: &Value) -> Option<Typed<T>> {
        let Value::Object(fields) = value else {
            return None;
        };
        let record: T = T::deserialize(value).ok()?;
        let Ok(Value::Object(own)) = serde_json::to_value(&record) else {
            return None;
        };
        let (written, added): (Map<String, Value>, Map<String, Value>) = fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| own.contains_key(k));
        same_but_nulls(&Value::Object(own), &Value::Object(written.clone())).then(|| Typed {
            record: Arc::new(record),
            written,
            added,
        })
    }

    /// The record and the fields beside it, as JSON.
    fn to_value(&self) -> Value {
        let mut m = self.written.clone();
        m.extend(self.added.iter().map(|(k, v)| (k.clone(), v.clone())));
        Value::Object(m)
    }
}

/// Whether two JSON values are equal where a map's absent field counts as `null`.
fn same_but_nulls(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let null = Value::Null;
            x.keys()
                .chain(y.keys())
                .all(|k| same_but_nulls(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_but_nulls(p, q))
        }
        _ => a == b,
    }
}

impl Record {
    /// A step's record from the JSON its closure returned: typed by `action`'s record type when
    /// it is one exactly, else kept as the script's value.
    pub fn of(action: Option<&str>, value: Value) -> Record {
        action
            .and_then(RecordType::of_action)
            .and_then(|ty| Record::decode(ty, &value))
            .unwrap_or(Record::Script(value))
    }

    /// No record: `{}`.
    pub fn empty() -> Record {
        Record::Script(Value::Object(Map::new()))
    }

    /// Adds a field beside the record's own unless it has one of that name (a step's views: a
    /// script's own `server` field wins). Does nothing to a script value that is not a map.
    pub fn add(&mut self, key: &str, value: Value) {
        let has = self.get(key).is_some();
        if let (false, Some(m)) = (has, self.added_mut()) {
            m.insert(key.to_string(), value);
        }
    }

    /// Replaces a field beside the record's own (the outage a fault's window found).
    pub fn set_added(&mut self, key: &str, value: Value) {
        if let Some(m) = self.added_mut() {
            m.insert(key.to_string(), value);
        }
    }

    /// A field of the record as JSON (its own or one added), `None` when it has none.
    pub fn field(&self, key: &str) -> Option<Value> {
        self.get(key).cloned()
    }

    /// Whether this is a non-empty map the script built itself.
    pub fn is_script_map(&self) -> bool {
        matches!(self, Record::Script(Value::Object(m)) if !m.is_empty())
    }
}

impl serde::Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl Default for Record {
    fn default() -> Self {
        Record::empty()
    }
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
    use serde_json::json;

    /// A `fault::members` record as JSON.
    fn members() -> Value {
        json!({"members": [{"name": "m1", "client_url": "http://127.0.0.1:2379", "pid": 7,
            "running": true, "paused": false, "slowed": false, "leader": true}],
            "leader": "m1", "alive": 1, "quorum": true})
    }

    #[test]
    fn an_action_record_is_read_as_its_type_and_written_back_exactly() {
        let mut v = members();
        let r = Record::of(Some("fault::members"), v.clone());
        let Record::Members(m) = &r else {
            panic!("not typed: {r:?}");
        };
        assert_eq!(m.record.alive, 1);
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
        // A field the script or the step added stays beside the record's own.
        v["note"] = json!("after the upgrade");
        let mut r = Record::of(Some("fault::members"), v.clone());
        assert_eq!(r.record_type(), Some(RecordType::Members));
        assert_eq!(r.to_value(), v);
        r.add("server", json!({"leader_changes": 0}));
        r.add("note", json!("not replaced"));
        assert_eq!(r.field("note"), Some(json!("after the upgrade")));
        assert_eq!(r.field("server"), Some(json!({"leader_changes": 0})));
        assert_eq!(r.field("alive"), Some(json!(1)));
    }

    #[test]
    fn an_older_record_without_a_newer_field_is_typed_and_written_back_as_it_was() {
        // `leader` is `Option`: a record written before it existed lacks it.
        let mut v = members();
        v.as_object_mut().unwrap().remove("leader");
        let r = Record::of(Some("fault::members"), v.clone());
        let Record::Members(m) = &r else {
            panic!("not typed: {r:?}");
        };
        assert_eq!(m.record.leader, None);
        assert_eq!(r.to_value(), v, "no `leader: null` added on the way back");
        // A field that is there with another value than its type allows is not dropped.
        let mut v = members();
        v["leader"] = json!(7);
        assert!(matches!(
            Record::of(Some("fault::members"), v),
            Record::Script(_)
        ));
    }

    #[test]
    fn a_record_of_another_shape_is_kept_as_written() {
        // The script replaced a figure with text: not a `MembersRecord` any more.
        let mut v = members();
        v["alive"] = json!("all");
        let r = Record::of(Some("fault::members"), v.clone());
        assert!(matches!(r, Record::Script(_)), "{r:?}");
        assert_eq!(r.to_value(), v);
        // A map the script built, and no action.
        let r = Record::of(None, json!({"a": 1}));
        assert!(r.is_script_map());
        assert_eq!(r.record_type(), None);
        assert!(!Record::empty().is_script_map());
        // An unknown action's name types nothing.
        assert_eq!(
            Record::of(Some("etcd::nope"), members()).record_type(),
            None
        );
    }

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
