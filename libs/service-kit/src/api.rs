//! The OpenAPI 3.1 description of each service, generated from its code: every route is an
//! annotated handler registered through a `utoipa_axum` router, so a route cannot exist without
//! its description. This module holds what every description shares: the error shape and the
//! statuses that carry it, the page of a list, the admin token's security scheme, and the
//! assembly of a service's document (its routes plus health, metrics, the audit log and
//! `GET /openapi.json` itself).

use std::borrow::Cow;

use utoipa::openapi::path::OperationBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, InfoBuilder, KnownFormat, OpenApi, RefOr, ResponseBuilder,
    SchemaFormat,
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;

pub use crate::error::{ErrorBody, ErrorInner};
pub use crate::extract::Page;

/// The name of the admin token's security scheme (`Authorization: Bearer <ADMIN_TOKEN>`).
pub const ADMIN: &str = "admin_token";

/// A cursor's schema: what `nextCursor` holds in a page of this kind of item.
pub trait CursorSchema {
    fn cursor() -> RefOr<Schema>;
}

impl CursorSchema for uuid::Uuid {
    fn cursor() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .into()
    }
}

impl CursorSchema for i64 {
    fn cursor() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .into()
    }
}

impl CursorSchema for shared_events::ProductId {
    fn cursor() -> RefOr<Schema> {
        shared_events::ProductId::schema()
    }
}

impl<T: ToSchema, C: CursorSchema> PartialSchema for Page<T, C> {
    fn schema() -> RefOr<Schema> {
        let next = OneOfBuilder::new()
            .item(C::cursor())
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
            .description(Some(
                "Where the next page starts (pass it as cursor), or null on the last page",
            ));
        ObjectBuilder::new()
            .property(
                "items",
                ArrayBuilder::new().items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    T::name(),
                ))),
            )
            .required("items")
            .property("nextCursor", next)
            .required("nextCursor")
            .into()
    }
}

impl<T: ToSchema, C: CursorSchema> ToSchema for Page<T, C> {
    fn name() -> Cow<'static, str> {
        format!("{}Page", T::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

/// The statuses any route may answer with the error shape: a bad path or query (400), the
/// database unreachable (503).
#[derive(IntoResponses)]
pub enum Errors {
    /// A path or query parameter that does not parse (e.g. an id that is not a UUID).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The service's database could not be reached; try again.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// A resource that may not exist.
#[derive(IntoResponses)]
pub enum NotFound {
    /// No such resource.
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// Parameters or a body that parse but break a rule.
#[derive(IntoResponses)]
pub enum Invalid {
    /// The request is not valid: `details` names each field and what is wrong with it.
    #[response(status = 422)]
    Invalid(ErrorBody),
}

/// What a JSON body may be refused for, besides its content.
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// The body is over 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON (Content-Type: application/json).
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// What an admin call is refused for.
#[derive(IntoResponses)]
pub enum Refused {
    /// No or a wrong `Authorization: Bearer <ADMIN_TOKEN>`.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No admin token is configured: admin calls are disabled.
    #[response(status = 403)]
    Disabled(ErrorBody),
}

/// A state that does not allow what was asked.
#[derive(IntoResponses)]
pub enum Conflict {
    /// The resource is not in a state that allows this (`code` says which rule).
    #[response(status = 409)]
    Conflict(ErrorBody),
}

/// The document of a service from its routes (for the checked-in copy; the running service
/// serves the same, see [`describe`]).
pub fn document<S>(service: &str, about: &str, routes: OpenApiRouter<S>) -> OpenApi
where
    S: Clone + Send + Sync + 'static,
{
    describe(service, about, routes.split_for_parts().1)
}

/// A service's document: the description of its own routes, `api`, and of those every service
/// serves, with its name, version and the shared schemas.
pub fn describe(service: &str, about: &str, mut api: OpenApi) -> OpenApi {
    api.merge(crate::health::document());
    api.merge(crate::audit::document());
    api.paths.add_path_operation(
        "/openapi.json",
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("service")
            .summary(Some("This document: the service's OpenAPI 3.1 description"))
            .operation_id(Some("openapi"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The OpenAPI document")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(
                                ObjectBuilder::new().schema_type(SchemaType::Type(Type::Object)),
                            ))
                            .build(),
                    ),
            )
            .build(),
    );
    api.info = InfoBuilder::new()
        .title(service)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(about))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        ADMIN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("Authorization: Bearer <ADMIN_TOKEN>"))
                .build(),
        ),
    );
    let mut shared = Vec::new();
    ErrorBody::schemas(&mut shared);
    shared.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
    for (name, schema) in shared {
        components.schemas.entry(name).or_insert(schema);
    }
    api
}

/// The document as the file checked into `docs/openapi/<service>.json`: pretty JSON and a final
/// newline.
pub fn render(api: &OpenApi) -> String {
    let mut text = api.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
