//! Objects as kube-apiserver stores built-in kinds: protobuf in the `k8s\0` envelope, encoded from
//! their JSON form with the field table `k8s.schema` (generated from the `k8s-pb` crate by
//! `scripts/gen-k8s-schema.py`).

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use prost::encoding::{encode_key, encode_varint, WireType};
use serde_json::Value;

/// The generated field table.
static TABLE: &str = include_str!("k8s.schema");

/// The magic prefix of every protobuf value kube-apiserver writes.
pub const MAGIC: &[u8] = b"k8s\0";

/// A field's wire type, as the table names it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    String,
    Int32,
    Int64,
    Bool,
    Bytes,
    Double,
    Message,
    MapString,
    MapBytes,
    MapMessage,
}

/// Messages whose JSON form is not an object (Kubernetes' custom JSON marshalling).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Special {
    None,
    /// RFC 3339 string -> `{seconds, nanos}` (Time and MicroTime).
    Time,
    /// `"100m"` or a number -> `{string}`.
    Quantity,
    /// A number or a string -> `{type, intVal, strVal}`.
    IntOrString,
    /// Any JSON -> `{raw: <JSON bytes>}` (RawExtension, FieldsV1, apiextensions JSON).
    Raw,
}

#[derive(Debug)]
struct Field {
    tag: u32,
    ty: Ty,
    repeated: bool,
    message: usize,
}

#[derive(Debug)]
struct Message {
    name: &'static str,
    special: Special,
    fields: Vec<Field>,
    /// Normalized JSON name (lower case, no `_` or `-`) -> index in `fields`.
    by_name: HashMap<String, usize>,
}

/// The protobuf schema of Kubernetes' built-in resources.
#[derive(Debug)]
pub struct Schema {
    messages: Vec<Message>,
    roots: HashMap<(&'static str, &'static str), usize>,
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The schema, parsed on first use.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse(TABLE))
}

impl Schema {
    fn parse(table: &'static str) -> Schema {
        let lines = || table.lines().filter(|l| !l.starts_with('#'));
        let mut index: HashMap<&str, usize> = HashMap::new();
        for l in lines().filter(|l| l.starts_with("M ")) {
            index.insert(&l[2..], index.len());
        }
        let mut messages: Vec<Message> = Vec::with_capacity(index.len());
        let mut roots = HashMap::new();
        for l in lines() {
            let parts: Vec<&'static str> = l.split(' ').collect();
            match parts[0] {
                "R" => {
                    if let Some(&m) = index.get(parts[3]) {
                        roots.insert((parts[1], parts[2]), m);
                    }
                }
                "M" => {
                    let name = parts[1];
                    let special = match name.rsplit('.').next().unwrap_or("") {
                        "Time" | "MicroTime" if name.contains(".meta.v1.") => Special::Time,
                        "Quantity" => Special::Quantity,
                        "IntOrString" => Special::IntOrString,
                        "RawExtension" | "FieldsV1" | "JSON" => Special::Raw,
                        _ => Special::None,
                    };
                    messages.push(Message {
                        name,
                        special,
                        fields: Vec::new(),
                        by_name: HashMap::new(),
                    });
                }
                "F" => {
                    let m = messages.last_mut().expect("F line after an M line");
                    let (repeated, ty) = match parts[3].strip_prefix('*') {
                        Some(t) => (true, t),
                        None => (false, parts[3]),
                    };
                    let ty = match ty {
                        "string" => Ty::String,
                        "int32" => Ty::Int32,
                        "int64" => Ty::Int64,
                        "bool" => Ty::Bool,
                        "bytes" => Ty::Bytes,
                        "double" => Ty::Double,
                        "message" => Ty::Message,
                        "map-string" => Ty::MapString,
                        "map-bytes" => Ty::MapBytes,
                        "map-message" => Ty::MapMessage,
                        other => panic!("k8s.schema: unknown type {other}"),
                    };
                    m.by_name.insert(normalize(parts[2]), m.fields.len());
                    m.fields.push(Field {
                        tag: parts[1].parse().expect("k8s.schema: tag"),
                        ty,
                        repeated,
                        message: index.get(parts[4]).copied().unwrap_or(usize::MAX),
                    });
                }
                _ => panic!("k8s.schema: bad line {l}"),
            }
        }
        Schema { messages, roots }
    }

    /// Whether kube-apiserver stores this kind as protobuf (a built-in kind).
    pub fn is_builtin(&self, api_version: &str, kind: &str) -> bool {
        self.roots.contains_key(&(api_version, kind))
    }

    /// The object as stored by kube-apiserver: `k8s\0` + runtime.Unknown{typeMeta, raw}. `None`
    /// for kinds without a protobuf form (custom resources, stored as JSON). The error names the
    /// JSON path that does not fit the schema.
    pub fn encode(&self, object: &Value) -> Option<Result<Vec<u8>, String>> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let root = *self.roots.get(&(api_version, kind))?;
        Some(self.envelope(root, api_version, kind, object))
    }

    fn envelope(
        &self,
        root: usize,
        api_version: &str,
        kind: &str,
        object: &Value,
    ) -> Result<Vec<u8>, String> {
        let mut raw = Vec::with_capacity(1024);
        let Value::Object(map) = object else {
            return Err("the object is not a map".into());
        };
        self.fields(
            root,
            map.iter()
                .filter(|(k, _)| k.as_str() != "apiVersion" && k.as_str() != "kind"),
            &mut raw,
            "",
        )?;
        let mut type_meta = Vec::with_capacity(api_version.len() + kind.len() + 4);
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 16);
        out.extend_from_slice(MAGIC);
        bytes_field(1, &type_meta, &mut out);
        bytes_field(2, &raw, &mut out);
        bytes_field(3, b"", &mut out);
        bytes_field(4, b"", &mut out);
        Ok(out)
    }

    /// Encodes the JSON members of message `m`, in field-number order.
    fn fields<'a>(
        &self,
        m: usize,
        members: impl Iterator<Item = (&'a String, &'a Value)>,
        out: &mut Vec<u8>,
        path: &str,
    ) -> Result<(), String> {
        let msg = &self.messages[m];
        let mut present: Vec<(&Field, &Value, String)> = Vec::new();
        for (k, v) in members {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let Some(&f) = msg.by_name.get(&normalize(k)) else {
                return Err(format!(
                    "`{here}` is not a field of {} (kube-apiserver would drop it)",
                    msg.name
                ));
            };
            if !v.is_null() {
                present.push((&msg.fields[f], v, here));
            }
        }
        present.sort_by_key(|p| p.0.tag);
        for (f, v, here) in present {
            if f.repeated {
                let Value::Array(items) = v else {
                    return Err(format!("`{here}` must be a list"));
                };
                for (i, item) in items.iter().enumerate() {
                    self.value(f, item, out, &format!("{here}[{i}]"))?;
                }
            } else {
                self.value(f, v, out, &here)?;
            }
        }
        Ok(())
    }

    /// Encodes one (non-repeated) value of field `f`.
    fn value(&self, f: &Field, v: &Value, out: &mut Vec<u8>, path: &str) -> Result<(), String> {
        let wrong = |what: &str| format!("`{path}` must be {what}, not {v}");
        match f.ty {
            Ty::String => bytes_field(
                f.tag,
                scalar_text(v).ok_or_else(|| wrong("a string"))?.as_bytes(),
                out,
            ),
            Ty::Bytes => {
                let s = v.as_str().ok_or_else(|| wrong("a base64 string"))?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| format!("`{path}` is not base64: {e}"))?;
                bytes_field(f.tag, &data, out);
            }
            Ty::Int32 | Ty::Int64 => {
                let n = integer(v).ok_or_else(|| wrong("an integer"))?;
                if f.ty == Ty::Int32 && i32::try_from(n).is_err() {
                    return Err(wrong("a 32-bit integer"));
                }
                encode_key(f.tag, WireType::Varint, out);
                encode_varint(n as u64, out);
            }
            Ty::Bool => {
                let b = v.as_bool().ok_or_else(|| wrong("true or false"))?;
                encode_key(f.tag, WireType::Varint, out);
                encode_varint(u64::from(b), out);
            }
            Ty::Double => {
                let d = v.as_f64().ok_or_else(|| wrong("a number"))?;
                encode_key(f.tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Ty::Message => {
                let mut inner = Vec::new();
                self.message(f.message, v, &mut inner, path)?;
                bytes_field(f.tag, &inner, out);
            }
            Ty::MapString | Ty::MapBytes | Ty::MapMessage => {
                let Value::Object(map) = v else {
                    return Err(wrong("a map"));
                };
                // Keys in order, as Go's protobuf marshalling writes them.
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for k in keys {
                    let item = &map[k.as_str()];
                    let here = format!("{path}.{k}");
                    let mut entry = Vec::new();
                    bytes_field(1, k.as_bytes(), &mut entry);
                    let value = Field {
                        tag: 2,
                        ty: match f.ty {
                            Ty::MapString => Ty::String,
                            Ty::MapBytes => Ty::Bytes,
                            _ => Ty::Message,
                        },
                        repeated: false,
                        message: f.message,
                    };
                    self.value(&value, item, &mut entry, &here)?;
                    bytes_field(f.tag, &entry, out);
                }
            }
        }
        Ok(())
    }

    /// Encodes the body of message `m` from its JSON form.
    fn message(&self, m: usize, v: &Value, out: &mut Vec<u8>, path: &str) -> Result<(), String> {
        let msg = self
            .messages
            .get(m)
            .ok_or_else(|| format!("`{path}`: no message type in the schema"))?;
        match (msg.special, v) {
            (Special::Time, Value::String(s)) => {
                let t = chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("`{path}` is not an RFC 3339 time ({s}): {e}"))?;
                encode_key(1, WireType::Varint, out);
                encode_varint(t.timestamp() as u64, out);
                encode_key(2, WireType::Varint, out);
                encode_varint(u64::from(t.timestamp_subsec_nanos()), out);
            }
            (Special::Quantity, Value::String(_) | Value::Number(_)) => {
                bytes_field(1, scalar_text(v).unwrap_or_default().as_bytes(), out);
            }
            (Special::IntOrString, Value::Number(_)) => {
                let n = integer(v)
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| format!("`{path}` must be a 32-bit integer or a string"))?;
                encode_key(1, WireType::Varint, out);
                encode_varint(0, out);
                encode_key(2, WireType::Varint, out);
                encode_varint(i64::from(n) as u64, out);
                bytes_field(3, b"", out);
            }
            (Special::IntOrString, Value::String(s)) => {
                encode_key(1, WireType::Varint, out);
                encode_varint(1, out);
                encode_key(2, WireType::Varint, out);
                encode_varint(0, out);
                bytes_field(3, s.as_bytes(), out);
            }
            (Special::Raw, v) => {
                let raw = serde_json::to_vec(v).map_err(|e| e.to_string())?;
                bytes_field(1, &raw, out);
            }
            (_, Value::Object(map)) => self.fields(m, map.iter(), out, path)?,
            _ => return Err(format!("`{path}` must be a map ({}), not {v}", msg.name)),
        }
        Ok(())
    }
}

/// A string, or a number or boolean written where a string belongs (YAML's `8080` for `"8080"`).
fn scalar_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn bytes_field(tag: u32, data: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_knows_the_built_in_kinds_and_not_custom_ones() {
        let s = schema();
        for (v, k) in [
            ("v1", "Pod"),
            ("v1", "Node"),
            ("coordination.k8s.io/v1", "Lease"),
            ("apps/v1", "Deployment"),
        ] {
            assert!(s.is_builtin(v, k), "{v} {k}");
        }
        assert!(!s.is_builtin("wgpolicyk8s.io/v1alpha2", "PolicyReport"));
        assert!(s
            .encode(&json!({"apiVersion": "example.com/v1", "kind": "Thing"}))
            .is_none());
    }

    #[test]
    fn a_lease_encodes_field_by_field() {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n"},
            "spec": {"holderIdentity": "n", "leaseDurationSeconds": 40,
                     "renewTime": "1970-01-01T00:00:01.5Z"}
        });
        let got = schema().encode(&lease).unwrap().unwrap();
        let type_meta = b"\x0a\x16coordination.k8s.io/v1\x12\x05Lease";
        // metadata{name=1:"n"}; spec{holderIdentity=1, leaseDurationSeconds=2, renewTime=4{1, 500000000}}
        let raw =
            b"\x0a\x03\x0a\x01n\x12\x0f\x0a\x01n\x10\x28\x22\x08\x08\x01\x10\x80\xca\xb5\xee\x01";
        let mut want = b"k8s\0".to_vec();
        want.push(0x0a);
        want.push(type_meta.len() as u8);
        want.extend_from_slice(type_meta);
        want.push(0x12);
        want.push(raw.len() as u8);
        want.extend_from_slice(raw);
        want.extend_from_slice(b"\x1a\x00\x22\x00");
        assert_eq!(got, want);
    }

    #[test]
    fn a_field_outside_the_schema_is_an_error_naming_its_path() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "spec": {"containers": [{"name": "a", "imagePolicy": "x"}]}});
        let err = schema().encode(&pod).unwrap().unwrap_err();
        assert!(err.contains("spec.containers[0].imagePolicy"), "{err}");
        assert!(err.contains("api.core.v1.Container"), "{err}");
    }
}
