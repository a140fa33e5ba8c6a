//! Module resolution for `import "..." as x;`: the shipped `stdlib/` modules (embedded in the
//! binary) first, then files relative to the scenario's directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope};

type SharedModule = Arc<Module>;

/// The stdlib modules shipped in the binary: (import name, source).
pub const STDLIB: &[(&str, &str)] = &[
    ("slo", include_str!("../../../stdlib/slo.rhai")),
    ("tiers", include_str!("../../../stdlib/tiers.rhai")),
    ("measure", include_str!("../../../stdlib/measure.rhai")),
];

/// The source of a stdlib module by import name (`tiers` or `stdlib/tiers`, with or without `.rhai`).
pub fn stdlib_source(path: &str) -> Option<(&'static str, &'static str)> {
    let name = path.trim_start_matches("stdlib/").trim_end_matches(".rhai");
    STDLIB.iter().find(|(n, _)| *n == name).copied()
}

/// Modules resolved so far, by import path as written; steps need them after the top level ran.
pub type Resolved = Arc<Mutex<HashMap<String, SharedModule>>>;

/// Resolves stdlib names first, then paths relative to the scenario directory.
pub struct Resolver {
    files: FileModuleResolver,
    resolved: Resolved,
    /// Imports being loaded, outermost first: an import of one of them is a cycle.
    loading: Mutex<Vec<String>>,
}

impl Resolver {
    /// A resolver for scenarios in `base_dir`, recording what it resolves into `resolved`.
    pub fn new(base_dir: PathBuf, resolved: Resolved) -> Self {
        Resolver {
            files: FileModuleResolver::new_with_path(base_dir),
            resolved,
            loading: Mutex::new(Vec::new()),
        }
    }

    fn resolve_uncached(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if let Some((name, src)) = stdlib_source(path) {
            let mut ast = engine
                .compile(src)
                .map_err(|e| EvalAltResult::ErrorInModule(path.into(), e.into(), pos))?;
            ast.set_source(format!("stdlib/{name}.rhai"));
            let m = Module::eval_ast_as_new(Scope::new(), &ast, engine)
                .map_err(|e| EvalAltResult::ErrorInModule(path.into(), e, pos))?;
            return Ok(m.into());
        }
        self.files.resolve(engine, source, path, pos)
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let key = path
            .trim_start_matches("./")
            .trim_end_matches(".rhai")
            .to_string();
        {
            let mut loading = self.loading.lock().expect("loading lock");
            if let Some(at) = loading.iter().position(|k| *k == key) {
                let mut chain: Vec<String> = loading[at..].to_vec();
                chain.push(key);
                return Err(EvalAltResult::ErrorRuntime(
                    format!(
                        "circular import: {} (a module cannot import itself, directly or through others; move what both need into a third module)",
                        chain.join(" → ")
                    )
                    .into(),
                    pos,
                )
                .into());
            }
            loading.push(key);
        }
        let m = self.resolve_uncached(engine, source, path, pos);
        self.loading.lock().expect("loading lock").pop();
        let m = m?;
        self.resolved
            .lock()
            .expect("resolved lock")
            .insert(path.to_string(), m.clone());
        Ok(m)
    }
}
