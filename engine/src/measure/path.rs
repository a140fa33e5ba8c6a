//! A figure's path in the one path syntax, the thresholds': keys joined by dots, a key that is not
//! a plain name quoted (`stored.resources['wgpolicyk8s.io/policyreports'].keys`), a list element
//! indexed (`status.members[0].raft_index`). Pages, compare output, JUnit case names and live
//! labels all print paths this way, so a path copied from any of them works in a threshold.

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// A map key: `latency`.
    Key(String),
    /// A list index: `[0]`.
    Index(usize),
    /// Every element of a list or map: `[*]`.
    All,
    /// A quantile of a latency distribution, 0..=1: `p(99.9)`.
    Quantile(f64),
}

/// A dotted path into the report, starting with a step name: `status.members[*].db_size`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The step the path starts with.
    pub fn step(&self) -> &str {
        match &self.0[0] {
            Segment::Key(k) => k,
            _ => "",
        }
    }
    /// Whether a segment is `[*]`.
    pub fn has_wildcard(&self) -> bool {
        self.0.contains(&Segment::All)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                // Keys that are not plain names (`wgpolicyk8s.io/policyreports`) print quoted.
                Segment::Key(k) if !is_plain(k) => write!(f, "['{k}']")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::All => write!(f, "[*]")?,
                Segment::Quantile(q) => {
                    write!(f, ".p({})", crate::units::format_number(q * 100.0))?
                }
            }
        }
        Ok(())
    }
}

/// Whether `key` prints bare after a dot: letters, digits and `_` only.
pub fn is_plain(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// `path` followed by the map key `key`: `.key`, or `['key']` when it is not a plain name.
pub fn key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if is_plain(key) {
        format!("{path}.{key}")
    } else {
        format!("{path}['{key}']")
    }
}

/// `path` followed by the list index `i`: `path[i]`.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The segments of a path as a person reads them: keys unquoted, indexes as `[i]`.
/// `a.b['c.d'][2].e` → `a`, `b`, `c.d`, `[2]`, `e`.
pub fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if matches!(chars.peek(), Some('\'' | '"')) {
                    let q = chars.next().unwrap_or('\'');
                    let mut k = String::new();
                    for c in chars.by_ref() {
                        if c == q {
                            break;
                        }
                        k.push(c);
                    }
                    // The closing bracket.
                    chars.next();
                    out.push(k);
                } else {
                    let mut k = String::from("[");
                    for c in chars.by_ref() {
                        k.push(c);
                        if c == ']' {
                            break;
                        }
                    }
                    out.push(k);
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_names_are_quoted_and_read_back_whole() {
        let p = key(&key("inventory", "by_kind"), "wgpolicyk8s.io/policyreports");
        assert_eq!(p, "inventory.by_kind['wgpolicyk8s.io/policyreports']");
        let p = key(&index(&key(&p, "x"), 3), "bytes");
        assert_eq!(
            p,
            "inventory.by_kind['wgpolicyk8s.io/policyreports'].x[3].bytes"
        );
        assert_eq!(
            segments(&p),
            [
                "inventory",
                "by_kind",
                "wgpolicyk8s.io/policyreports",
                "x",
                "[3]",
                "bytes"
            ]
        );
        assert_eq!(key("a", "scen-node-0"), "a['scen-node-0']");
        assert_eq!(segments("a.b.c"), ["a", "b", "c"]);
    }
}
