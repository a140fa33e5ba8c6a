//! Quoting what a user gave in a message: at most ~200 characters of it, so a 100,000-digit
//! number or a 5 MB name makes a readable error.

/// The most characters of a user's value an error message repeats.
pub const MAX_QUOTED: usize = 200;

/// `s`, or its first [`MAX_QUOTED`] characters followed by `…` and how long it was.
pub fn quote(s: &str) -> String {
    let n = s.chars().count();
    if n <= MAX_QUOTED {
        s.to_string()
    } else {
        format!(
            "{}… ({n} characters)",
            s.chars().take(MAX_QUOTED).collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_stay_whole_and_long_ones_are_cut_with_their_length() {
        assert_eq!(quote("abc"), "abc");
        let long = "9".repeat(100_000);
        let q = quote(&long);
        assert!(q.starts_with(&"9".repeat(MAX_QUOTED)));
        assert!(q.ends_with("… (100000 characters)"), "{q}");
        assert!(q.chars().count() < MAX_QUOTED + 30);
        // Characters, not bytes: a multi-byte value is not cut inside a character.
        assert_eq!(quote(&"é".repeat(MAX_QUOTED)), "é".repeat(MAX_QUOTED));
    }
}
