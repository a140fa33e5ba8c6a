//! Module resolution for `import "..." as x;`: the shipped `stdlib/` modules (embedded in the
//! binary) first, then files relative to the scenario's directory.

use std::path::PathBuf;

use rhai::module_resolvers::FileModuleResolver;
use std::sync::Arc;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope};

type SharedModule = Arc<Module>;

/// The stdlib modules shipped in the binary: (import name, source).
pub const STDLIB: &[(&str, &str)] = &[("tiers", include_str!("../../../stdlib/tiers.rhai"))];

/// The source of a stdlib module by import name (`tiers` or `stdlib/tiers`, with or without `.rhai`).
pub fn stdlib_source(path: &str) -> Option<(&'static str, &'static str)> {
    let name = path.trim_start_matches("stdlib/").trim_end_matches(".rhai");
    STDLIB.iter().find(|(n, _)| *n == name).copied()
}

/// Resolves stdlib names first, then paths relative to the scenario directory.
pub struct Resolver {
    files: FileModuleResolver,
}

impl Resolver {
    /// A resolver for scenarios in `base_dir`.
    pub fn new(base_dir: PathBuf) -> Self {
        Resolver {
            files: FileModuleResolver::new_with_path(base_dir),
        }
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
