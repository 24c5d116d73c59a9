//! What the registry accepts: names, emails, redirect URIs (RFC 9700 §2.1, RFC 8252) and
//! framing origins, each refused with a sentence an operator can act on.

use super::AdminError;
use crate::policy::MAX_NAME_LEN;

pub(super) fn check_name(name: &str) -> Result<(), AdminError> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(AdminError::Invalid(format!(
            "the name must be 1 to {MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

pub(super) fn check_email(email: &str) -> Result<String, AdminError> {
    let email = email.trim().to_ascii_lowercase();
    if crate::identity::is_email(&email) {
        Ok(email)
    } else {
        Err(AdminError::Invalid(format!(
            "{email:?} is not a valid email address"
        )))
    }
}

/// RFC 9700 §2.1: exact match later, so require an absolute URI without a fragment or
/// userinfo, written exactly as a URL parser serializes it (so no browser and no client library
/// can read it differently: no `\\`, no raw Unicode, no `127.1`), whose host is a plain DNS name
/// or IP address; plain HTTP only for loopback (RFC 8252 §7.3); otherwise https, or a
/// reverse-domain private-use scheme with a path (RFC 8252 §7.1).
pub(super) fn check_redirect_uri(uri: &str) -> Result<(), AdminError> {
    let bad = |why: &str| AdminError::Invalid(format!("redirect URI {uri:?} {why}"));
    if uri.len() > 2000 {
        return Err(bad("is too long"));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let url = url::Url::parse(uri).map_err(|_| bad("is not an absolute URI"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain userinfo (user@ or user:password@)"));
    }
    if url.as_str() != uri {
        return Err(bad(&format!(
            "must be written in its normal form: {:?}",
            url.as_str()
        )));
    }
    if url.host().is_some_and(|h| !plain_host(&h)) {
        return Err(bad(
            "must name a plain DNS host (letters, digits, '-', '.') or an IP address",
        ));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(url.host()) => Ok(()),
        "http" => Err(bad("must use https (http is allowed only for loopback)")),
        scheme
            if scheme.contains('.')
                && url.host().is_none()
                && !url.cannot_be_a_base()
                && url.path().starts_with('/') =>
        {
            Ok(())
        }
        _ => Err(bad(
            "must be https, loopback http, or a private-use scheme such as com.example.app:/cb",
        )),
    }
}

/// `localhost` or a loopback address: where plain HTTP is allowed (RFC 8252 §7.3).
fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A host a URL parser accepted, restricted further to what DNS names and IP literals contain:
/// no `*`, `;`, `,`, quotes or other characters a CSP or a redirect could read differently.
fn plain_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        }
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => true,
    }
}

/// A frame origin is exactly an origin (`scheme://host[:port]`): https (http only for loopback), a plain DNS
/// host or IP address, no path, query, fragment, userinfo or wildcard, and written as browsers
/// serialize it, since it goes into a CSP `frame-ancestors` list as is.
pub(super) fn check_origin(origin: &str) -> Result<(), AdminError> {
    let bad = || {
        AdminError::Invalid(format!(
            "{origin:?} is not an origin: give scheme://host[:port] (http or https), no path, \
             no wildcard"
        ))
    };
    if origin.len() > 300 || origin.chars().any(|c| c.is_whitespace() || c == '*') {
        return Err(bad());
    }
    let url = url::Url::parse(origin).map_err(|_| bad())?;
    // Like redirect URIs: http only for loopback, or a network attacker could frame the pages.
    if url.scheme() == "http" && !is_loopback(url.host()) {
        return Err(bad());
    }
    if !matches!(url.scheme(), "http" | "https")
        || !url.host().is_some_and(|h| plain_host(&h))
        || !url.username().is_empty()
        || url.password().is_some()
        || url.origin().ascii_serialization() != origin
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exactly_origins() {
        for good in [
            "https://a.example",
            "http://localhost:3000",
            "https://a.example:8443",
        ] {
            assert!(check_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "https://a.example;script-src",
            "https://a,b.example",
            "https://a'b.example",
            "https://ü.example",
            "http://app.example",
            "https://a.example *",
            "*",
            "https://*.example",
            "http://",
            "https://",
            "https://a.example/",
            "https://a.example/path",
            "https://u@a.example",
            "ftp://a.example",
            "a.example",
            "HTTPS://A.EXAMPLE",
            "",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_follow_the_bcp() {
        assert!(check_redirect_uri("http://127.0.0.1:80@evil.example/cb").is_err());
        assert!(check_redirect_uri("https://user:pw@app.example/cb").is_err());
        assert!(check_redirect_uri("http://127.0.0.2/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]:9000/cb").is_ok());
        assert!(check_redirect_uri("http://localhost.evil.example/cb").is_err());
        assert!(check_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(check_redirect_uri("https://app.example/cb ").is_err());
        for odd in [
            "http://127.0.0.1\\@evil.example/cb",
            "https://*.example/cb",
            "https://ü.example/cb",
            "https://a.example/\u{202e}cb",
            "HTTP://127.0.0.1/CB",
            "http:/127.0.0.1/cb",
            "http://0x7f000001/cb",
            "http://2130706433/cb",
            "http://127.1/cb",
            "java.script:alert(1)",
            "data.x:text/html,<script>",
            "https://a;b.example/cb",
        ] {
            assert!(check_redirect_uri(odd).is_err(), "{odd}");
        }
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:9000/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(check_email(" A@B.example ").unwrap(), "a@b.example");
        assert!(check_email("no-at-sign").is_err());
        assert!(check_email("a:b@c.example").is_err());
    }
}
