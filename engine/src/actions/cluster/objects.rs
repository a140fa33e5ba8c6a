//! What a simulated cluster consists of: every object addressed by one global index (so writers
//! can share the work without holding a list), its key in kube-apiserver's storage layout, and the
//! variables its template is rendered with.

use serde::Serialize;

/// Kinds scen writes, in the order they are written (owners before what they own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `/registry/namespaces/<name>`.
    Namespace,
    /// `/registry/minions/<name>`.
    Node,
    /// `/registry/leases/kube-node-lease/<node>`.
    Lease,
    /// `/registry/deployments/<ns>/<name>`.
    Deployment,
    /// `/registry/replicasets/<ns>/<name>`.
    ReplicaSet,
    /// `/registry/services/specs/<ns>/<name>`.
    Service,
    /// `/registry/pods/<ns>/<name>`.
    Pod,
    /// `/registry/configmaps/<ns>/<name>`.
    ConfigMap,
    /// `/registry/secrets/<ns>/<name>`.
    Secret,
    /// `/registry/events/<ns>/<name>`.
    Event,
    /// `/registry/<group>/<plural>/[<ns>/]<name>`.
    Custom,
}

impl Kind {
    /// The name used in options, records and template file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Node => "node",
            Kind::Lease => "lease",
            Kind::Deployment => "deployment",
            Kind::ReplicaSet => "replicaset",
            Kind::Service => "service",
            Kind::Pod => "pod",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::Event => "event",
            Kind::Custom => "custom",
        }
    }

    /// The resource's directory under the storage root, as kube-apiserver names it.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "minions",
            Kind::Lease => "leases",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::Service => "services/specs",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Event => "events",
            Kind::Custom => "",
        }
    }
}

/// A custom resource kind to simulate.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomSpec {
    /// API group (`wgpolicyk8s.io`).
    pub group: String,
    /// Resource plural (`policyreports`).
    pub plural: String,
    /// How many objects.
    pub count: u64,
    /// Template: a stdlib name (`"policyreport"`) or a file path.
    pub template: String,
    /// Namespaced (default) or cluster-scoped.
    #[serde(default = "yes")]
    pub namespaced: bool,
    /// Extra template variables for these objects.
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// The shape of a simulated cluster.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Namespaces the namespaced objects are spread over.
    pub namespaces: u64,
    /// Fake nodes (each with its lease).
    pub nodes: u64,
    /// Pods, spread over the nodes round robin.
    pub pods: u64,
    /// Deployments (each with one replicaset owning its share of the pods); 0: bare pods.
    pub deployments: u64,
    /// Services.
    pub services: u64,
    /// Configmaps.
    pub configmaps: u64,
    /// Secrets.
    pub secrets: u64,
    /// Events.
    pub events: u64,
    /// Custom resources.
    pub custom: Vec<CustomSpec>,
    /// Name prefix of namespaces and nodes (`scen-`).
    pub name_prefix: String,
}

/// One object to write.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its kind.
    pub kind: Kind,
    /// Index among custom kinds (for `Kind::Custom`).
    pub custom: usize,
    /// Its key under the root (no leading slash).
    pub key: String,
    /// Its template variables.
    pub vars: serde_json::Map<String, serde_json::Value>,
}

impl Shape {
    /// Objects per kind, in write order (`custom` entries last, one per spec).
    pub fn segments(&self) -> Vec<(Kind, usize, u64)> {
        let mut s = vec![
            (
                Kind::Namespace,
                0,
                self.namespaces + u64::from(self.nodes > 0),
            ),
            (Kind::Node, 0, self.nodes),
            (Kind::Lease, 0, self.nodes),
            (Kind::Deployment, 0, self.deployments),
            (Kind::ReplicaSet, 0, self.deployments),
            (Kind::Service, 0, self.services),
            (Kind::Pod, 0, self.pods),
            (Kind::ConfigMap, 0, self.configmaps),
            (Kind::Secret, 0, self.secrets),
            (Kind::Event, 0, self.events),
        ];
        for (i, c) in self.custom.iter().enumerate() {
            s.push((Kind::Custom, i, c.count));
        }
        s
    }

    /// Every object.
    pub fn total(&self) -> u64 {
        self.segments().iter().map(|s| s.2).sum()
    }

    /// Objects of each kind (custom kinds as `group/plural`).
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.segments()
            .into_iter()
            .filter(|s| s.2 > 0)
            .map(|(k, c, n)| (self.kind_label(k, c), n))
            .collect()
    }

    /// The record's name for a kind.
    pub fn kind_label(&self, kind: Kind, custom: usize) -> String {
        match kind {
            Kind::Custom => {
                let c = &self.custom[custom];
                format!("{}/{}", c.group, c.plural)
            }
            k => k.name().to_string(),
        }
    }

    fn namespace(&self, i: u64) -> String {
        format!("{}ns-{}", self.name_prefix, i % self.namespaces.max(1))
    }

    fn node(&self, i: u64) -> String {
        format!("{}node-{}", self.name_prefix, i)
    }

    /// The object at global index `i` (`i < total()`).
    pub fn object(&self, mut i: u64) -> Object {
        for (kind, custom, n) in self.segments() {
            if i < n {
                return self.build(kind, custom, i);
            }
            i -= n;
        }
        panic!("object index out of range")
    }

    /// The `i`-th object of a built-in kind (`i` < that kind's count).
    pub fn object_of(&self, kind: Kind, i: u64) -> Object {
        self.build(kind, 0, i)
    }

    fn build(&self, kind: Kind, custom: usize, i: u64) -> Object {
        use serde_json::json;
        let mut vars = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            vars.insert(k.to_string(), v);
        };
        put("index", json!(i));
        let deployments = self.deployments.max(1);
        let (key, name, ns) = match kind {
            Kind::Namespace => {
                let name = if i < self.namespaces {
                    self.namespace(i)
                } else {
                    "kube-node-lease".to_string()
                };
                (format!("namespaces/{name}"), name, None)
            }
            Kind::Node => {
                let name = self.node(i);
                (format!("minions/{name}"), name, None)
            }
            Kind::Lease => {
                let name = self.node(i);
                put("node_uid", json!(uid("node", "", &name)));
                (
                    format!("leases/kube-node-lease/{name}"),
                    name,
                    Some("kube-node-lease".to_string()),
                )
            }
            Kind::Deployment | Kind::ReplicaSet => {
                let ns = self.namespace(i);
                let app = format!("app-{i}");
                let hash = pod_template_hash(&app);
                let replicas = self.pods / deployments + u64::from(i < self.pods % deployments);
                put("app", json!(app));
                put("hash", json!(hash));
                put("replicas", json!(replicas));
                if kind == Kind::Deployment {
                    (format!("deployments/{ns}/{app}"), app, Some(ns))
                } else {
                    put(
                        "owner",
                        json!({ "kind": "Deployment", "name": app, "uid": uid("deployment", &ns, &app) }),
                    );
                    let name = format!("{app}-{hash}");
                    (format!("replicasets/{ns}/{name}"), name, Some(ns))
                }
            }
            Kind::Service => {
                let ns = self.namespace(i);
                let name = format!("svc-{i}");
                put("app", json!(format!("app-{}", i % deployments)));
                (format!("services/specs/{ns}/{name}"), name, Some(ns))
            }
            Kind::Pod => {
                let node_index = i % self.nodes.max(1);
                put("node", json!(self.node(node_index)));
                put("host_ip", json!(ip(64, node_index)));
                put("pod_ip", json!(ip(128, i)));
                put("containers", json!(1 + i % 2));
                if self.deployments > 0 {
                    // Pod p belongs to deployment p % D, as the p / D-th replica.
                    let d = i % deployments;
                    let ns = self.namespace(d);
                    let app = format!("app-{d}");
                    let hash = pod_template_hash(&app);
                    let rs = format!("{app}-{hash}");
                    let name = format!("{rs}-{}", suffix(i));
                    put("app", json!(app));
                    put("hash", json!(hash));
                    put(
                        "owner",
                        json!({ "kind": "ReplicaSet", "name": rs, "uid": uid("replicaset", &ns, &rs) }),
                    );
                    (format!("pods/{ns}/{name}"), name, Some(ns))
                } else {
                    let ns = self.namespace(i);
                    let name = format!("pod-{i}");
                    put("app", json!(format!("app-{}", i % 10)));
                    put("hash", json!(pod_template_hash("bare")));
                    put("owner", serde_json::Value::Null);
                    (format!("pods/{ns}/{name}"), name, Some(ns))
                }
            }
            Kind::ConfigMap | Kind::Secret => {
                let ns = self.namespace(i);
                let name = format!("{}-{i}", kind.name());
                put("app", json!(format!("app-{}", i % deployments)));
                (format!("{}/{ns}/{name}", kind.resource()), name, Some(ns))
            }
            Kind::Event => {
                let ns = self.namespace(i);
                let pod = format!("pod-{}", i % self.pods.max(1));
                let name = format!("{pod}.{:016x}", splitmix(i));
                put("pod", json!(pod));
                put("node", json!(self.node(i % self.nodes.max(1))));
                (format!("events/{ns}/{name}"), name, Some(ns))
            }
            Kind::Custom => {
                let c = &self.custom[custom];
                for (k, v) in &c.vars {
                    put(k, v.clone());
                }
                let name = format!("{}-{i}", c.plural.trim_end_matches('s'));
                if c.namespaced {
                    let ns = self.namespace(i);
                    (
                        format!("{}/{}/{ns}/{name}", c.group, c.plural),
                        name,
                        Some(ns),
                    )
                } else {
                    (format!("{}/{}/{name}", c.group, c.plural), name, None)
                }
            }
        };
        let label = self.kind_label(kind, custom);
        vars.insert(
            "uid".into(),
            json!(uid(&label, ns.as_deref().unwrap_or(""), &name)),
        );
        vars.insert("name".into(), json!(name));
        if let Some(ns) = ns {
            vars.insert("namespace".into(), json!(ns));
        }
        Object {
            kind,
            custom,
            key,
            vars,
        }
    }
}

/// SplitMix64: a cheap, well-mixed deterministic hash.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_str(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| splitmix(h ^ u64::from(b)))
}

/// A stable UUID (version 4 layout) for an object, so owner references line up across kinds.
pub fn uid(kind: &str, ns: &str, name: &str) -> String {
    let a = hash_str(&format!("{kind}/{ns}/{name}"));
    let b = splitmix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// `len` characters of Kubernetes' name-suffix alphabet (no vowels), derived from `h`.
fn k8s_chars(mut h: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Kubernetes-style pod-template-hash (10 characters).
fn pod_template_hash(app: &str) -> String {
    k8s_chars(hash_str(app), 10)
}

/// The 5-character random-looking suffix of a replicaset's pod.
fn suffix(i: u64) -> String {
    k8s_chars(splitmix(i), 5)
}

fn ip(first: u64, i: u64) -> String {
    format!(
        "10.{}.{}.{}",
        first + (i >> 16) % 64,
        (i >> 8) % 256,
        i % 256
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            namespaces: 2,
            nodes: 3,
            pods: 7,
            deployments: 2,
            services: 1,
            configmaps: 1,
            secrets: 1,
            events: 1,
            custom: vec![],
            name_prefix: "t-".into(),
        }
    }

    #[test]
    fn every_index_is_one_object_in_write_order() {
        let s = shape();
        // 2 namespaces + kube-node-lease, 3 nodes, 3 leases, 2 deployments, 2 replicasets, ...
        assert_eq!(s.total(), 3 + 3 + 3 + 2 + 2 + 1 + 7 + 1 + 1 + 1);
        let keys: Vec<String> = (0..s.total()).map(|i| s.object(i).key).collect();
        assert_eq!(keys[0], "namespaces/t-ns-0");
        assert_eq!(keys[2], "namespaces/kube-node-lease");
        assert_eq!(keys[3], "minions/t-node-0");
        assert_eq!(keys[6], "leases/kube-node-lease/t-node-0");
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "no two objects share a key");
    }

    #[test]
    fn pods_are_owned_by_their_replicaset_and_spread_over_nodes() {
        let s = shape();
        let first_pod = 3 + 3 + 3 + 2 + 2 + 1;
        let rs = s.object(3 + 3 + 3 + 2); // replicaset of deployment 0
        let pod = s.object(first_pod);
        assert_eq!(pod.vars["owner"]["name"], rs.vars["name"]);
        assert_eq!(pod.vars["owner"]["uid"], rs.vars["uid"]);
        assert_eq!(pod.vars["namespace"], rs.vars["namespace"]);
        let nodes: Vec<_> = (0..3)
            .map(|k| s.object(first_pod + k).vars["node"].clone())
            .collect();
        assert_eq!(nodes, ["t-node-0", "t-node-1", "t-node-2"]);
        // 7 pods over 2 deployments: 4 and 3 replicas.
        assert_eq!(s.object(3 + 3 + 3).vars["replicas"], 4);
        assert_eq!(s.object(3 + 3 + 3 + 1).vars["replicas"], 3);
    }

    #[test]
    fn uids_are_stable_and_shaped_like_uuids() {
        let a = uid("pod", "ns", "x");
        assert_eq!(a, uid("pod", "ns", "x"));
        assert_ne!(a, uid("pod", "ns", "y"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
