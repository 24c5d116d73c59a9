//! What the admin API's OpenAPI document says of every operation without each path repeating
//! it: the admin-token bearer scheme, and the RFC 9457 problems any call may answer.

use utoipa::Modify;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

pub struct Conventions;

/// The problems every call may answer (a call answers only those its route can reach, but
/// the token check, the body reader and the store are shared by all).
const PROBLEMS: [(&str, &str); 8] = [
    ("400", "The body or query could not be read (`bad-request`)"),
    ("401", "No live admin token (`unauthenticated`)"),
    ("403", "The token lacks the scope (`insufficient-scope`)"),
    ("404", "Not found (`not-found`)"),
    ("409", "Already exists, or an Idempotency-Key conflict"),
    ("413", "The body is over 64 KiB (`too-large`)"),
    ("422", "The input was refused (`validation`)"),
    ("503", "Temporarily unavailable (`unavailable`)"),
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "admin_token",
            Vec::<String>::new(),
        )]);
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
                for (status, description) in PROBLEMS {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content(
                                        "application/problem+json",
                                        ContentBuilder::new()
                                            .schema(Some(Ref::from_schema_name("ProblemBody")))
                                            .build(),
                                    )
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}
