//! Scenario parameters: their declared types (taken from the default value), and how `--values`
//! files and `--set k=v` overrides are checked and merged (precedence: --set > values file > default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::units::{self, Dimension};

/// The type of a parameter, inferred from its default value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A whole number.
    Int,
    /// A number with a fractional part.
    Float,
    /// `true` or `false`.
    Bool,
    /// Free text.
    String,
    /// A duration such as `30s`; scripts see the text, actions parse it.
    Duration,
    /// A size such as `1KiB`; scripts see the number of bytes.
    Size,
    /// A list or map; overrides are parsed as YAML.
    Structured,
}

/// One declared parameter.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    /// The name scripts use (`p.nodes`).
    pub name: String,
    /// The type, from the default.
    pub kind: ParamKind,
    /// The default value, already normalised to the kind.
    pub default: Value,
    /// A one-line description, shown by `scen check` and `scen list`.
    pub doc: String,
}

/// Where a parameter's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamSource {
    /// The scenario's default.
    Default,
    /// A `--values` file.
    Values,
    /// A `--set` flag.
    Set,
}

/// A parameter problem; each names the parameter and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--set` named a parameter the scenario does not declare.
    #[error("unknown parameter `{name}` in {origin}: the scenario declares {known}")]
    Unknown {
        /// The unknown name.
        name: String,
        /// Where it came from (`--set`, or the values file path).
        origin: String,
        /// The declared names, for the message.
        known: String,
    },
    /// A value did not fit the parameter's type.
    #[error("parameter `{name}` from {origin}: `{value}` is not a valid {kind:?} ({reason})")]
    BadValue {
        /// The parameter.
        name: String,
        /// Where the value came from.
        origin: String,
        /// The text given.
        value: String,
        /// The expected kind.
        kind: ParamKind,
        /// Why it did not parse.
        reason: String,
    },
    /// `--set` without `=`.
    #[error("`--set {0}` must have the form key=value")]
    BadSet(String),
    /// The values file could not be read.
    #[error("cannot read values file {path}: {source}")]
    ReadValues {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The values file is not a YAML mapping.
    #[error("values file {path} is not valid YAML mapping of parameter names to values: {reason}")]
    ParseValues {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said.
        reason: String,
    },
    /// A default value that cannot be a parameter (a function pointer, say).
    #[error("parameter `{name}` has an unsupported default: {reason}")]
    BadDefault {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl ParamSpec {
    /// Builds a spec from a default value, inferring its kind.
    pub fn new(name: &str, default: Value, doc: &str) -> Result<Self> {
        let kind = match &default {
            Value::Bool(_) => ParamKind::Bool,
            Value::Number(n) if n.is_i64() || n.is_u64() => ParamKind::Int,
            Value::Number(_) => ParamKind::Float,
            Value::String(s) => match units::parse_quantity(s).map(|q| q.dimension) {
                Ok(Dimension::Duration) => ParamKind::Duration,
                Ok(Dimension::Size) => ParamKind::Size,
                _ => ParamKind::String,
            },
            Value::Array(_) | Value::Object(_) => ParamKind::Structured,
            Value::Null => {
                return Err(Error::BadDefault {
                    name: name.into(),
                    reason: "a default is required to give it a type".into(),
                })
            }
        };
        let mut spec = ParamSpec {
            name: name.to_string(),
            kind,
            default: Value::Null,
            doc: doc.to_string(),
        };
        spec.default = spec.coerce(&yaml_from_json(&default), "the scenario default")?;
        Ok(spec)
    }

    /// Converts a YAML value (from a values file or a parsed `--set`) into this parameter's type.
    pub fn coerce(&self, v: &serde_yaml::Value, origin: &str) -> Result<Value> {
        let text = match v {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        let bad = |reason: String| Error::BadValue {
            name: self.name.clone(),
            origin: origin.to_string(),
            value: crate::quote::quote(&text),
            kind: self.kind,
            reason,
        };
        Ok(match self.kind {
            ParamKind::Int => match v {
                serde_yaml::Value::Number(n) if n.is_i64() || n.is_u64() => {
                    Value::from(n.as_i64().unwrap_or(i64::MAX))
                }
                _ => {
                    // Allow `5_000` and `5e3` (when whole) on the command line.
                    let q = units::parse_expecting(&text, Dimension::Number)
                        .map_err(|e| bad(e.to_string()))?;
                    if q.value.fract() != 0.0 {
                        return Err(bad("expected a whole number".into()));
                    }
                    Value::from(q.value as i64)
                }
            },
            ParamKind::Float => {
                let q = units::parse_expecting(&text, Dimension::Number)
                    .map_err(|e| bad(e.to_string()))?;
                Value::from(q.value)
            }
            ParamKind::Bool => match v {
                serde_yaml::Value::Bool(b) => Value::Bool(*b),
                _ => return Err(bad("expected true or false".into())),
            },
            ParamKind::String => Value::String(text),
            ParamKind::Duration => {
                units::parse_duration(&text).map_err(|e| bad(e.to_string()))?;
                Value::String(text.trim().to_string())
            }
            ParamKind::Size => {
                Value::from(units::parse_size(&text).map_err(|e| bad(e.to_string()))?)
            }
            ParamKind::Structured => {
                let j: Value = serde_json::to_value(v).map_err(|e| bad(e.to_string()))?;
                if !(j.is_array() || j.is_object()) {
                    return Err(bad("expected a list or a map".into()));
                }
                j
            }
        })
    }
}

fn yaml_from_json(v: &Value) -> serde_yaml::Value {
    serde_yaml::to_value(v).unwrap_or(serde_yaml::Value::Null)
}

/// Overrides given on the command line or in a values file, not yet checked against a scenario.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--values FILE.yaml`, if any.
    pub values_file: Option<PathBuf>,
    /// `--set k=v` pairs, in order (a later one wins).
    pub set: Vec<String>,
}

/// Parameters as resolved for a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resolved {
    /// Final values by name.
    pub values: BTreeMap<String, Value>,
    /// Where each value came from.
    pub sources: BTreeMap<String, ParamSource>,
}

/// Applies defaults, then the values file, then `--set`, checking names and types.
pub fn resolve(specs: &[ParamSpec], overrides: &Overrides) -> Result<Resolved> {
    resolve_with(specs, overrides, true)
}

/// The value of one parameter as soon as it is declared (overrides for other names are ignored;
/// [`resolve`] checks those once every parameter is known).
pub fn resolve_one(spec: &ParamSpec, overrides: &Overrides) -> Result<Value> {
    let r = resolve_with(std::slice::from_ref(spec), overrides, false)?;
    Ok(r.values.get(&spec.name).cloned().unwrap_or(Value::Null))
}

fn resolve_with(specs: &[ParamSpec], overrides: &Overrides, strict: bool) -> Result<Resolved> {
    let mut out = Resolved::default();
    for s in specs {
        out.values.insert(s.name.clone(), s.default.clone());
        out.sources.insert(s.name.clone(), ParamSource::Default);
    }
    let find = |name: &str, origin: &str| {
        specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::Unknown {
                name: crate::quote::quote(name),
                origin: origin.to_string(),
                known: known_names(specs),
            })
    };
    if let Some(path) = &overrides.values_file {
        for (name, value) in read_values_file(path)? {
            let origin = format!("values file {}", path.display());
            if !strict && !specs.iter().any(|s| s.name == name) {
                continue;
            }
            let spec = find(&name, &origin)?;
            out.values
                .insert(name.clone(), spec.coerce(&value, &origin)?);
            out.sources.insert(name, ParamSource::Values);
        }
    }
    for item in &overrides.set {
        let (name, raw) = item
            .split_once('=')
            .ok_or_else(|| Error::BadSet(crate::quote::quote(item)))?;
        let name = name.trim();
        if !strict && !specs.iter().any(|s| s.name == name) {
            continue;
        }
        let spec = find(name, "--set")?;
        // Parse the text as YAML so `true`, `5000` and `[1, 2]` get their natural types;
        // strings that YAML would mangle stay text for string-like kinds.
        let value = match spec.kind {
            ParamKind::String | ParamKind::Duration | ParamKind::Size => {
                serde_yaml::Value::String(raw.to_string())
            }
            _ => serde_yaml::from_str(raw)
                .unwrap_or_else(|_| serde_yaml::Value::String(raw.to_string())),
        };
        out.values
            .insert(name.to_string(), spec.coerce(&value, "--set")?);
        out.sources.insert(name.to_string(), ParamSource::Set);
    }
    Ok(out)
}

fn known_names(specs: &[ParamSpec]) -> String {
    if specs.is_empty() {
        "no parameters".to_string()
    } else {
        specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn read_values_file(path: &Path) -> Result<Vec<(String, serde_yaml::Value)>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadValues {
        path: path.to_path_buf(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: serde_yaml::Mapping = serde_yaml::from_str(&text).map_err(|e| Error::ParseValues {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    map.into_iter()
        .map(|(k, v)| match k {
            serde_yaml::Value::String(k) => Ok((k, v)),
            other => Err(Error::ParseValues {
                path: path.to_path_buf(),
                reason: format!("key {other:?} is not a parameter name"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::new("nodes", json!(1000), "nodes").unwrap(),
            ParamSpec::new("duration", json!("30s"), "how long").unwrap(),
            ParamSpec::new("value_size", json!("1KiB"), "value size").unwrap(),
            ParamSpec::new("ratio", json!(0.5), "").unwrap(),
            ParamSpec::new("verify", json!(true), "").unwrap(),
            ParamSpec::new("name", json!("x"), "").unwrap(),
        ]
    }

    #[test]
    fn infers_kinds_from_defaults() {
        let k: Vec<_> = specs().iter().map(|s| s.kind).collect();
        use ParamKind::*;
        assert_eq!(k, vec![Int, Duration, Size, Float, Bool, String]);
        assert_eq!(specs()[2].default, json!(1024));
    }

    #[test]
    fn set_overrides_are_typed() {
        let o = Overrides {
            values_file: None,
            set: vec![
                "nodes=5_000".into(),
                "duration=2m".into(),
                "value_size=2KiB".into(),
                "verify=false".into(),
            ],
        };
        let r = resolve(&specs(), &o).unwrap();
        assert_eq!(r.values["nodes"], json!(5000));
        assert_eq!(r.values["duration"], json!("2m"));
        assert_eq!(r.values["value_size"], json!(2048));
        assert_eq!(r.values["verify"], json!(false));
        assert_eq!(r.sources["nodes"], ParamSource::Set);
        assert_eq!(r.sources["ratio"], ParamSource::Default);
    }

    #[test]
    fn bad_overrides_name_the_parameter() {
        let e = resolve(
            &specs(),
            &Overrides {
                values_file: None,
                set: vec!["nodez=1".into()],
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown parameter `nodez`"), "{e}");
        let e = resolve(
            &specs(),
            &Overrides {
                values_file: None,
                set: vec!["nodes=many".into()],
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("`nodes`"), "{e}");
        let e = resolve(
            &specs(),
            &Overrides {
                values_file: None,
                set: vec!["duration=10GiB".into()],
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("duration"), "{e}");
        assert!(resolve(
            &specs(),
            &Overrides {
                values_file: None,
                set: vec!["nodes".into()]
            }
        )
        .is_err());
    }

    #[test]
    fn precedence_is_set_then_values_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.yaml");
        std::fs::write(&f, "nodes: 3000\nratio: 0.9\n").unwrap();
        let o = Overrides {
            values_file: Some(f.clone()),
            set: vec!["nodes=7".into()],
        };
        let r = resolve(&specs(), &o).unwrap();
        assert_eq!(r.values["nodes"], json!(7));
        assert_eq!(r.values["ratio"], json!(0.9));
        assert_eq!(r.sources["ratio"], ParamSource::Values);
        std::fs::write(&f, "nodes: 1\nbogus: 2\n").unwrap();
        let e = resolve(
            &specs(),
            &Overrides {
                values_file: Some(f),
                set: vec![],
            },
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("bogus") && e.to_string().contains("v.yaml"),
            "{e}"
        );
    }
}
