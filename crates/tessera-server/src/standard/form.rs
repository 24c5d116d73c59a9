//! `application/x-www-form-urlencoded` request bodies (RFC 6749 §3.2) and client authentication
//! (§2.3.1). A parameter sent twice, or two client authentication methods at once, is
//! `invalid_request`; a body of another media type is refused rather than guessed at.

use std::collections::HashMap;

use crate::error::RequestError;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_core::EngineError;
use zeroize::Zeroizing;

/// Most parameters a request may carry.
const MAX_PARAMS: usize = 32;

/// The parameters of a form body, each present at most once.
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, RequestError> {
        let media = crate::body::media_type(headers);
        if media.as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(RequestError::field(
                "Content-Type",
                "must be application/x-www-form-urlencoded",
            ));
        }
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if map.len() >= MAX_PARAMS {
                return Err(RequestError::field("body", "too many parameters"));
            }
            if k.contains('\0') || v.contains('\0') {
                return Err(RequestError::field(
                    k.to_string(),
                    "holds a NUL character (%00)",
                ));
            }
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(RequestError::field(k.to_string(), "is repeated"));
            }
        }
        Ok(Form(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name).filter(|v| !v.is_empty())
    }

    /// Every parameter left (those not taken), in no particular order.
    pub fn into_pairs(self) -> impl Iterator<Item = (String, String)> {
        self.0.into_iter()
    }

    pub fn require(&mut self, name: &str) -> Result<String, RequestError> {
        self.take(name)
            .ok_or_else(|| RequestError::field(name, "is required"))
    }
}

/// The client's id and secret, from exactly one of `client_secret_basic` and
/// `client_secret_post`.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &mut Form,
) -> Result<(String, Zeroizing<String>), RequestError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                RequestError::AuthorizationHeader("the Authorization header is not ASCII")
            })?;
            let (scheme, rest) = v.split_once(' ').ok_or(RequestError::AuthorizationHeader(
                "the Authorization header has no scheme",
            ))?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(RequestError::AuthorizationHeader(
                    "the Authorization scheme must be Basic",
                ));
            }
            let decoded = Zeroizing::new(STANDARD.decode(rest.trim()).map_err(|_| {
                RequestError::AuthorizationHeader("the Basic credentials are not base64")
            })?);
            let text = std::str::from_utf8(&decoded).map_err(|_| {
                RequestError::AuthorizationHeader("the Basic credentials are not UTF-8")
            })?;
            let (id, secret) = text
                .split_once(':')
                .ok_or(RequestError::AuthorizationHeader(
                    "the Basic credentials must be client_id:client_secret",
                ))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
            let id = percent_encoding::percent_decode_str(&id.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            let secret = Zeroizing::new(
                percent_encoding::percent_decode_str(&secret.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned(),
            );
            Some((id, secret))
        }
    };
    let post_secret = form.take("client_secret").map(Zeroizing::new);
    let post_id = form.take("client_id");
    match (basic, post_secret) {
        (Some(_), Some(_)) => Err(RequestError::field(
            "client_secret",
            "use one client authentication method: HTTP Basic or client_secret in the form, not both",
        )),
        (Some((id, secret)), None) => match post_id {
            Some(other) if other != id => Err(RequestError::field(
                "client_id",
                "differs from the client authenticated by HTTP Basic",
            )),
            _ => Ok((id, secret)),
        },
        (None, Some(secret)) => {
            let id = post_id.ok_or_else(|| RequestError::field("client_id", "is required"))?;
            Ok((id, secret))
        }
        (None, None) => Err(RequestError::Engine(EngineError::InvalidClient(
            "client authentication is required: HTTP Basic client_id:client_secret",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn repeated_parameters_and_wrong_media_types_are_refused() {
        let h = form_headers();
        assert!(Form::parse(&h, b"grant_type=a&grant_type=b").is_err());
        assert!(Form::parse(&h, b"grant_type=a&scope=x%20y").is_ok());
        assert!(Form::parse(&HeaderMap::new(), b"grant_type=a").is_err());
    }

    #[test]
    fn exactly_one_client_authentication_method() {
        let mut h = form_headers();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("tc_1:s%3Ae"))).unwrap(),
        );
        let mut f = Form::parse(&h, b"grant_type=x").unwrap();
        let (id, secret) = client_credentials(&h, &mut f).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("tc_1", "s:e"));
        let mut f = Form::parse(&h, b"client_secret=x").unwrap();
        assert!(client_credentials(&h, &mut f).is_err());
        let h = form_headers();
        let mut f = Form::parse(&h, b"client_id=tc_1&client_secret=s").unwrap();
        assert_eq!(client_credentials(&h, &mut f).unwrap().0, "tc_1");
        let mut f = Form::parse(&h, b"grant_type=x").unwrap();
        assert!(matches!(
            client_credentials(&h, &mut f),
            Err(RequestError::Engine(EngineError::InvalidClient(_)))
        ));
    }
}
