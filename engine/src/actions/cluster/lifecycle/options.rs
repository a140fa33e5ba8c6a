//! `cluster::lifecycle`'s options, and what they lay out: the kind's resource directory and
//! template, the phases it goes through, the renderer of its objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::super::objects::{CustomSpec, Kind, Shape};
use super::super::templates::Renderer;
use super::super::{Backend, SimulateOptions};
use crate::actions::{duration_option as duration, Error, Result};

/// Where a lifecycle put one of its objects (`cluster::object(record, i)`).
#[derive(Debug, Serialize)]
pub struct ObjectAddress {
    /// The object's name (`<name>-<i>`).
    pub name: String,
    /// Its namespace; none for a cluster-scoped kind.
    pub namespace: Option<String>,
    /// Its full etcd key.
    pub key: String,
}

/// The fields of a lifecycle's record that say where its objects are.
#[derive(Debug, Deserialize)]
pub struct Placement {
    /// The resource's directory.
    pub prefix: String,
    /// The `<name>` of the names.
    pub name: String,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// The namespaces, object `i` in the `i % len`-th.
    pub namespaces: Vec<String>,
    /// How many objects there were.
    pub objects: u64,
}

impl Placement {
    /// The `i`-th object's name, namespace and key.
    pub fn object(&self, i: u64) -> Result<ObjectAddress> {
        if i >= self.objects {
            return Err(Error::Options(format!(
                "object {i} is past the lifecycle's {} objects (0 … {})",
                self.objects,
                self.objects.saturating_sub(1)
            )));
        }
        let name = format!("{}-{i}", self.name);
        let namespace = match (self.namespaced, self.namespaces.len() as u64) {
            (true, n) if n > 0 => Some(self.namespaces[(i % n) as usize].clone()),
            _ => None,
        };
        let key = match &namespace {
            Some(ns) => format!("{}{ns}/{name}", self.prefix),
            None => format!("{}{name}", self.prefix),
        };
        Ok(ObjectAddress {
            name,
            namespace,
            key,
        })
    }
}

/// The phases, in the order objects go through them.
pub const PHASES: [&str; 5] = ["create", "schedule", "run", "monitor", "delete"];

/// A custom resource as a CRD names it: what a lifecycle of a custom kind needs besides a template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// API group (`kubevirt.io`).
    pub group: String,
    /// Resource plural (`virtualmachineinstances`).
    pub plural: String,
    /// Template: a stdlib name (`"vmi"`) or a file path.
    pub template: String,
    /// Namespaced (default) or cluster-scoped.
    #[serde(default = "yes")]
    pub namespaced: bool,
}

pub(super) fn yes() -> bool {
    true
}

/// Options of `cluster::lifecycle`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleOptions {
    /// `pod`, `deployment`, `vmi` (KubeVirt's VirtualMachineInstance, stdlib template) or
    /// `custom` with `resource`.
    pub kind: String,
    /// Objects.
    pub count: u64,
    /// A custom kind's resource (with `kind: "custom"`).
    pub resource: Option<ResourceSpec>,
    /// The phases, in order (default all five); `create` first.
    pub phases: Option<Vec<String>>,
    /// Object names are `<name>-<i>` (default: the kind, `pod` or `vmi`).
    pub name: Option<String>,
    /// Namespaces the objects are spread over.
    #[serde(default = "ten")]
    pub namespaces: u64,
    /// Writes in flight at most.
    #[serde(default = "thirty_two")]
    pub concurrency: u64,
    /// Objects created per second (default: as fast as `concurrency` allows).
    #[serde(default, deserialize_with = "crate::actions::de_opt_f64")]
    pub rate: Option<f64>,
    /// How long each object stays running, its status updated every `monitor_interval`.
    pub monitor: Option<String>,
    /// Time between two status updates while running (`"5s"`).
    pub monitor_interval: Option<String>,
    /// Delete in two steps, as a finalizer makes kube-apiserver do: set `deletionTimestamp`,
    /// then remove.
    #[serde(default)]
    pub finalizer: bool,
    /// Nodes to schedule on (default: the simulated cluster's).
    pub nodes: Option<u64>,
    /// Storage root (default `/registry`, under the run prefix on an etcd scen did not start).
    pub root: Option<String>,
    /// Name prefix of namespaces and nodes (default `scen-`, as `cluster::simulate`).
    pub name_prefix: Option<String>,
    /// Your own templates by name.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// Extra template variables.
    #[serde(default)]
    pub vars: serde_json::Map<String, Value>,
    /// Give up on a write after this long (`"5s"`).
    pub request_timeout: Option<String>,
    /// Straight into etcd (default) or through a Kubernetes API server (`"kube"`).
    #[serde(default)]
    pub backend: Backend,
    /// Kube backend: the kubeconfig (default `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<String>,
    /// Kube backend: the context (default the current one).
    pub context: Option<String>,
    /// How the objects move through the phases: `"pipeline"` (default: each object through
    /// every phase on its own, `rate` apart) or `"waves"` (every object through a phase before
    /// any enters the next: create all, all scheduled, all running, hold, delete all — a density
    /// test, where the whole population exists at once).
    #[serde(default)]
    pub mode: Mode,
    /// Waves: how long the whole population is held running, each object's status updated every
    /// `monitor_interval` (default `monitor`, else none).
    pub hold: Option<String>,
    /// Directory relative template paths resolve against (the scenario's).
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
}

/// How a lifecycle's objects move through its phases.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each object through every phase on its own: a steady flow (churn).
    #[default]
    Pipeline,
    /// Every object through one phase before any enters the next: density.
    Waves,
}

pub(super) fn ten() -> u64 {
    10
}
pub(super) fn thirty_two() -> u64 {
    32
}

crate::no_option_checks!(LifecycleOptions);

/// The kind's layout: its resource directory, template, whether it is a built-in pod.
pub(super) struct Layout {
    pub(super) label: String,
    pub(super) resource: String,
    pub(super) template: String,
    pub(super) namespaced: bool,
    /// The built-in kind (pod, deployment), stored as protobuf; `None` for a custom kind.
    pub(super) builtin: Option<Kind>,
}

impl Layout {
    pub(super) fn pod(&self) -> bool {
        self.builtin == Some(Kind::Pod)
    }
}

pub(super) fn layout(opts: &LifecycleOptions) -> Result<Layout> {
    match (opts.kind.as_str(), &opts.resource) {
        ("pod", None) => Ok(Layout {
            label: "pod".into(),
            resource: "pods".into(),
            template: "pod".into(),
            namespaced: true,
            builtin: Some(Kind::Pod),
        }),
        ("deployment", None) => Ok(Layout {
            label: "deployment".into(),
            resource: "deployments".into(),
            template: "deployment".into(),
            namespaced: true,
            builtin: Some(Kind::Deployment),
        }),
        ("vmi", None) => Ok(Layout {
            label: "vmi".into(),
            resource: "kubevirt.io/virtualmachineinstances".into(),
            template: "vmi".into(),
            namespaced: true,
            builtin: None,
        }),
        ("custom", Some(r)) => Ok(Layout {
            label: format!("{}/{}", r.group, r.plural),
            resource: format!("{}/{}", r.group, r.plural),
            template: r.template.clone(),
            namespaced: r.namespaced,
            builtin: None,
        }),
        ("custom", None) => Err(Error::Options(
            "kind \"custom\" needs `resource: #{ group, plural, template }`".into(),
        )),
        (k, Some(_)) => Err(Error::Options(format!(
            "`resource` goes with kind \"custom\", not \"{k}\""
        ))),
        (k, None) => Err(Error::Options(format!(
            "unknown kind `{k}`: use \"pod\", \"deployment\", \"vmi\" or \"custom\" with `resource`"
        ))),
    }
}

/// The phases asked for, checked: known names, in lifecycle order, `create` first.
pub fn phases_of(opts: &LifecycleOptions) -> Result<Vec<&'static str>> {
    let Some(asked) = &opts.phases else {
        return Ok(PHASES.to_vec());
    };
    let mut out: Vec<&'static str> = Vec::new();
    for p in asked {
        let Some(known) = PHASES.iter().find(|k| *k == p) else {
            return Err(Error::Options(format!(
                "unknown phase `{p}`: the phases are {}",
                PHASES.join(", ")
            )));
        };
        if let Some(last) = out.last() {
            let (a, b) = (
                PHASES.iter().position(|x| x == last),
                PHASES.iter().position(|x| x == known),
            );
            if b <= a {
                return Err(Error::Options(format!(
                    "phase `{p}` comes after `{last}`: list them in the order {}",
                    PHASES.join(", ")
                )));
            }
        }
        out.push(known);
    }
    if out.first() != Some(&"create") {
        return Err(Error::Options("the phases start with `create`".into()));
    }
    Ok(out)
}

impl LifecycleOptions {
    /// Everything knowable before a run: kind, phases, durations, templates.
    pub fn check(&self) -> Result<()> {
        let l = layout(self)?;
        phases_of(self)?;
        if self.count == 0 || self.concurrency == 0 || self.namespaces == 0 {
            return Err(Error::Options(
                "count, concurrency and namespaces must be positive".into(),
            ));
        }
        // The same bounds as put_many's: a count past them is a typo, not a workload.
        if self.count > 100_000_000 || self.concurrency > 10_000 || self.namespaces > 100_000 {
            return Err(Error::Options(
                "count above 100000000, concurrency above 10000 or namespaces above 100000 is refused (a typo?): \
                 run the lifecycle in several steps"
                    .into(),
            ));
        }
        if self.nodes.is_some_and(|n| n > 1_000_000) {
            return Err(Error::Options(
                "nodes above 1000000 is refused (a typo?)".into(),
            ));
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(Error::Options(
                "rate must be a positive number of objects per second".into(),
            ));
        }
        if self.hold.is_some() && self.mode != Mode::Waves {
            return Err(Error::Options(
                "hold is how long `mode: \"waves\"` holds the whole population running; a pipeline runs each object for `monitor`".into(),
            ));
        }
        for (v, what) in [
            (&self.monitor, "monitor"),
            (&self.monitor_interval, "monitor_interval"),
            (&self.request_timeout, "request_timeout"),
            (&self.hold, "hold"),
        ] {
            duration(v.as_deref(), "1s", what)?;
        }
        // The template renders an object of the kind (a missing variable or file is found here).
        let r = renderer(self, &l, 1)?;
        r.render_now(render_kind(&l), 0)?;
        Ok(())
    }
}

/// A renderer whose shape has only this kind's objects (and their namespaces first).
pub(super) fn renderer(opts: &LifecycleOptions, l: &Layout, nodes: u64) -> Result<Renderer> {
    let mut sim: SimulateOptions = serde_json::from_value(json!({
        "namespaces": opts.namespaces,
        "templates": opts.templates,
        "vars": opts.vars,
    }))
    .map_err(|e| Error::Options(e.to_string()))?;
    sim.base_dir = opts.base_dir.clone();
    // A template that is neither a stdlib one nor named in `templates` is a file path.
    let stdlib = super::super::templates::STDLIB
        .iter()
        .any(|(n, _)| *n == l.template);
    if !stdlib && !sim.templates.contains_key(&l.template) {
        sim.templates.insert(l.template.clone(), l.template.clone());
    }
    let name = opts.name.clone().unwrap_or_else(|| l.label.clone());
    let (group, plural) = l.resource.split_once('/').unwrap_or(("", &l.resource));
    let shape = Shape {
        namespaces: opts.namespaces,
        nodes,
        // A deployment of one replica per object: `replicas` is pods / deployments.
        pods: if l.builtin.is_some() { opts.count } else { 0 },
        deployments: if l.builtin == Some(Kind::Deployment) {
            opts.count
        } else {
            0
        },
        services: 0,
        configmaps: 0,
        secrets: 0,
        events: 0,
        custom: if l.builtin.is_some() {
            Vec::new()
        } else {
            vec![CustomSpec {
                group: group.into(),
                plural: plural.into(),
                count: opts.count,
                template: l.template.clone(),
                namespaced: l.namespaced,
                vars: {
                    let mut v = serde_json::Map::new();
                    v.insert("name_stem".into(), json!(name));
                    v
                },
            }]
        },
        name_prefix: opts.name_prefix.clone().unwrap_or_else(|| "scen-".into()),
    };
    Renderer::new(&sim, shape)
}

/// The kind the renderer renders the objects as.
pub(super) fn render_kind(l: &Layout) -> Kind {
    l.builtin.unwrap_or(Kind::Custom)
}
