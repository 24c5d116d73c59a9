//! Scopes: parsing the two spellings seed 000 and RFC 6749 use, and the subset rules.

use std::collections::BTreeSet;
use std::fmt;

/// The OpenID Connect scope: a sign-in that yields an ID token (OpenID Connect Core §3.1.2.1).
pub const OPENID: &str = "openid";

/// The scopes OpenID Connect defines and Tessera serves (Core §5.4), with what the consent page
/// says of each. Every client of the authorization-code flow may ask for them: they are about
/// the user signing in, not about the partner's API.
pub const OPENID_SCOPES: [(&str, &str); 3] = [
    (OPENID, "Know who you are when you sign in"),
    ("profile", "See your name"),
    ("email", "See your email address"),
];

/// Whether `name` is one of [`OPENID_SCOPES`].
pub fn is_openid_scope(name: &str) -> bool {
    OPENID_SCOPES.iter().any(|(s, _)| *s == name)
}

/// A set of scope names, kept sorted so that tokens and stores see one canonical spelling.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeParseError {
    /// Carries the name, for callers that show it; the message does not quote it, so that it
    /// stays within RFC 6749's `error_description` characters.
    #[error(
        "a scope name has characters outside RFC 6749 §3.3 (printable ASCII except space, double quote and backslash)"
    )]
    BadCharacter(String),
    #[error("scope name is longer than 128 characters")]
    TooLong,
    #[error("more than 64 scopes requested")]
    TooMany,
}

impl ScopeSet {
    /// Parse scopes separated by commas and/or spaces (seed 000 writes `transport,crm`, RFC 6749
    /// writes `transport crm`). Empty items are ignored.
    pub fn parse(s: &str) -> Result<ScopeSet, ScopeParseError> {
        let mut set = BTreeSet::new();
        for item in s.split([',', ' ']).filter(|i| !i.is_empty()) {
            if item.len() > 128 {
                return Err(ScopeParseError::TooLong);
            }
            if !item
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(ScopeParseError::BadCharacter(item.to_string()));
            }
            set.insert(item.to_string());
            if set.len() > 64 {
                return Err(ScopeParseError::TooMany);
            }
        }
        Ok(ScopeSet(set))
    }

    pub fn from_names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> ScopeSet {
        ScopeSet(names.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, of: &ScopeSet) -> bool {
        self.0.is_subset(&of.0)
    }

    /// The names in `self` that `allowed` lacks.
    pub fn outside(&self, allowed: &ScopeSet) -> Vec<String> {
        self.0.difference(&allowed.0).cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// Split into (the OpenID Connect scopes, the rest).
    pub fn split_openid(self) -> (ScopeSet, ScopeSet) {
        let (oidc, rest) = self.0.into_iter().partition(|s| is_openid_scope(s));
        (ScopeSet(oidc), ScopeSet(rest))
    }

    /// The union of two sets.
    pub fn union(mut self, other: ScopeSet) -> ScopeSet {
        self.0.extend(other.0);
        self
    }

    /// Space-separated, as in the `scope` claim and RFC 6749 responses.
    pub fn to_claim(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s);
        }
        out
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({})", self.to_claim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commas_and_spaces() {
        let s = ScopeSet::parse("transport,crm").unwrap();
        assert_eq!(s.to_claim(), "crm transport");
        assert_eq!(ScopeSet::parse("crm  transport, crm").unwrap(), s);
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_characters_and_sizes() {
        assert!(matches!(
            ScopeSet::parse("a\"b"),
            Err(ScopeParseError::BadCharacter(_))
        ));
        assert!(ScopeSet::parse("é").is_err());
        assert_eq!(
            ScopeSet::parse(&"a".repeat(129)),
            Err(ScopeParseError::TooLong)
        );
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert_eq!(
            ScopeSet::parse(&many.join(" ")),
            Err(ScopeParseError::TooMany)
        );
    }

    #[test]
    fn subset_and_outside() {
        let allowed = ScopeSet::parse("transport crm").unwrap();
        assert!(ScopeSet::parse("crm").unwrap().is_subset(&allowed));
        let req = ScopeSet::parse("crm billing").unwrap();
        assert!(!req.is_subset(&allowed));
        assert_eq!(req.outside(&allowed), vec!["billing".to_string()]);
    }
}
