//! Where this run's objects are: the resource directories `cluster::simulate` and
//! `cluster::lifecycle` wrote into, so that a range finding nothing where the run put objects (a
//! scenario ranging a namespace its objects are not in) fails instead of passing as an empty
//! success.

use std::sync::{Arc, Mutex};

use super::objects::{Kind, Shape};

/// One resource directory holding objects this run wrote.
#[derive(Debug, Clone)]
pub struct Place {
    /// The full etcd prefix of the resource (`/registry/pods/`).
    pub dir: String,
    /// The kind as records name it (`pod`, `kubevirt.io/virtualmachineinstances`).
    pub kind: String,
    /// Objects written there.
    pub objects: u64,
    /// The namespaces they are in (empty for cluster-scoped kinds).
    pub namespaces: Vec<String>,
    /// Written by `cluster::simulate` (so removed by `cluster::cleanup`) rather than by a
    /// lifecycle.
    pub simulated: bool,
    /// Prefixes inside `dir` that an `etcd::delete` emptied since.
    pub emptied: Vec<String>,
}

/// The run's places, shared by every clone of the target.
pub type Places = Arc<Mutex<Vec<Place>>>;

/// The places a simulated cluster of `shape` under `root` fills.
pub fn of_shape(shape: &Shape, root: &str) -> Vec<Place> {
    let namespaces: Vec<String> = (0..shape.namespaces)
        .map(|n| format!("{}ns-{n}", shape.name_prefix))
        .collect();
    shape
        .segments()
        .into_iter()
        .filter(|s| s.2 > 0)
        .map(|(kind, custom, n)| {
            let (resource, namespaced) = match kind {
                Kind::Custom => {
                    let c = &shape.custom[custom];
                    (format!("{}/{}", c.group, c.plural), c.namespaced)
                }
                Kind::Namespace | Kind::Node => (kind.resource().to_string(), false),
                Kind::Lease => (kind.resource().to_string(), true),
                k => (k.resource().to_string(), true),
            };
            let namespaces = match kind {
                Kind::Lease => vec!["kube-node-lease".to_string()],
                _ if namespaced => namespaces.clone(),
                _ => Vec::new(),
            };
            Place {
                dir: format!("{root}/{resource}/"),
                kind: shape.kind_label(kind, custom),
                objects: n,
                namespaces,
                simulated: true,
                emptied: Vec::new(),
            }
        })
        .collect()
}

/// Adds places, replacing a lifecycle's earlier entry for the same directory.
pub fn add(places: &Places, new: Vec<Place>) {
    let mut p = places.lock().expect("places lock");
    for n in new {
        p.retain(|o| o.simulated || n.simulated || o.dir != n.dir);
        p.push(n);
    }
}

/// Forgets what `cluster::cleanup` removed: every simulated place.
pub fn cleaned(places: &Places) {
    places.lock().expect("places lock").retain(|p| !p.simulated);
}

/// Notes that every key under `prefix` was deleted.
pub fn deleted(places: &Places, prefix: &str) {
    let mut p = places.lock().expect("places lock");
    p.retain(|o| !o.dir.starts_with(prefix));
    for o in p.iter_mut().filter(|o| prefix.starts_with(&o.dir)) {
        o.emptied.push(prefix.to_string());
    }
}

/// The place this run put objects in that `prefix` lies inside, when any (and no delete emptied
/// that part of it since).
pub fn expected_under(places: &Places, prefix: &str) -> Option<Place> {
    places
        .lock()
        .expect("places lock")
        .iter()
        .find(|p| {
            p.objects > 0
                && prefix.starts_with(&p.dir)
                && !p.emptied.iter().any(|e| prefix.starts_with(e.as_str()))
        })
        .cloned()
}

/// What a scenario should range instead, for the error of an empty range inside `place`.
pub fn hint(place: &Place) -> String {
    let ns = match place.namespaces.as_slice() {
        [] => String::new(),
        [one] => format!(" in namespace {one}"),
        [first, .., last] => format!(
            " in namespaces {first} … {last} ({} of them)",
            place.namespaces.len()
        ),
    };
    format!(
        "this run wrote {} {} objects under `{}`{ns}",
        place.objects, place.kind, place.dir
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(dir: &str, simulated: bool) -> Place {
        Place {
            dir: dir.into(),
            kind: "pod".into(),
            objects: 3,
            namespaces: vec!["scen-ns-0".into(), "scen-ns-1".into()],
            simulated,
            emptied: Vec::new(),
        }
    }

    #[test]
    fn a_prefix_inside_a_place_expects_objects_until_deleted_or_cleaned() {
        let places: Places = Default::default();
        add(
            &places,
            vec![
                place("/registry/pods/", true),
                place("/registry/vms/", false),
            ],
        );
        assert!(expected_under(&places, "/registry/pods/default/").is_some());
        assert!(expected_under(&places, "/registry/pods/").is_some());
        assert!(expected_under(&places, "/registry/").is_none());
        assert!(expected_under(&places, "/registry/secrets/").is_none());
        deleted(&places, "/registry/pods/scen-ns-0/");
        assert!(expected_under(&places, "/registry/pods/scen-ns-0/x").is_none());
        assert!(expected_under(&places, "/registry/pods/scen-ns-1/").is_some());
        cleaned(&places);
        assert!(expected_under(&places, "/registry/pods/scen-ns-1/").is_none());
        assert!(expected_under(&places, "/registry/vms/a/").is_some());
        deleted(&places, "/registry/");
        assert!(expected_under(&places, "/registry/vms/a/").is_none());
    }

    #[test]
    fn a_lifecycle_replaces_its_own_directory_and_the_hint_names_the_namespaces() {
        let places: Places = Default::default();
        add(&places, vec![place("/registry/vms/", false)]);
        let mut again = place("/registry/vms/", false);
        again.objects = 0;
        add(&places, vec![again]);
        assert!(expected_under(&places, "/registry/vms/x/").is_none());
        assert_eq!(
            hint(&place("/registry/pods/", true)),
            "this run wrote 3 pod objects under `/registry/pods/` in namespaces scen-ns-0 … scen-ns-1 (2 of them)"
        );
    }
}
