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

/// The files a scenario imports, directly or through other imports, as far as they can be found
/// without running it (literal paths, relative to the scenario's directory as the resolver takes
/// them; stdlib modules are in the binary, not files). A run never writes a report over one.
pub fn imported_files(scenario: &std::path::Path) -> Vec<PathBuf> {
    let engine = Engine::new_raw();
    let mut found: Vec<PathBuf> = Vec::new();
    let dir = scenario
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut todo = vec![scenario.to_path_buf()];
    while let Some(file) = todo.pop() {
        let Ok(ast) = engine.compile_file(file.clone()) else {
            continue;
        };
        ast.walk(&mut |nodes: &[rhai::ASTNode]| {
            if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(x, _))) = nodes.last() {
                if let rhai::Expr::StringConstant(path, _) = &x.0 {
                    if stdlib_source(path).is_none() {
                        let mut p = dir.join(path.as_str());
                        p.set_extension("rhai");
                        if p.is_file() && !found.contains(&p) && p != scenario {
                            found.push(p.clone());
                            todo.push(p);
                        }
                    }
                }
            }
            true
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_found_through_other_imports_without_running() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("lib")).unwrap();
        std::fs::write(
            d.join("main.rhai"),
            "import \"lib/a\" as a;\nimport \"tiers\" as t;\nstep(\"s\", |p| etcd::status());\n",
        )
        .unwrap();
        std::fs::write(
            d.join("lib/a.rhai"),
            "import \"lib/b.rhai\" as b;\nfn f() { 1 }\n",
        )
        .unwrap();
        std::fs::write(d.join("lib/b.rhai"), "fn g() { 2 }\n").unwrap();
        let mut got = imported_files(&d.join("main.rhai"));
        got.sort();
        assert_eq!(got, vec![d.join("lib/a.rhai"), d.join("lib/b.rhai")]);
    }
}
