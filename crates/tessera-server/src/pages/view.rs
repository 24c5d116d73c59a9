//! Rendering the authorization pages: templates (embedded, autoescaped), security headers
//! (CSP `frame-ancestors` from the client's registered origins, no framing by default), cookies
//! (HttpOnly, SameSite=Lax, Secure over HTTPS) and the double-submit CSRF token.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::Environment;
use tessera_core::model::Client;
use tessera_core::secret::{ct_eq, random_bytes};

pub const SESSION_COOKIE: &str = "tessera_session";
pub const CSRF_COOKIE: &str = "tessera_csrf";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("../../templates/layout.html")),
            ("login.html", include_str!("../../templates/login.html")),
            (
                "register.html",
                include_str!("../../templates/register.html"),
            ),
            ("consent.html", include_str!("../../templates/consent.html")),
            ("grants.html", include_str!("../../templates/grants.html")),
            ("message.html", include_str!("../../templates/message.html")),
            (
                "debug_callback.html",
                include_str!("../../templates/debug_callback.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("embedded templates parse");
        }
        env
    })
}

pub const STYLESHEET: &str = include_str!("../../templates/tessera.css");

/// Who may frame a page: nobody, or the origins registered for the client.
pub enum Framing<'a> {
    Nobody,
    Client(&'a Client),
}

/// A rendered page with Tessera's security headers.
pub struct Page {
    pub status: StatusCode,
    pub body: String,
    pub framing_origins: Vec<String>,
    pub cookies: Vec<String>,
}

impl Page {
    pub fn render(template: &str, ctx: minijinja::Value, framing: Framing<'_>) -> Page {
        let body = env()
            .get_template(template)
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, template, "template failed");
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".into()
            });
        Page {
            status: StatusCode::OK,
            body,
            framing_origins: match framing {
                Framing::Nobody => Vec::new(),
                Framing::Client(c) => c.frame_origins.clone(),
            },
            cookies: Vec::new(),
        }
    }

    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    pub fn cookie(mut self, cookie: String) -> Page {
        self.cookies.push(cookie);
        self
    }
}

/// Headers every page and redirect of the flow carries.
pub fn security_headers(headers: &mut HeaderMap, framing_origins: &[String]) {
    let ancestors = if framing_origins.is_empty() {
        "'none'".to_string()
    } else {
        framing_origins.join(" ")
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
         frame-ancestors {ancestors}"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if framing_origins.is_empty() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::response::Html(self.body)).into_response();
        security_headers(r.headers_mut(), &self.framing_origins);
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// A 303 to `location` with the flow's headers and cookies.
pub fn redirect(location: &str, cookies: Vec<String>, framing_origins: &[String]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    security_headers(r.headers_mut(), framing_origins);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// `Set-Cookie` value; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The browser's CSRF token, and the cookie to set when it has none yet.
pub fn csrf_token(headers: &HeaderMap, secure: bool) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(t) => (t.to_string(), None),
        None => {
            let t = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
            let c = set_cookie(CSRF_COOKIE, &t, 12 * 3600, secure);
            (t, Some(c))
        }
    }
}

/// Double-submit check: the form's token equals the cookie's (SameSite=Lax keeps the cookie off
/// cross-site POSTs, so a forged form cannot carry it).
pub fn csrf_ok(headers: &HeaderMap, submitted: Option<&str>) -> bool {
    match (cookie(headers, CSRF_COOKIE), submitted) {
        (Some(c), Some(s)) => ct_eq(c.as_bytes(), s.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_escapes() {
        let page = Page::render(
            "login.html",
            minijinja::context! { app => "<script>x</script>", request => "r", csrf => "c",
            username => "", error => "" },
            Framing::Nobody,
        );
        assert!(page.body.contains("&lt;script&gt;"));
        assert!(!page.body.contains("<script>x"));
        for t in [
            "register.html",
            "consent.html",
            "grants.html",
            "message.html",
            "debug_callback.html",
        ] {
            let p = Page::render(t, minijinja::context! {}, Framing::Nobody);
            assert!(p.body.starts_with("<!doctype html>"), "{t}");
        }
    }

    #[test]
    fn cookies_parse_and_csrf_compares() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tessera_csrf=tok; b=2"),
        );
        assert_eq!(cookie(&h, "tessera_csrf"), Some("tok"));
        assert!(csrf_ok(&h, Some("tok")));
        assert!(!csrf_ok(&h, Some("other")));
        assert!(!csrf_ok(&HeaderMap::new(), Some("tok")));
        assert!(set_cookie("s", "v", 5, true).ends_with("Max-Age=5; Secure"));
    }
}
