//! A figure's path in the one path syntax, the thresholds': keys joined by dots, a key that is not
//! a plain name quoted (`stored.resources['wgpolicyk8s.io/policyreports'].keys`), a list element
//! indexed (`status.members[0].raft_index`). Pages, compare output, JUnit case names and live
//! labels all print paths this way, so a path copied from any of them works in a threshold.

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
