//! What the script's AST says before anything runs: a declaration inside a step's closure (too
//! late to declare), and the calls of a namespace the steps make (faults that need a cluster
//! scen started).

use rhai::{ASTNode, Expr, Position, Stmt, AST};

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
