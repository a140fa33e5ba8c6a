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

/// A segment of a record's tree: list indexes sort by number, before names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A list element: `[3]`.
    Index(usize),
    /// A map key.
    Name(String),
}

impl Key {
    fn of(segment: &str) -> Key {
        segment
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .map_or_else(|| Key::Name(segment.to_string()), Key::Index)
    }

    /// `path` extended by this key, in the path syntax.
    fn join(&self, path: &str) -> String {
        match self {
            Key::Index(i) => crate::measure::path::index(path, *i),
            Key::Name(k) => crate::measure::path::key(path, k),
        }
    }

    fn label(&self) -> String {
        match self {
            Key::Index(i) => format!("[{i}]"),
            Key::Name(k) => k.clone(),
        }
    }
}

/// What a cell shows: a figure, or a short string of the record (a name, a version), with its
/// full path.
#[derive(Clone, Copy)]
enum Leaf<'a> {
    Figure(&'a Figure),
    Text(&'a str, &'a str),
}

/// A record as a tree of figures and short strings.
#[derive(Default)]
struct Node<'a> {
    leaf: Option<Leaf<'a>>,
    children: BTreeMap<Key, Node<'a>>,
}

impl<'a> Node<'a> {
    fn insert(&mut self, rel: &[String], leaf: Leaf<'a>) {
        match rel.split_first() {
            None => self.leaf = Some(leaf),
            Some((k, rest)) => self
                .children
                .entry(Key::of(k))
                .or_default()
                .insert(rest, leaf),
        }
    }

    /// Every leaf under this node, with its path relative to it.
    fn leaves(&self, prefix: &str, out: &mut Vec<(String, Leaf<'a>)>) {
        if let Some(f) = self.leaf {
            out.push((prefix.to_string(), f));
        }
        for (k, c) in &self.children {
            c.leaves(&k.join(prefix), out);
        }
    }

    /// A map of maps (by operation, by resource) or a list of maps (members): children that all
    /// have children and no value of their own.
    fn is_table(&self) -> bool {
        self.leaf.is_none()
            && !self.children.is_empty()
            && self
                .children
                .values()
                .all(|c| c.leaf.is_none() && !c.children.is_empty())
    }
}

/// The short strings of a record (under 80 characters), at their paths: a model, a transport, a
/// member's name and version, a kind's encoding, why a view has no data. A distribution's
/// encoded histogram (`hist`) is data for tools, not for reading, and is left out.
fn texts<'v>(v: &'v Value, path: String, out: &mut Vec<(String, &'v str)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = crate::measure::path::key(&path, k);
                match x {
                    Value::String(t) if t.len() < 80 && k != "hist" => out.push((here, t)),
                    Value::Object(_) | Value::Array(_) => texts(x, here, out),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                if x.is_object() {
                    texts(x, crate::measure::path::index(&path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// The segments of a figure path after the step's name: `step.by_kind['a.b'].keys` → `by_kind`,
/// `a.b`, `keys` (a quoted key stays one segment; a list index is `[i]`).
fn relative(step: &str, path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(step)?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    Some(crate::measure::path::segments(rest))
}

fn cell(leaf: Leaf<'_>) -> String {
    match leaf {
        Leaf::Figure(f) => format!(
            r#"<td class="num" data-path="{}" data-v="{}">{}</td>"#,
            esc(&f.path),
            // Six significant figures: enough to sort by, and the same after a JSON round trip.
            f.value.map_or(String::new(), |v| format!("{v:.6e}")),
            esc(&f.display())
        ),
        Leaf::Text(path, text) => format!(
            r#"<td class="num" data-path="{}">{}</td>"#,
            esc(path),
            esc(text)
        ),
    }
}

/// The step's figures as tables.
pub fn record_tables(step: &StepReport) -> String {
    let figures = super::typed::step_figures_with_lists(step);
    let mut strings = Vec::new();
    let record = step.record.to_value();
    texts(&record, step.name.clone(), &mut strings);
    let mut root = Node::default();
    for f in &figures {
        if let Some(rel) = relative(&step.name, &f.path) {
            root.insert(&rel, Leaf::Figure(f));
        }
    }
    for (path, t) in &strings {
        if let Some(rel) = relative(&step.name, path) {
            root.insert(&rel, Leaf::Text(path, t));
        }
    }
    let mut top = String::new();
    let mut nested = String::new();
    for (k, c) in &root.children {
        let name = k.label();
        if let Some(leaf) = c.leaf {
            let _ = write!(top, "<tr><td>{}</td>{}</tr>", esc(&name), cell(leaf));
        } else if c.is_table() {
            nested.push_str(&sortable(&name, c, order_of(&record, c)));
        } else if !c.children.is_empty() {
            let mut rows = Vec::new();
            c.leaves("", &mut rows);
            let _ = write!(
                nested,
                r#"<table class="fig"><caption>{}</caption>"#,
                esc(&name)
            );
            for (p, leaf) in rows {
                let _ = write!(nested, "<tr><td>{}</td>{}</tr>", esc(&p), cell(leaf));
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
/// The order a record gives a map's rows: a list of its top level naming exactly the map's keys
/// (a lifecycle's `phases_run` for its `phases`); `None`: by key.
fn order_of(record: &Value, node: &Node<'_>) -> Option<Vec<String>> {
    let keys: std::collections::BTreeSet<String> = node.children.keys().map(Key::label).collect();
    record.as_object()?.values().find_map(|v| {
        let names: Vec<String> = v
            .as_array()?
            .iter()
            .map(|x| x.as_str().map(String::from))
            .collect::<Option<_>>()?;
        let set: std::collections::BTreeSet<String> = names.iter().cloned().collect();
        (set == keys && names.len() == keys.len()).then_some(names)
    })
}

/// A map of maps as one table: a row per key (in `order` when the record gives one), a column
/// per figure; sortable by any column. Many columns over few rows (a lifecycle's phases, each
/// with two distributions) turn the table: a row per figure, a column per key, so nothing hides
/// behind a horizontal scroll.
fn sortable(name: &str, node: &Node<'_>, order: Option<Vec<String>>) -> String {
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<(String, BTreeMap<String, Leaf<'_>>)> = Vec::new();
    for (k, c) in &node.children {
        let mut leaves = Vec::new();
        c.leaves("", &mut leaves);
        for (p, _) in &leaves {
            if !columns.contains(p) {
                columns.push(p.clone());
            }
        }
        let cells: BTreeMap<String, Leaf<'_>> = leaves.into_iter().collect();
        // A list's element reads by its name when it has one (a member's), the leader starred.
        let mut label = match (k, cells.get("name")) {
            (Key::Index(_), Some(Leaf::Text(_, n))) => format!("{} {n}", k.label()),
            _ => k.label(),
        };
        let leads = ["is_leader", "leader"]
            .iter()
            .any(|f| matches!(cells.get(*f), Some(Leaf::Figure(c)) if c.value == Some(1.0)));
        if leads {
            label = format!("★ {label}");
        }
        rows.push((label, cells));
    }
    // Columns in a stable, readable order: counts and rates before distributions' details.
    columns.sort_by_key(|c| (c.matches(['.', '[']).count(), c.clone()));
    if let Some(order) = order {
        rows.sort_by_key(|(k, _)| order.iter().position(|o| o == k));
    }
    if columns.len() > 12 && rows.len() <= 8 {
        return turned(name, &columns, &rows);
    }
    let mut s = format!(
        r#"<div class="scroll"><table class="fig sortable"><caption>{} <small>(click a column to sort)</small></caption><thead><tr><th>{}</th>"#,
        esc(name),
        esc(name)
    );
    for c in &columns {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr></thead><tbody>");
    let n = rows.len();
    for (k, cells) in rows {
        // A member list marks its leader (`is_leader`, `leader`).
        if k.starts_with('★') {
            let _ = write!(
                s,
                r#"<tr class="leader"><td title="the leader">{}</td>"#,
                esc(&k)
            );
        } else {
            let _ = write!(s, "<tr><td>{}</td>", esc(&k));
        }
        for c in &columns {
            match cells.get(c) {
                Some(leaf) => s.push_str(&cell(*leaf)),
                None => s.push_str(r#"<td class="num">—</td>"#),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    // A long list (a per-second series) folds away: it is the charts' data, there to look up.
    if n > 20 {
        s = format!(
            "<details class=\"long\"><summary>{} ({n} rows)</summary>{s}</details>",
            esc(name)
        );
    }
    s
}

/// A table turned: a row per figure, a column per key.
fn turned(name: &str, columns: &[String], rows: &[(String, BTreeMap<String, Leaf<'_>>)]) -> String {
    let mut s = format!(
        r#"<div class="scroll"><table class="fig turned"><caption>{}</caption><thead><tr><th>{}</th>"#,
        esc(name),
        esc(name)
    );
    for (k, _) in rows {
        let class = if k.starts_with('★') {
            r#" class="leader" title="the leader""#
        } else {
            ""
        };
        let _ = write!(s, "<th{class}>{}</th>", esc(k));
    }
    s.push_str("</tr></thead><tbody>");
    for c in columns {
        let _ = write!(s, "<tr><td>{}</td>", esc(c));
        for (_, cells) in rows {
            match cells.get(c) {
                Some(leaf) => s.push_str(&cell(*leaf)),
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
