//! Interop with client code nobody here wrote: the `oauth2` crate drives client_credentials,
//! password, refresh, introspection and revocation against Tessera's TLS listener (a test CA
//! made with rcgen), and `jsonwebtoken` verifies Tessera's tokens from the published JWKS alone.

use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, ClientId, ClientSecret, IntrospectionUrl, RefreshToken, ResourceOwnerPassword,
    ResourceOwnerUsername, RevocationUrl, Scope, StandardRevocableToken,
    TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use tessera_core::keys::Alg;
use tessera_core::master::MasterKey;
use tessera_server::tls::TlsFiles;

use crate::support::{TestServer, config};

/// A CA and a `localhost` / `127.0.0.1` certificate it signed, written as PEM files.
pub(crate) fn test_pki(dir: &std::path::Path) -> (TlsFiles, reqwest::Certificate) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    (
        files,
        reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).unwrap(),
    )
}

/// oauth2's transport: any async function from `http::Request` to `http::Response`. This one
/// uses reqwest with the test CA as its only root.
pub(crate) fn transport(
    http: reqwest::Client,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>,
> {
    move |request: oauth2::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (k, v) in response.headers() {
                builder = builder.header(k, v);
            }
            Ok(builder.body(response.bytes().await?.to_vec()).unwrap())
        })
    }
}

#[tokio::test]
async fn the_oauth2_crate_over_tls() {
    let pki = tempfile::tempdir().unwrap();
    let (files, ca) = test_pki(pki.path());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut t = TestServer::start_tls(dir, db, config(), MasterKey::generate(), files).await;
    assert!(t.base.starts_with("https://"));
    let o = t
        .onboard(&[
            "client_credentials",
            "password",
            "refresh_token",
            "token_exchange",
        ])
        .await;

    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    t.http = http.clone();
    // Over HTTPS every response tells the browser to stay on HTTPS.
    let r = http
        .get(format!("{}/healthz", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let send = transport(http.clone());
    let client = BasicClient::new(ClientId::new(o.client_id.clone()))
        .set_client_secret(ClientSecret::new(o.client_secret.clone()))
        .set_token_uri(TokenUrl::new(format!("{}/oauth/token", t.base)).unwrap())
        .set_introspection_url(
            IntrospectionUrl::new(format!("{}/oauth/introspect", t.base)).unwrap(),
        )
        .set_revocation_url(RevocationUrl::new(format!("{}/oauth/revoke", t.base)).unwrap());

    // client_credentials
    let app = client
        .exchange_client_credentials()
        .add_scope(Scope::new("WRITE".into()))
        .request_async(&send)
        .await
        .unwrap();
    assert_eq!(app.expires_in().unwrap().as_secs(), 3600);
    assert!(app.refresh_token().is_none());

    // password (the org admin)
    let user = client
        .exchange_password(
            &ResourceOwnerUsername::new(o.admin_email.clone()),
            &ResourceOwnerPassword::new(o.admin_password.clone()),
        )
        .add_scope(Scope::new("WRITE".into()))
        .request_async(&send)
        .await
        .unwrap();
    assert_eq!(
        crate::support::claims(user.access_token().secret())["token_use"],
        "user_token"
    );
    // a wrong password surfaces as the library's invalid_grant
    let err = client
        .exchange_password(
            &ResourceOwnerUsername::new(o.admin_email.clone()),
            &ResourceOwnerPassword::new("wrong-password-x".into()),
        )
        .request_async(&send)
        .await
        .unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => {
            assert_eq!(
                *r.error(),
                oauth2::basic::BasicErrorResponseType::InvalidGrant
            )
        }
        other => panic!("{other:?}"),
    }

    // refresh: get a refresh token by exchanging the partner's machine token on the wire, then let
    // the library rotate it.
    let acc = t
        .post(
            "/v2/accounts",
            Some(&o.partner.basic()),
            r#"{"name":"Shop"}"#,
        )
        .await
        .data("account_id");
    let machine = t
        .post(
            "/v2/oauth/token",
            Some(&o.partner.basic()),
            &crate::support::machine_token_body("WRITE crm"),
        )
        .await
        .data("access_token");
    let raw: serde_json::Value = http
        .post(format!("{}/oauth/token", t.base))
        .basic_auth(&o.client_id, Some(&o.client_secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("subject_token", machine.as_str()),
                    (
                        "subject_token_type",
                        "urn:wazzup:oauth:token-type:machine_token",
                    ),
                    ("requested_subject", acc.as_str()),
                    ("scope", "WRITE crm"),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = RefreshToken::new(raw["refresh_token"].as_str().unwrap().into());
    let rotated = client
        .exchange_refresh_token(&refresh)
        .request_async(&send)
        .await
        .unwrap();
    let next = rotated.refresh_token().unwrap().clone();
    assert_ne!(next.secret(), refresh.secret());

    // introspection
    let info = client
        .introspect(rotated.access_token())
        .request_async(&send)
        .await
        .unwrap();
    assert!(info.active());
    assert_eq!(info.sub(), Some(acc.as_str()));
    assert_eq!(
        info.client_id().map(|c| c.as_str()),
        Some(o.client_id.as_str())
    );
    let dead = client
        .introspect(&AccessToken::new("not-a-token".into()))
        .request_async(&send)
        .await
        .unwrap();
    assert!(!dead.active());

    // revocation (the refresh token, with its family)
    client
        .revoke_token(StandardRevocableToken::RefreshToken(next.clone()))
        .unwrap()
        .request_async(&send)
        .await
        .unwrap();
    let info = client
        .introspect(rotated.access_token())
        .request_async(&send)
        .await
        .unwrap();
    assert!(
        !info.active(),
        "revoking the family deactivates its access tokens"
    );
    assert!(
        client
            .exchange_refresh_token(&next)
            .request_async(&send)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn jwks_verifies_tokens_of_every_algorithm_with_an_independent_jose_crate() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    for alg in [Alg::ES256, Alg::EdDSA, Alg::RS256] {
        let key = tessera_core::keys::generate_key(alg, &t.master(), 1).unwrap();
        t.store
            .rotate_keys(&key, tessera_core::unix_now(), &[])
            .await
            .unwrap();
        t.settle().await;
        let token = t
            .post(
                "/v2/oauth/token",
                Some(&p.basic()),
                &crate::support::machine_token_body("crm"),
            )
            .await
            .data("access_token");
        let jwks: jsonwebtoken::jwk::JwkSet = t
            .http
            .get(t.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&[t.base.as_str()]);
        v.set_audience(&[t.base.as_str()]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(data.claims["sub"], p.id.as_str());
    }
    let jwks = t.get("/.well-known/jwks.json", None).await;
    let shapes: Vec<_> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let mut names: Vec<&str> = k.as_object().unwrap().keys().map(|s| s.as_str()).collect();
            names.sort();
            serde_json::json!({"alg": k["alg"], "kty": k["kty"], "members": names})
        })
        .collect();
    insta::assert_json_snapshot!("jwks_shapes", shapes);
}
