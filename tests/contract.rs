//! The safety contract (docs/guide.md, "The safety contract"), checked from outside: every
//! shipped scenario, and hostile ones, run against an etcd scen did not start that holds objects
//! scen did not create — some at the very names scen wants — without flags and with every flag.
//! Afterwards every key that was there is byte for byte and revision for revision as it was, and
//! nothing new exists outside what the contract allows: the run's prefix (removed at the end)
//! without flags, `/registry/` with `--allow-registry-writes`.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::*;

/// Key → (value, create revision, mod revision): the keyspace as etcd holds it.
type Keyspace = BTreeMap<Vec<u8>, (Vec<u8>, i64, i64)>;

fn keyspace(url: &str) -> Keyspace {
    let out = etcdctl(url, &["get", "", "--from-key", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap()
    };
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    (
                        b64(&kv["key"]),
                        (
                            b64(&kv["value"]),
                            kv["create_revision"].as_i64().unwrap(),
                            kv["mod_revision"].as_i64().unwrap(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Objects someone else made: at names scen's simulations use, beside them, elsewhere in the
/// keyspace and under another run's prefix.
const FOREIGN: &[(&str, &str)] = &[
    ("/registry/minions/scen-node-0", "their-node"),
    (
        "/registry/leases/kube-node-lease/scen-node-0",
        "their-lease",
    ),
    ("/registry/pods/scen-ns-0/pod-0", "their-pod"),
    ("/registry/namespaces/scen-ns-0", "their-namespace"),
    (
        "/registry/wgpolicyk8s.io/policyreports/scen-ns-0/policyreport-0",
        "their-report",
    ),
    ("/registry/secrets/scen-ns-0/secret-0", "their-secret"),
    ("/registry/configmaps/kube-system/real", "theirs"),
    ("/app/config", "their-app"),
    ("/scen/20200101T000000-000000/k", "another-run"),
    ("top-level", "theirs"),
];

/// Scenarios that try to reach past the contract.
const HOSTILE: &[(&str, &str)] = &[
    (
        "absolute-put",
        "step(\"s\", |p| etcd::put(\"/registry/minions/scen-node-0\", \"mine\", #{ absolute: true }));\n",
    ),
    (
        "absolute-delete",
        "step(\"s\", |p| etcd::delete(\"/app/config\", #{ absolute: true }));\n",
    ),
    (
        "root-elsewhere",
        "step(\"s\", |p| cluster::simulate(#{ nodes: 2, pods: 2, root: \"/app\" }));\n",
    ),
    (
        "root-escape",
        "step(\"s\", |p| cluster::simulate(#{ nodes: 2, root: \"/registry/../app\" }));\n",
    ),
    (
        "heartbeat-foreign",
        "step(\"sim\", |p| cluster::simulate(#{ nodes: 2, pods: 2, namespaces: 1, adopt_existing: true }));\n\
         step(\"hb\", |p| cluster::heartbeat(#{ duration: \"2s\", lease_interval: \"500ms\", status_interval: \"500ms\", pod_churn: 100, churn_interval: \"500ms\" }));\n\
         step(\"clean\", |p| cluster::cleanup());\n",
    ),
    (
        "lifecycle-foreign",
        "step(\"l\", |p| cluster::lifecycle(#{ kind: \"pod\", count: 5, name: \"pod\", namespaces: 1, nodes: 2, monitor: \"100ms\" }));\n",
    ),
    (
        "compact-everything",
        "step(\"c\", |p| etcd::compact());\nstep(\"d\", |p| etcd::defrag());\n",
    ),
];

/// Runs everything with `flags` against a fresh foreign etcd and checks the contract after each.
fn holds_with(flags: &[&str]) {
    let (_rt, _etcd, url) = external();
    for (k, v) in FOREIGN {
        etcdctl(&url, &["put", k, v]);
    }
    let registry = flags.contains(&"--allow-registry-writes");
    let dir = tempfile::tempdir().unwrap();
    let mut runs: Vec<(String, std::path::PathBuf, Vec<&str>)> = common::shipped::small()
        .into_iter()
        .map(|(n, set)| {
            (
                n.to_string(),
                root().join(format!("scenarios/{n}.rhai")),
                set,
            )
        })
        .collect();
    for (name, text) in HOSTILE {
        let f = dir.path().join(format!("{name}.rhai"));
        std::fs::write(&f, text).unwrap();
        runs.push((name.to_string(), f, Vec::new()));
    }
    let mut ran = Vec::new();
    for (name, file, set) in runs {
        let before = keyspace(&url);
        let mut args = vec!["--endpoints", url.as_str()];
        args.extend(flags);
        args.extend(set.iter().copied());
        let r = run(&file, &args);
        assert!(
            !r.stderr.contains("panicked"),
            "{name} {flags:?}: {}",
            r.stderr
        );
        eprintln!(
            "{name} {flags:?}: exit {}: {}",
            r.code,
            r.stderr
                .lines()
                .filter(|l| l.contains("error"))
                .take(2)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        ran.push((name.clone(), r.code));
        let after = keyspace(&url);
        // What was there is as it was.
        for (k, was) in &before {
            assert_eq!(
                after.get(k),
                Some(was),
                "{name} {flags:?} changed {} (exit {}): {}",
                String::from_utf8_lossy(k),
                r.code,
                r.stderr
            );
        }
        // Nothing new outside what the flags allow; without flags, nothing new at all (the
        // run's prefix is removed at the end).
        for k in after.keys().filter(|k| !before.contains_key(*k)) {
            let key = String::from_utf8_lossy(k);
            assert!(
                registry && key.starts_with("/registry/"),
                "{name} {flags:?} left {key} (exit {}): {}",
                r.code,
                r.stderr
            );
        }
        // What the run left under /registry is its own: remove it, so the next scenario meets
        // only the foreign objects.
        for k in after.keys().filter(|k| !before.contains_key(*k)) {
            etcdctl(&url, &["del", &String::from_utf8_lossy(k)]);
        }
    }
    // Not a test of refusals only: most of it ran (exit 0, or 1 for a threshold at this scale).
    let completed = ran.iter().filter(|(_, c)| *c == 0 || *c == 1).count();
    assert!(completed >= 5, "only {completed} ran to the end: {ran:?}");
    // The foreign objects are exactly as they were written.
    let end = keyspace(&url);
    for (k, v) in FOREIGN {
        assert_eq!(end[k.as_bytes()].0, v.as_bytes(), "{k}");
    }
}

#[test]
fn without_flags_a_run_leaves_a_foreign_etcd_as_it_found_it() {
    holds_with(&[]);
}

#[test]
fn with_every_flag_a_run_still_never_touches_what_it_did_not_create() {
    holds_with(&["--allow-registry-writes", "--allow-maintenance"]);
}

#[test]
fn with_allow_registry_writes_alone_nothing_foreign_changes() {
    holds_with(&["--allow-registry-writes"]);
}

#[test]
fn with_allow_maintenance_alone_nothing_new_outside_the_prefix() {
    holds_with(&["--allow-maintenance"]);
}

/// A control plane whose scheduler fails after the API server started (and wrote its own objects
/// under the run prefix): the run fails as infrastructure and still leaves nothing behind.
#[test]
fn a_control_plane_that_fails_to_start_leaves_nothing_under_the_prefix() {
    let (_rt, _etcd, url) = external();
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("kube-scheduler");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'planted: the scheduler fails' >&2\nexit 1\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = scen()
        .env("PATH", path)
        .arg("run")
        .arg(fixture("control-plane-scheduler.rhai"))
        .args(["--endpoints", &url, "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("kube-scheduler"), "{stderr}");
    let left = etcdctl(&url, &["get", "/scen/", "--prefix", "--keys-only"]);
    assert!(
        left.trim().is_empty(),
        "the API server's objects stayed: {}",
        left.lines().take(5).collect::<Vec<_>>().join(", ")
    );
}
