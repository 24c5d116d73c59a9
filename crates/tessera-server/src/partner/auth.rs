//! Partner authentication from the `Authorization` header: `Basic base64(email:password)`
//! (RFC 7617) or `Bearer <partner API token>` (RFC 6750).

use std::sync::Arc;

use crate::error::RequestError;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_core::Engine;
use tessera_core::model::Partner;
use zeroize::Zeroizing;

/// Longest Authorization header read; longer ones are malformed.
const MAX_AUTHORIZATION_LEN: usize = 2048;

pub async fn partner(
    engine: &Engine,
    headers: &HeaderMap,
    now: i64,
) -> Result<Arc<Partner>, RequestError> {
    Ok(match parse(headers)? {
        Credentials::Basic { email, password } => {
            let password = Zeroizing::new(password);
            engine
                .authenticate_partner_basic(&email, &password, now)
                .await?
        }
        Credentials::Bearer(token) => engine.authenticate_partner_token(&token).await?,
    })
}

pub enum Credentials {
    Basic { email: String, password: String },
    Bearer(String),
}

pub fn parse(headers: &HeaderMap) -> Result<Credentials, RequestError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(RequestError::AuthorizationHeader(
        "the Authorization header is missing",
    ))?;
    if values.next().is_some() {
        return Err(RequestError::AuthorizationHeader(
            "send exactly one Authorization header",
        ));
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(RequestError::AuthorizationHeader(
            "the Authorization header is too long",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| RequestError::AuthorizationHeader("the Authorization header is not ASCII"))?;
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or(RequestError::AuthorizationHeader(
            "the Authorization header has no scheme",
        ))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| {
            RequestError::AuthorizationHeader("the Basic credentials are not base64")
        })?;
        let decoded = String::from_utf8(decoded).map_err(|_| {
            RequestError::AuthorizationHeader("the Basic credentials are not UTF-8")
        })?;
        let (email, password) =
            decoded
                .split_once(':')
                .ok_or(RequestError::AuthorizationHeader(
                    "the Basic credentials must be email:password",
                ))?;
        if email.is_empty() || password.is_empty() {
            return Err(RequestError::AuthorizationHeader(
                "the Basic credentials must be email:password",
            ));
        }
        Ok(Credentials::Basic {
            email: email.to_string(),
            password: password.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(RequestError::AuthorizationHeader(
                "the Bearer token is empty",
            ));
        }
        Ok(Credentials::Bearer(rest.to_string()))
    } else {
        Err(RequestError::AuthorizationHeader(
            "the Authorization scheme must be Basic or Bearer",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn parses_basic_and_bearer() {
        let b = STANDARD.encode("a@b.example:pa:ss");
        match parse(&headers(&format!("Basic {b}"))).unwrap() {
            Credentials::Basic { email, password } => {
                assert_eq!(email, "a@b.example");
                assert_eq!(password, "pa:ss");
            }
            _ => panic!(),
        }
        assert!(matches!(
            parse(&headers("bearer tpt_x")).unwrap(),
            Credentials::Bearer(t) if t == "tpt_x"
        ));
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "Basic",
            "Basic !!!",
            "Digest abc",
            "Basic Zm9v",
            "Bearer  ",
            "Basic Om9",
        ] {
            assert!(parse(&headers(bad)).is_err(), "{bad}");
        }
        assert!(parse(&HeaderMap::new()).is_err());
    }
}
