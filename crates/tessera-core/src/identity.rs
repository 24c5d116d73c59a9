//! Usernames and email addresses: how they compare and which are accepted. One rule for the
//! admin CLI (partners, users) and the registration page, so that the two cannot drift.

use crate::policy::MAX_EMAIL_LEN;

/// Usernames (emails, phone numbers) compare case-insensitively and without spaces around.
pub fn normalize_username(username: &str) -> String {
    username.trim().to_lowercase()
}

/// Whether `email` (already trimmed and lower-cased) is an address Tessera accepts: a non-empty
/// local part, a dotted domain that does not start with a dot, no whitespace and no `:` (which
/// would break `Basic email:password`), and at most [`MAX_EMAIL_LEN`] bytes.
pub fn is_email(email: &str) -> bool {
    email.len() <= MAX_EMAIL_LEN
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !email.contains(char::is_whitespace)
        && !email.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_follow_one_rule() {
        assert!(is_email("a@b.example"));
        assert!(!is_email("no-at-sign"));
        assert!(!is_email("@b.example"));
        assert!(!is_email("a@localhost"));
        assert!(!is_email("a@.example"));
        assert!(!is_email("a:b@c.example"));
        assert!(!is_email("a b@c.example"));
        assert!(!is_email(&format!(
            "{}@b.example",
            "a".repeat(MAX_EMAIL_LEN)
        )));
        assert_eq!(normalize_username("  Ann@B.Example "), "ann@b.example");
    }
}
