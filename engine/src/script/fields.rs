//! Which action a step's closure calls, read from the script's AST at plan time: when the closure
//! is a direct call to a known action (`|p| etcd::status()`), that action's record schema types
//! the step's fields, so `scen check` catches a typo (`status.db_sise`) or a wrong unit.

use rhai::{ASTNode, Expr, Position, Stmt, AST};

use crate::plan::StepSpec;

/// The action a step's closure calls directly (`etcd::status`), when its body is exactly one call.
pub(crate) fn direct_action(step: &StepSpec, ast: &AST) -> Option<(String, String)> {
    direct_call(step, ast).filter(|(ns, _)| !ns.is_empty())
}

/// The function a step's closure calls, namespaced or not (`("", "sleep")`), when its body is
/// exactly one call.
pub(crate) fn direct_call(step: &StepSpec, ast: &AST) -> Option<(String, String)> {
    let def = ast.iter_fn_def().find(|d| d.name == step.func.fn_name())?;
    let key = |p: Position| (p.line().unwrap_or(0), p.position().unwrap_or(0));
    let (start, end) = (def.body.start_position(), def.body.end_position());
    // The body's own statements: an expression body `|p| expr` has no end and starts at its
    // statement; a braced body spans its statements. Nested closures make more than one: skip.
    let mut body: Vec<Stmt> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(s)] = path {
            let at = key(s.position());
            let inside = if end.is_none() {
                at == key(start)
            } else {
                at > key(start) && at <= key(end)
            };
            if inside {
                body.push((*s).clone());
            }
        }
        true
    });
    let call = match body.as_slice() {
        [Stmt::FnCall(x, _)] => x.clone(),
        [Stmt::Expr(e)] => match e.as_ref() {
            Expr::FnCall(x, _) => x.clone(),
            _ => return None,
        },
        _ => return None,
    };
    Some((call.namespace.to_string(), call.name.to_string()))
}

/// Functions that declare the plan: they belong at the top level, not inside a step.
const DECLARATIONS: &[&str] = &[
    "step",
    "background",
    "join",
    "threshold",
    "scenario",
    "embedded_etcd",
    "kube_control_plane",
];

/// The first call of a declaration function inside a closure (a step's body runs after the plan
/// is made, too late to declare anything): `(name, position)`.
pub(crate) fn declaration_in_closure(ast: &AST) -> Option<(String, Position)> {
    let mut found = None;
    let closures: Vec<String> = ast
        .iter_fn_def()
        .filter(|d| d.name.starts_with("anon$"))
        .map(|d| d.name.to_string())
        .collect();
    for name in closures {
        // An AST of this closure alone: walking it visits its body only.
        let one = ast.clone_functions_only_filtered(|_, _, _, n, _| n == name.as_str());
        one.walk(&mut |nodes: &[ASTNode]| {
            let call = match nodes.last() {
                Some(ASTNode::Expr(Expr::FnCall(c, pos))) => Some((c, *pos)),
                Some(ASTNode::Stmt(Stmt::FnCall(c, pos))) => Some((c, *pos)),
                _ => None,
            };
            match call {
                Some((c, pos))
                    if c.namespace.is_empty() && DECLARATIONS.contains(&c.name.as_str()) =>
                {
                    found = Some((c.name.to_string(), pos));
                    false
                }
                _ => true,
            }
        });
        if found.is_some() {
            break;
        }
    }
    found
}

/// Every call of a function of namespace `ns` in the bodies of the functions named `fns` (the
/// closures of the steps the plan declared): `(name, position)`.
pub(crate) fn calls_in(ast: &AST, fns: &[String], ns: &str) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    // `clone_functions_only_filtered` keeps every function when it starts from an empty module
    // (rhai 1.2x): retain on a copy instead.
    let mut only = ast.clone_functions_only();
    only.retain_functions(|_, _, n, _| fns.iter().any(|f| f == n));
    only.walk(&mut |nodes: &[ASTNode]| {
        let call = match nodes.last() {
            Some(ASTNode::Expr(Expr::FnCall(c, pos))) => Some((c, *pos)),
            Some(ASTNode::Stmt(Stmt::FnCall(c, pos))) => Some((c, *pos)),
            _ => None,
        };
        if let Some((c, pos)) = call {
            if c.namespace.to_string() == ns {
                found.push((c.name.to_string(), pos));
            }
        }
        true
    });
    // In source order (the AST keeps functions in hash order).
    found.sort_by_key(|(_, pos)| (pos.line(), pos.position()));
    found
}
