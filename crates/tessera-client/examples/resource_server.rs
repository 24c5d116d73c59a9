//! A resource server that accepts Tessera access tokens, verified offline from the JWKS:
//!
//! ```sh
//! cargo run --release -- serve --dev        # Tessera on 127.0.0.1:8080, in one terminal
//! TESSERA_ISSUER=http://127.0.0.1:8080 \
//!   cargo run -p tessera-client --features axum --example resource_server
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" 127.0.0.1:3000/contacts
//! ```
//!
//! `/contacts` needs the `crm` scope; `/me` any valid token. A missing, expired, revoked-key,
//! ID or foreign token gets `401` with `WWW-Authenticate: Bearer error="invalid_token"`, a token
//! without `crm` `403 insufficient_scope`.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tessera_client::axum::{Guard, require_token};
use tessera_client::{AccessClaims, Verifier};

async fn contacts(claims: AccessClaims) -> String {
    format!(
        "contacts of account {} for client {}\n",
        claims.account_id.as_deref().unwrap_or("-"),
        claims.client_id
    )
}

async fn me(claims: AccessClaims) -> axum::Json<AccessClaims> {
    axum::Json(claims)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let issuer = std::env::var("TESSERA_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let verifier = Arc::new(Verifier::new(issuer));
    let app = Router::new()
        .route(
            "/contacts",
            get(contacts).layer(from_fn_with_state(
                Guard::new(Arc::clone(&verifier)).scopes(["crm"]),
                require_token,
            )),
        )
        .route(
            "/me",
            get(me).layer(from_fn_with_state(Guard::new(verifier), require_token)),
        );
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("resource server on http://{listen}");
    axum::serve(listener, app).await
}
