//! Reading untrusted JSON: size is capped by the router's body limit; here nesting depth is
//! capped before serde sees the bytes, and every serde error is turned into a
//! validation error naming the field (`token_exchange_data.scope`), never a panic.
//! Unknown fields are ignored in the dialects' bodies, as clients may send more than Tessera
//! reads; the admin API's inputs refuse them (`deny_unknown_fields`), so that an operator's
//! misspelt field is an error rather than a silently dropped setting.

use crate::error::RequestError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

/// A request body as handlers take it: `Result<Bytes, BytesRejection>`, so that an oversized or
/// unreadable body is answered in the dialect's own error shape, not axum's plain text.
pub type RawBody = Result<Bytes, BytesRejection>;

/// The bytes of a body, or the error to answer.
pub fn bytes(body: &RawBody) -> Result<&[u8], RequestError> {
    match body {
        Ok(b) => Ok(b),
        Err(r) if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(RequestError::BodyTooLarge(crate::app::MAX_BODY_BYTES))
        }
        Err(_) => Err(RequestError::field(
            "body",
            "the request body could not be read",
        )),
    }
}

/// The media type of a request's `Content-Type`, lower case, without its parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// A JSON request's body, parsed, after its `Content-Type` says it is JSON (`application/json`
/// or `…+json`, any parameters). A form-encoded body, the other dialect's, is told so: the mix-up
/// is the usual one.
pub fn json<T: DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &RawBody,
) -> Result<T, RequestError> {
    match media_type(headers).as_deref() {
        Some("application/json") => {}
        Some(m) if m.starts_with("application/") && m.ends_with("+json") => {}
        Some("application/x-www-form-urlencoded") => {
            return Err(RequestError::field(
                "Content-Type",
                "this endpoint reads JSON, not a form: send Content-Type: application/json and \
                 a JSON object (form-encoded requests go to /oauth/token)",
            ));
        }
        Some(_) | None => {
            return Err(RequestError::field(
                "Content-Type",
                "send Content-Type: application/json and a JSON object",
            ));
        }
    }
    parse_json(bytes(body)?)
}

/// Deepest nesting of arrays and objects accepted; Tessera's own requests need 2.
pub const MAX_JSON_DEPTH: usize = 16;

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::field("body", "send a JSON object"));
    }
    if !depth_within(bytes, MAX_JSON_DEPTH) {
        return Err(RequestError::field(
            "body",
            format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    if escapes_nul(bytes) {
        return Err(RequestError::field(
            "body",
            "a string holds the NUL character (\\u0000), which no field accepts",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        field_error(&path, &e.into_inner())
    })?;
    de.end()
        .map_err(|_| RequestError::field("body", "unexpected data after the JSON value"))?;
    Ok(value)
}

/// Whether a JSON text escapes a NUL character (`\u0000`) in a string. No stored text may hold
/// one (PostgreSQL refuses it, which would surface as a 503), so it is refused as input. A
/// backslash appears only in strings, and each escape is skipped whole.
fn escapes_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1..i + 6) == Some(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

fn field_error(path: &str, e: &serde_json::Error) -> RequestError {
    use serde_json::error::Category;
    let raw = e.to_string();
    // serde_json appends " at line L column C"; the field name says more to a partner.
    let message = raw
        .rsplit_once(" at line ")
        .map_or(raw.as_str(), |(m, _)| m)
        .to_string();
    let base = if path == "." { "" } else { path };
    let field = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "body".to_string(),
        Category::Data => match missing_field(&message) {
            Some(name) if base.is_empty() => name.to_string(),
            Some(name) => format!("{base}.{name}"),
            None if base.is_empty() => "body".to_string(),
            None => base.to_string(),
        },
    };
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("malformed JSON: {message}"),
        _ => message,
    };
    RequestError::field(field, message)
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Whether arrays/objects nest at most `max` deep, ignoring brackets inside strings.
fn depth_within(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_proto::partner::TokenRequest;

    fn fields(e: RequestError) -> Vec<String> {
        match e {
            RequestError::Invalid(v) => v.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nul_in_any_string_is_refused_and_an_escaped_backslash_is_not_one() {
        let nul = parse_json::<serde_json::Value>(br#"{"name":"a\u0000b"}"#).unwrap_err();
        assert_eq!(fields(nul), ["body"]);
        let nested = parse_json::<serde_json::Value>(br#"{"a":{"b":["x\\\u0000"]}}"#);
        assert!(nested.is_err());
        // `\\u0000` is a backslash followed by the text "u0000", not a NUL.
        let text = parse_json::<serde_json::Value>(br#"{"name":"a\\u0000b"}"#).unwrap();
        assert_eq!(text["name"], "a\\u0000b");
        assert!(parse_json::<serde_json::Value>(br#"{"name":"\u0001"}"#).is_ok());
    }

    #[test]
    fn names_the_field_for_missing_and_ill_typed_values() {
        let e = parse_json::<TokenRequest>(
            br#"{"grant_type":"client_credentials","client_credentials_data":{}}"#,
        )
        .unwrap_err();
        assert_eq!(fields(e), ["client_credentials_data.scope"]);
        let e = parse_json::<TokenRequest>(br#"{"grant_type":5}"#).unwrap_err();
        assert_eq!(fields(e), ["grant_type"]);
        let e =
            parse_json::<TokenRequest>(br#"{"token_exchange_data":{"scope":[1]}}"#).unwrap_err();
        assert_eq!(fields(e), ["token_exchange_data.scope"]);
    }

    #[test]
    fn malformed_deep_or_trailing_input_is_a_body_error() {
        for input in [&b"{"[..], b"", b"   ", b"[]", b"{} {}", b"\xff\xfe"] {
            let e = parse_json::<TokenRequest>(input).unwrap_err();
            assert_eq!(fields(e), ["body"], "{input:?}");
        }
        let deep = format!("{}{}", "[".repeat(17), "]".repeat(17));
        assert!(parse_json::<serde_json::Value>(deep.as_bytes()).is_err());
        let in_string = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
        assert!(parse_json::<serde_json::Value>(in_string.as_bytes()).is_ok());
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let r: TokenRequest =
            parse_json(br#"{"grant_type":"client_credentials","extra":{"x":1}}"#).unwrap();
        assert_eq!(r.grant_type.as_deref(), Some("client_credentials"));
    }
}
