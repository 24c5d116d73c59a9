//! Wire-value helpers both dialects' parsers share: length bounds, scope parsing, echoing a
//! caller's value back, and the token type identifiers of RFC 8693 (`tessera_proto::token_type`)
//! mapped to and from the engine's [`TokenType`].

use tessera_core::grants::token_exchange::TokenType;
use tessera_core::policy::MAX_TOKEN_LEN;
use tessera_core::scope::ScopeSet;
use tessera_proto::token_type;

use crate::error::RequestError;

/// A token-like value: present and at most [`MAX_TOKEN_LEN`] bytes.
pub fn bounded(value: &str, field: &str) -> Result<(), RequestError> {
    if value.is_empty() {
        Err(RequestError::field(field, "must not be empty"))
    } else if value.len() > MAX_TOKEN_LEN {
        Err(RequestError::field(
            field,
            format!("must be at most {MAX_TOKEN_LEN} bytes"),
        ))
    } else {
        Ok(())
    }
}

/// A space- (or comma-) separated scope list, refused with the field's name.
pub fn parse_scope(value: &str, field: &str) -> Result<ScopeSet, RequestError> {
    ScopeSet::parse(value).map_err(|e| RequestError::field(field, e.to_string()))
}

/// An `error_description` within RFC 6749's characters (§4.1.2.1 and §5.2: %x20-21 / %x23-5B /
/// %x5D-7E) and without markup delimiters, at most 200 of them: descriptions are Tessera's own
/// words, and this keeps them so when one quotes input (a requested scope, say). Redirects and
/// the standard dialect's error bodies both pass through it.
pub fn error_description(text: &str) -> String {
    text.chars()
        .filter(|&c| matches!(c, ' '..='~') && !matches!(c, '"' | '\\' | '<' | '>'))
        .take(200)
        .collect()
}

/// At most 64 characters of a caller's value, to echo back in a message.
pub fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A `subject_token_type` (or `actor_token_type`) as the engine knows it.
pub fn token_type_from_wire(s: &str) -> TokenType {
    match s {
        token_type::MACHINE_TOKEN => TokenType::MachineToken,
        token_type::ACCESS_TOKEN => TokenType::AccessToken,
        token_type::JWT => TokenType::Jwt,
        _ => TokenType::Unrecognised,
    }
}

/// The identifier of a token type on the wire.
pub fn token_type_name(t: TokenType) -> &'static str {
    match t {
        TokenType::MachineToken => token_type::MACHINE_TOKEN,
        TokenType::AccessToken | TokenType::Unrecognised => token_type::ACCESS_TOKEN,
        TokenType::Jwt => token_type::JWT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_descriptions_keep_to_rfc_6749_characters() {
        assert_eq!(
            error_description("a \"quoted\" <b>bold</b> \\ é\n ok"),
            "a quoted bbold/b   ok"
        );
    }

    #[test]
    fn token_types_round_trip() {
        for t in [
            TokenType::MachineToken,
            TokenType::AccessToken,
            TokenType::Jwt,
        ] {
            assert_eq!(token_type_from_wire(token_type_name(t)), t);
        }
        assert_eq!(
            token_type_from_wire(token_type::REFRESH_TOKEN),
            TokenType::Unrecognised
        );
    }

    #[test]
    fn values_are_bounded_and_echoes_truncated() {
        assert!(bounded("", "f").is_err());
        assert!(bounded(&"a".repeat(MAX_TOKEN_LEN + 1), "f").is_err());
        assert!(bounded("x", "f").is_ok());
        assert_eq!(truncate(&"é".repeat(100)).chars().count(), 64);
    }
}
