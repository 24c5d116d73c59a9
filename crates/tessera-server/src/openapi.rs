//! What the OpenAPI 3.1 documents share. Each API's document is generated with `utoipa` from
//! the wire types and the handlers' annotations, in its own module: `/v2/openapi.json` (the
//! partner dialect), `/oauth/openapi.json` (the standard dialect), `/openapi.json` (both
//! public dialects in one) and `/admin/v1/openapi.json` (the admin API). Here: adding each
//! API's error shape and authentication to every operation, rather than on each path, and
//! serving a document.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Give every operation of `openapi` the error answers `errors` (status, description), each
/// a `schema` in `content_type`, where the operation does not describe that status itself.
pub(crate) fn add_errors(
    openapi: &mut OpenApi,
    schema: &str,
    content_type: &str,
    errors: &[(&str, &str)],
) {
    for item in openapi.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            for (status, description) in errors {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    content_type,
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name(schema)))
                                        .build(),
                                )
                                .build(),
                        )
                    });
            }
        }
    }
}

/// Add HTTP authentication schemes and require any one of them on every operation.
pub(crate) fn add_auth(openapi: &mut OpenApi, schemes: &[(&str, HttpAuthScheme)]) {
    let components = openapi.components.get_or_insert_with(Default::default);
    for (name, scheme) in schemes {
        components.add_security_scheme(*name, SecurityScheme::Http(Http::new(scheme.clone())));
    }
    openapi.security = Some(
        schemes
            .iter()
            .map(|(name, _)| SecurityRequirement::new(*name, Vec::<String>::new()))
            .collect(),
    );
}

/// A document as served: public, cacheable for five minutes.
pub(crate) fn serve(doc: OpenApi) -> Response {
    let mut r = Json(doc).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
