//! Object templates: minijinja files rendering one Kubernetes object as YAML. The stdlib ships one
//! per kind (compiled in); a scenario can replace any of them, or add custom ones, with its own files.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::{Error, Result};
use super::objects::{Kind, Shape};

/// The stdlib templates, by name.
pub const STDLIB: &[(&str, &str)] = &[
    (
        "namespace",
        include_str!("../../../../stdlib/templates/namespace.yaml.j2"),
    ),
    (
        "node",
        include_str!("../../../../stdlib/templates/node.yaml.j2"),
    ),
    (
        "lease",
        include_str!("../../../../stdlib/templates/lease.yaml.j2"),
    ),
    (
        "deployment",
        include_str!("../../../../stdlib/templates/deployment.yaml.j2"),
    ),
    (
        "replicaset",
        include_str!("../../../../stdlib/templates/replicaset.yaml.j2"),
    ),
    (
        "service",
        include_str!("../../../../stdlib/templates/service.yaml.j2"),
    ),
    (
        "pod",
        include_str!("../../../../stdlib/templates/pod.yaml.j2"),
    ),
    (
        "configmap",
        include_str!("../../../../stdlib/templates/configmap.yaml.j2"),
    ),
    (
        "secret",
        include_str!("../../../../stdlib/templates/secret.yaml.j2"),
    ),
    (
        "event",
        include_str!("../../../../stdlib/templates/event.yaml.j2"),
    ),
    (
        "policyreport",
        include_str!("../../../../stdlib/templates/policyreport.yaml.j2"),
    ),
    (
        "vmi",
        include_str!("../../../../stdlib/templates/vmi.yaml.j2"),
    ),
];

/// A set of templates ready to render.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// The stdlib templates, with `files` (`name` → path, relative to `base_dir`) added or replacing them.
    pub fn new(files: &BTreeMap<String, String>, base_dir: &Path) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, text) in STDLIB {
            env.add_template(name, text)
                .map_err(|e| Error::Options(format!("stdlib template {name}: {e}")))?;
        }
        for (name, path) in files {
            let full = base_dir.join(path);
            let text = std::fs::read_to_string(&full).map_err(|e| {
                Error::Options(format!(
                    "template `{name}`: cannot read {}: {e}",
                    full.display()
                ))
            })?;
            env.add_template_owned(name.clone(), text).map_err(|e| {
                Error::Options(format!("template `{name}` ({}): {e}", full.display()))
            })?;
        }
        Ok(Templates { env })
    }

    /// Whether a template of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Renders `name` with `vars` and parses the YAML into a JSON value.
    pub fn render(
        &self,
        name: &str,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| Error::Options(format!("template `{name}`: {e}")))?;
        let text = t
            .render(minijinja::Value::from_serialize(vars))
            .map_err(|e| Error::Options(format!("template `{name}`: {e:#}")))?;
        let value: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            let context = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
            Error::Options(format!(
                "template `{name}` rendered YAML that does not parse ({e}); rendered line {line}: `{context}`"
            ))
        })?;
        if !value.is_object() || value.get("kind").is_none() || value.get("apiVersion").is_none() {
            return Err(Error::Options(format!(
                "template `{name}` must render one Kubernetes object with apiVersion and kind"
            )));
        }
        Ok(value)
    }
}

/// Renders the objects of one simulated cluster: its templates, the variables every template
/// sees, and its shape.
pub struct Renderer {
    tpl: Templates,
    common: serde_json::Map<String, serde_json::Value>,
    /// The simulated cluster.
    pub shape: Shape,
}

impl Renderer {
    /// Templates and variables as `opts` give them; every custom kind's template must exist.
    pub fn new(opts: &super::SimulateOptions, shape: Shape) -> Result<Self> {
        let tpl = Templates::new(&opts.templates, &opts.base_dir)?;
        for c in &shape.custom {
            if !tpl.has(&c.template) {
                return Err(Error::Options(format!(
                    "custom {}/{}: no template `{}`; name a stdlib one ({}) or add it under `templates`",
                    c.group,
                    c.plural,
                    c.template,
                    STDLIB.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(Renderer {
            tpl,
            common: super::common_vars(opts)?,
            shape,
        })
    }

    /// The object at global index `i`: its kind, custom index, key under the root, template
    /// name and rendered value.
    pub fn render(&self, i: u64) -> Result<Rendered> {
        let o = self.shape.object(i);
        self.finish(o, None)
    }

    /// The `i`-th object of a built-in `kind`, rendered afresh: `now`, `now_micro` and
    /// `created` are the current time (a heartbeat's update, a churned pod).
    pub fn render_now(&self, kind: Kind, i: u64) -> Result<Rendered> {
        let o = self.shape.object_of(kind, i);
        self.finish(o, Some(chrono::Utc::now()))
    }

    fn finish(
        &self,
        o: super::objects::Object,
        now: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Rendered> {
        let template = match o.kind {
            Kind::Custom => self.shape.custom[o.custom].template.clone(),
            k => k.name().to_string(),
        };
        let mut vars = self.common.clone();
        if let Some(now) = now {
            let stamp = serde_json::Value::from(now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            vars.insert("now".into(), stamp.clone());
            vars.insert("created".into(), stamp);
            vars.insert(
                "now_micro".into(),
                now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().into(),
            );
        }
        vars.extend(o.vars);
        let value = self.tpl.render(&template, &vars)?;
        Ok(Rendered {
            kind: o.kind,
            custom: o.custom,
            key: o.key,
            template,
            value,
        })
    }
}

/// One rendered object.
pub struct Rendered {
    /// Its kind.
    pub kind: Kind,
    /// Index among custom kinds (for `Kind::Custom`).
    pub custom: usize,
    /// Its key under the storage root (no leading slash).
    pub key: String,
    /// The template it came from.
    pub template: String,
    /// The object.
    pub value: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn stdlib_node_renders_a_kwok_node() {
        let t = Templates::new(&BTreeMap::new(), Path::new(".")).unwrap();
        let node = t
            .render(
                "node",
                &vars(json!({ "name": "n-1", "index": 1, "uid": "u", "created": "2026-01-01T00:00:00Z",
                              "now": "2026-01-01T00:00:00Z", "images": 3 })),
            )
            .unwrap();
        assert_eq!(node["kind"], "Node");
        assert_eq!(
            node["metadata"]["annotations"]["kwok.x-k8s.io/node"],
            "fake"
        );
        assert_eq!(node["spec"]["taints"][0]["key"], "kwok.x-k8s.io/node");
        assert_eq!(node["status"]["images"].as_array().unwrap().len(), 3);
        assert_eq!(node["status"]["conditions"][3]["type"], "Ready");
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_the_template() {
        let t = Templates::new(&BTreeMap::new(), Path::new(".")).unwrap();
        let e = t
            .render("namespace", &vars(json!({ "name": "x" })))
            .unwrap_err();
        assert!(e.to_string().contains("template `namespace`"), "{e}");
    }
}
