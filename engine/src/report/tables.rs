//! Every figure of a step's record as HTML tables, from the typed model (never from knowledge of
//! an action's record shape): top-level figures in one table, a map of maps (by operation, by
//! resource, by member) as one sortable table with a row per key, any other nested map as a table
//! of its own. Each cell carries its figure's full path (`data-path`), in its unit, `—` for no
//! data.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::svg::esc;
use super::StepReport;
use crate::measure::figures::Figure;

/// A record as a tree of figures.
#[derive(Default)]
struct Node<'a> {
    leaf: Option<&'a Figure>,
    text: Option<String>,
    children: BTreeMap<String, Node<'a>>,
}

impl<'a> Node<'a> {
    fn insert(&mut self, rel: &[String], f: &'a Figure) {
        match rel.split_first() {
            None => self.leaf = Some(f),
            Some((k, rest)) => self
                .children
                .entry((*k).to_string())
                .or_default()
                .insert(rest, f),
        }
    }

    /// Every leaf under this node, with its path relative to it.
    fn leaves(&self, prefix: &str, out: &mut Vec<(String, &'a Figure)>) {
        if let Some(f) = self.leaf {
            out.push((prefix.to_string(), f));
        }
        for (k, c) in &self.children {
            let p = if k.starts_with('[') {
                format!("{prefix}{k}")
            } else {
                crate::measure::path::key(prefix, k)
            };
            c.leaves(&p, out);
        }
    }

    /// A map of maps (by operation, by resource): children that all have children and no value
    /// of their own.
    fn is_table(&self) -> bool {
        self.leaf.is_none()
            && !self.children.is_empty()
            && self
                .children
                .values()
                .all(|c| c.leaf.is_none() && !c.children.is_empty())
    }
}

/// The segments of a figure path after the step's name: `step.by_kind['a.b'].keys` → `by_kind`,
/// `a.b`, `keys` (a quoted key stays one segment; a list index is `[i]`).
fn relative(step: &str, path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(step)?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    Some(crate::measure::path::segments(rest))
}

fn cell(f: &Figure) -> String {
    format!(
        r#"<td class="num" data-path="{}" data-v="{}">{}</td>"#,
        esc(&f.path),
        // Six significant figures: enough to sort by, and the same after a JSON round trip.
        f.value.map_or(String::new(), |v| format!("{v:.6e}")),
        esc(&f.display())
    )
}

/// The step's figures as tables.
pub fn record_tables(step: &StepReport) -> String {
    let figures = super::typed::step_figures_with_lists(step);
    let mut root = Node::default();
    for f in &figures {
        if let Some(rel) = relative(&step.name, &f.path) {
            root.insert(&rel, f);
        }
    }
    // Short strings of the record's top level (a model, a transport) are shown too.
    if let Value::Object(rec) = &step.record {
        for (k, v) in rec {
            if let Some(t) = v.as_str().filter(|t| t.len() < 80) {
                root.children.entry(k.clone()).or_default().text = Some(t.to_string());
            }
        }
    }
    let mut top = String::new();
    let mut nested = String::new();
    for (k, c) in &root.children {
        if let Some(f) = c.leaf {
            let _ = write!(top, "<tr><td>{}</td>{}</tr>", esc(k), cell(f));
        } else if let Some(t) = &c.text {
            let _ = write!(
                top,
                r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
                esc(k),
                esc(t)
            );
        } else if c.is_table() {
            nested.push_str(&sortable(k, c));
        } else if !c.children.is_empty() {
            let mut rows = Vec::new();
            c.leaves("", &mut rows);
            let _ = write!(
                nested,
                r#"<table class="fig"><caption>{}</caption>"#,
                esc(k)
            );
            for (p, f) in rows {
                let _ = write!(nested, "<tr><td>{}</td>{}</tr>", esc(&p), cell(f));
            }
            nested.push_str("</table>");
        }
    }
    let mut out = String::new();
    if !top.is_empty() {
        let _ = write!(out, r#"<table class="fig">{top}</table>"#);
    }
    out.push_str(&nested);
    out
}

/// A map of maps as one table: a row per key, a column per figure; sortable by any column.
fn sortable(name: &str, node: &Node<'_>) -> String {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<(String, BTreeMap<String, &Figure>)> = Vec::new();
    for (k, c) in &node.children {
        let mut leaves = Vec::new();
        c.leaves("", &mut leaves);
        for (p, _) in &leaves {
            if !columns.contains(p) {
                columns.push(p.clone());
            }
        }
        rows.push((k.clone(), leaves.into_iter().collect()));
    }
    // Columns in a stable, readable order: counts and rates before distributions' details.
    columns.sort_by_key(|c| (c.matches('.').count(), c.clone()));
    let mut s = format!(
        r#"<div class="scroll"><table class="fig sortable"><caption>{} <small>(click a column to sort)</small></caption><thead><tr><th>{}</th>"#,
        esc(name),
        esc(name)
    );
    for c in &columns {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr></thead><tbody>");
    for (k, cells) in rows {
        let _ = write!(s, "<tr><td>{}</td>", esc(&k));
        for c in &columns {
            match cells.get(c) {
                Some(f) => s.push_str(&cell(f)),
                None => s.push_str(r#"<td class="num">—</td>"#),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

/// The page's only script: click a sortable table's header to sort by that column (numbers by
/// value, no data last); click again to reverse.
pub const SORT_SCRIPT: &str = r#"document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var i = Array.prototype.indexOf.call(th.parentNode.children, th);
    var down = th.getAttribute("data-dir") !== "down";
    th.parentNode.querySelectorAll("th").forEach(function (o) { o.removeAttribute("data-dir"); });
    th.setAttribute("data-dir", down ? "down" : "up");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[i], y = b.cells[i];
      var vx = x.getAttribute("data-v"), vy = y.getAttribute("data-v");
      if (vx !== null && vy !== null && vx !== "" && vy !== "") { return down ? vy - vx : vx - vy; }
      if (vx === "" && vy !== "") { return 1; }
      if (vy === "" && vx !== "") { return -1; }
      return down ? y.textContent.localeCompare(x.textContent) : x.textContent.localeCompare(y.textContent);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});"#;
