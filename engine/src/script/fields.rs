//! Which action a step's closure calls, read from the script's AST at plan time: when the closure
//! is a direct call to a known action (`|p| etcd::status()`), that action's record schema types
//! the step's fields, so `scen check` catches a typo (`status.db_sise`) or a wrong unit.

use rhai::{ASTNode, Expr, Position, Stmt, AST};

use crate::plan::StepSpec;

/// The action a step's closure calls directly (`etcd::status`), when its body is exactly one call.
pub(crate) fn direct_action(step: &StepSpec, ast: &AST) -> Option<(String, String)> {
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
    let ns = call.namespace.to_string();
    (!ns.is_empty()).then(|| (ns, call.name.to_string()))
}
