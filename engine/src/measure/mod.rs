//! The typed measurement model: every figure a record holds has a kind and a unit, declared on the
//! record's Rust type and carried into its JSON Schema (`x-unit`), so thresholds, renderers and
//! `scen compare` read the type instead of guessing from a field's name. A figure with no samples
//! is `null`, never 0.
//!
//! Canonical units: durations in milliseconds, sizes in bytes, rates per second, ratios as a
//! fraction of 1 (`95%` is `0.95`), counts as plain numbers.

pub mod book;
pub mod figures;
pub mod interval;
pub mod latency;
pub mod path;
pub mod process;
pub mod schema;
pub mod totals;

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::units::{format_number, format_quantity, Dimension};

/// The unit of a figure, as recorded in the JSON Schema's `x-unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A count of things (requests, keys, events); a plain number.
    Count,
    /// A duration in milliseconds.
    Ms,
    /// A size in bytes.
    Bytes,
    /// A rate per second.
    PerSecond,
    /// Bytes per second (shown as `10.8MiB/s`; compared as a rate).
    BytesPerSecond,
    /// A fraction of 1 (`0.05` is 5%).
    Ratio,
    /// `true` or `false`.
    Bool,
}

impl Unit {
    /// The name written into `x-unit`.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Ms => "ms",
            Unit::Bytes => "bytes",
            Unit::PerSecond => "per_second",
            Unit::BytesPerSecond => "bytes_per_second",
            Unit::Ratio => "ratio",
            Unit::Bool => "bool",
        }
    }

    /// The unit named by an `x-unit` value.
    pub fn from_symbol(s: &str) -> Option<Unit> {
        Some(match s {
            "count" => Unit::Count,
            "ms" => Unit::Ms,
            "bytes" => Unit::Bytes,
            "per_second" => Unit::PerSecond,
            "bytes_per_second" => Unit::BytesPerSecond,
            "ratio" => Unit::Ratio,
            "bool" => Unit::Bool,
            _ => return None,
        })
    }

    /// The threshold dimension values of this unit compare with.
    pub fn dimension(self) -> Dimension {
        match self {
            Unit::Count | Unit::Bool => Dimension::Number,
            Unit::Ms => Dimension::Duration,
            Unit::Bytes => Dimension::Size,
            Unit::PerSecond | Unit::BytesPerSecond => Dimension::Rate,
            Unit::Ratio => Dimension::Ratio,
        }
    }

    /// How a person reads the unit in a message: `a duration (ms)`.
    pub fn describe(self) -> &'static str {
        match self {
            Unit::Count => "a count",
            Unit::Ms => "a duration (ms)",
            Unit::Bytes => "a size (bytes)",
            Unit::PerSecond => "a rate (/s)",
            Unit::BytesPerSecond => "a byte rate (bytes/s)",
            Unit::Ratio => "a ratio (write it with %)",
            Unit::Bool => "a boolean (true or false)",
        }
    }

    /// A value of this unit for people: `12.5ms`, `1.5GiB`, `950/s`, `5%`, `true`; `—` for no data.
    pub fn format(self, value: Option<f64>) -> String {
        let Some(v) = value else {
            return NO_DATA.to_string();
        };
        match self {
            Unit::Count => format_number(v),
            Unit::Bool => (v != 0.0).to_string(),
            // Whole bytes only: a fraction of a byte is a rounding artefact.
            Unit::Bytes if v.abs() < 1024.0 => format!("{}B", v.round()),
            Unit::BytesPerSecond => format!("{}/s", format_quantity(v, Dimension::Size)),
            other => format_quantity(v, other.dimension()),
        }
    }
}

/// What every page shows for a figure with no samples.
pub const NO_DATA: &str = "—";

/// A value for people in its unit, when known (`12.5ms`), else as a plain number; `—` for none.
pub fn show(unit: Option<Unit>, value: Option<f64>) -> String {
    match (unit, value) {
        (Some(u), v) => u.format(v),
        (None, Some(v)) => format_number(v),
        (None, None) => NO_DATA.to_string(),
    }
}

macro_rules! unit_marker {
    ($(#[$doc:meta])* $name:ident, $unit:expr, $json:literal) => {
        $(#[$doc])*
        pub struct $name;
        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": $json, "x-unit": $unit.symbol() })
            }
        }
    };
}

unit_marker!(
    /// Schema marker for a duration field in ms: `#[schemars(with = "measure::Ms")]`.
    Ms,
    Unit::Ms,
    "number"
);
unit_marker!(
    /// Schema marker for a size field in bytes.
    Bytes,
    Unit::Bytes,
    "number"
);
unit_marker!(
    /// Schema marker for a per-second rate field.
    PerSecond,
    Unit::PerSecond,
    "number"
);
unit_marker!(
    /// Schema marker for a byte rate field (bytes per second).
    BytesPerSecond,
    Unit::BytesPerSecond,
    "number"
);
unit_marker!(
    /// Schema marker for a ratio field (a fraction of 1).
    Ratio,
    Unit::Ratio,
    "number"
);
unit_marker!(
    /// Schema marker for a count field (integers).
    Count,
    Unit::Count,
    "integer"
);
