//! Secrets never reach an output: credentials in URLs (`http://user:password@host`) and the
//! passwords a run was given are masked in every text scen prints or writes (logs, reports,
//! live targets).

use std::sync::{LazyLock, RwLock};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Passwords this process was given (`--user name:password`, URL credentials), masked wherever
/// they appear.
static SECRETS: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Remembers `secret` so [`redact`] masks it everywhere (ignored when shorter than 3 characters:
/// masking every `a` would make text unreadable and protect nothing).
pub fn remember(secret: &str) {
    if secret.len() >= 3 {
        if let Ok(mut s) = SECRETS.write() {
            if !s.iter().any(|x| x == secret) {
                s.push(secret.to_string());
            }
        }
    }
}

/// Remembers the password of every URL with credentials in `text`.
pub fn remember_urls(text: &str) {
    for (start, end) in url_passwords(text) {
        remember(&text[start..end]);
    }
}

/// The byte ranges of the passwords in `scheme://user:password@host` URLs of `text`.
fn url_passwords(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let auth_start = from + i + 3;
        let rest = &text[auth_start..];
        let auth_end = rest
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .map_or(text.len(), |j| auth_start + j);
        let auth = &text[auth_start..auth_end];
        if let Some(at) = auth.rfind('@') {
            if let Some(colon) = auth[..at].find(':') {
                out.push((auth_start + colon + 1, auth_start + at));
            }
        }
        from = auth_end.max(auth_start);
    }
    out
}

/// `text` with URL passwords and every remembered secret masked.
pub fn redact(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    let mut last = 0;
    for (a, b) in url_passwords(text) {
        s.push_str(&text[last..a]);
        s.push_str(MASK);
        last = b;
    }
    s.push_str(&text[last..]);
    if let Ok(secrets) = SECRETS.read() {
        for secret in secrets.iter() {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), MASK);
            }
        }
    }
    s
}

/// Every string of `report` redacted (it is written and rendered from this copy).
pub fn redact_report(report: &super::Report) -> super::Report {
    let text = serde_json::to_string(report).unwrap_or_default();
    let clean = redact(&text);
    if clean == text {
        return report.clone();
    }
    serde_json::from_str(&clean).unwrap_or_else(|_| report.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact("push to http://user:pw9@127.0.0.1:9090/api/v1/write failed"),
            "push to http://user:***@127.0.0.1:9090/api/v1/write failed"
        );
        assert_eq!(
            redact("https://127.0.0.1:2379 and http://a@b/"),
            "https://127.0.0.1:2379 and http://a@b/"
        );
        assert_eq!(
            redact("x http://u:p%40ss@h y http://v:q@k"),
            "x http://u:***@h y http://v:***@k"
        );
    }

    #[test]
    fn a_remembered_password_is_masked_anywhere() {
        remember("s3cr3t-word");
        assert_eq!(
            redact("etcd said: user root with s3cr3t-word"),
            "etcd said: user root with ***"
        );
    }
}
