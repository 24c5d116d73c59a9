//! Rendering the authorization pages: templates (embedded, autoescaped), security headers
//! (CSP `frame-ancestors` from the client's registered origins, no framing by default;
//! `form-action` limited to Tessera and the client's redirect URIs), cookies (HttpOnly,
//! SameSite=Lax; over HTTPS Secure and `__Host-` prefixed, so no other host can plant one) and
//! CSRF tokens that are a keyed MAC of the browser's session (or, before sign-in, of a random
//! browser id), so a planted cookie cannot forge a form.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::Environment;
use tessera_core::Engine;
use tessera_core::model::Client;
use tessera_core::secret::{ct_eq, random_bytes};

pub const SESSION_COOKIE: &str = "tessera_session";
/// A random id of the browser, which CSRF tokens are bound to before there is a session.
pub const BROWSER_COOKIE: &str = "tessera_browser";
/// Binds a pending request to the browser that began it; the request id follows the prefix.
pub const FLOW_COOKIE: &str = "tessera_flow_";

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
    /// Where its forms may lead: the client's redirect URIs (a form's 303 goes there).
    pub form_targets: Vec<String>,
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
        let (framing_origins, form_targets) = match framing {
            Framing::Nobody => (Vec::new(), Vec::new()),
            Framing::Client(c) => (c.frame_origins.clone(), form_targets(c)),
        };
        Page {
            status: StatusCode::OK,
            body,
            framing_origins,
            form_targets,
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

    /// Set every cookie given (none, for `None`).
    pub fn cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Page {
        self.cookies.extend(cookies);
        self
    }
}

/// The CSP sources a client's forms may lead to: the origins of its redirect URIs (or the
/// scheme of a native app's private-use URI).
pub fn form_targets(client: &Client) -> Vec<String> {
    let mut out: Vec<String> = client
        .redirect_uris
        .iter()
        .filter_map(|uri| match uri.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                Some(format!("{scheme}://{authority}"))
            }
            None => uri.split_once(':').map(|(scheme, _)| format!("{scheme}:")),
        })
        .filter(|s| !s.contains([';', ',', ' ', '\'', '"']))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Headers every page and redirect of the flow carries.
pub fn security_headers(
    headers: &mut HeaderMap,
    framing_origins: &[String],
    form_targets: &[String],
) {
    let ancestors = if framing_origins.is_empty() {
        "'none'".to_string()
    } else {
        framing_origins.join(" ")
    };
    let mut form_action = String::from("'self'");
    for t in form_targets {
        form_action.push(' ');
        form_action.push_str(t);
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
         form-action {form_action}; frame-ancestors {ancestors}"
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
        security_headers(r.headers_mut(), &self.framing_origins, &self.form_targets);
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
    security_headers(r.headers_mut(), framing_origins, &[]);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// A cookie's name on the wire: `__Host-` prefixed over HTTPS (Secure, `Path=/`, no `Domain`),
/// so that no sibling host or plain-HTTP response can set or overwrite it.
pub fn cookie_name(name: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// `Set-Cookie` value; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        cookie_name(name, secure),
        if secure { "; Secure" } else { "" }
    )
}

/// A cookie the browser sent, by the name [`set_cookie`] gave it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str, secure: bool) -> Option<&'a str> {
    let name = cookie_name(name, secure);
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

/// What a CSRF token is bound to: the session cookie when there is one, else the browser id.
fn csrf_binding(headers: &HeaderMap, secure: bool) -> Option<(&'static str, &str)> {
    cookie(headers, SESSION_COOKIE, secure)
        .map(|s| ("csrf:session", s))
        .or_else(|| cookie(headers, BROWSER_COOKIE, secure).map(|b| ("csrf:browser", b)))
}

/// The browser's CSRF token (a keyed MAC of its session, or of its browser id), and the browser
/// cookie to set when it has neither yet.
pub fn csrf_token(engine: &Engine, headers: &HeaderMap, secure: bool) -> (String, Option<String>) {
    match csrf_binding(headers, secure) {
        Some((purpose, value)) => (engine.page_mac(purpose, value), None),
        None => {
            let id = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
            let c = set_cookie(BROWSER_COOKIE, &id, 12 * 3600, secure);
            (engine.page_mac("csrf:browser", &id), Some(c))
        }
    }
}

/// The form's token is the MAC of this browser's session (or browser id): a cross-site form
/// cannot know it, and a planted cookie does not help, since the MAC needs the server's key.
pub fn csrf_ok(
    engine: &Engine,
    headers: &HeaderMap,
    secure: bool,
    submitted: Option<&str>,
) -> bool {
    match (csrf_binding(headers, secure), submitted) {
        (Some((purpose, value)), Some(s)) => {
            ct_eq(engine.page_mac(purpose, value).as_bytes(), s.as_bytes())
        }
        _ => false,
    }
}

/// The cookie that binds pending request `id` to this browser (set at `/authorize`).
pub fn flow_cookie(engine: &Engine, id: &str, max_age: i64, secure: bool) -> String {
    set_cookie(
        &format!("{FLOW_COOKIE}{id}"),
        &engine.page_mac("flow", id),
        max_age,
        secure,
    )
}

/// Forget the flow cookie of a request that ended (approved or denied).
pub fn end_flow_cookie(id: &str, secure: bool) -> String {
    set_cookie(&format!("{FLOW_COOKIE}{id}"), "", 0, secure)
}

/// How many flow cookies (pending requests this browser began) the request carries.
pub fn flow_cookies(headers: &HeaderMap) -> usize {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|kv| {
            let name = kv.trim();
            name.starts_with(FLOW_COOKIE) || name.starts_with("__Host-tessera_flow_")
        })
        .count()
}

/// Whether this browser began pending request `id`.
pub fn flow_ok(engine: &Engine, headers: &HeaderMap, id: &str, secure: bool) -> bool {
    cookie(headers, &format!("{FLOW_COOKIE}{id}"), secure)
        .is_some_and(|v| ct_eq(v.as_bytes(), engine.page_mac("flow", id).as_bytes()))
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
    fn cookies_parse_and_carry_the_host_prefix_over_https() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tessera_browser=b1; __Host-tessera_browser=b2; c=3"),
        );
        assert_eq!(cookie(&h, BROWSER_COOKIE, false), Some("b1"));
        assert_eq!(cookie(&h, BROWSER_COOKIE, true), Some("b2"));
        assert!(set_cookie("s", "v", 5, true).starts_with("__Host-s=v; Path=/;"));
        assert!(set_cookie("s", "v", 5, true).ends_with("Max-Age=5; Secure"));
        assert!(set_cookie("s", "v", 5, false).starts_with("s=v;"));
    }

    #[test]
    fn form_targets_are_the_redirect_origins() {
        let c = Client {
            id: "c".into(),
            partner_id: "p".into(),
            name: "n".into(),
            secret_digest: tessera_core::secret::SecretDigest([0; 32]),
            grant_types: vec![],
            scopes: Default::default(),
            redirect_uris: vec![
                "https://app.example/cb?x=1".into(),
                "https://app.example/other".into(),
                "http://127.0.0.1:9000/cb".into(),
                "com.example.app:/oauth".into(),
            ],
            frame_origins: vec![],
            dev: false,
            pkce_plain: false,
            require_par: false,
            allow_registration: false,
            previous_secret: None,
            disabled: false,
            created_at: 0,
        };
        assert_eq!(
            form_targets(&c),
            [
                "com.example.app:",
                "http://127.0.0.1:9000",
                "https://app.example"
            ]
        );
    }
}
