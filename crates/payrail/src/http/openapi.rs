//! The OpenAPI 3.1 document of the partner API (`/api/AOP/…`), the
//! operator API (`/admin/v1/…`), the upstream's callback and the sandbox's
//! hand control: served at `GET /openapi.json` and printed by `payrail
//! openapi`, the same bytes.
//!
//! Built with `utoipa` from the handlers' own types: every answer a handler
//! serialises derives `ToSchema` where it is declared, and each handler
//! module lists its types in a `schemas` function (the types stay private
//! to it). The partner API's requests are read field by field (aliases,
//! case-insensitive names: see [`super::partner_call`]), so their shapes
//! are written here ([`partner`]), as are the two status pages' answers,
//! whose types live in `payrail-client` (a unit test holds each to the real
//! answer). The operations ([`partner::operations`], [`admin::operations`])
//! are tables beside the router; the API tests hold the two to each other
//! in both directions, send every example to a server and check the answer
//! against the schema the document declares for its status
//! ([`check::validate`]).

mod admin;
mod beyond;
pub mod check;
mod partner;

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use serde_json::Value;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, KnownFormat, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder, Schema, SchemaFormat,
};

use super::admin_auth::ROUTE_ROLES;

/// A partner's registration id, as `RegistrationId::parse` reads it.
pub(crate) const REGISTRATION_ID: &str = "^[Aa][Oo][Pp]-[0-9]{1,15}$";

/// Named schemas, as `ToSchema` collects them.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// Pushes each type's schema, and the schemas it refers to, onto `out`.
macro_rules! collect {
    ($out:ident; $($t:ty),* $(,)?) => {
        $(
            <$t as utoipa::ToSchema>::schemas($out);
            $out.push((<$t as utoipa::ToSchema>::name().into_owned(), <$t as utoipa::PartialSchema>::schema()));
        )*
    };
}
pub(crate) use collect;

/// The document, as served and printed (pretty JSON and a final newline).
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| format!("{}\n", build().to_pretty_json().unwrap_or_default()))
}

/// `GET /openapi.json`: no authentication.
pub async fn serve() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// The utoipa document.
fn build() -> OpenApi {
    let mut schemas: Schemas = Vec::new();
    partner::schemas(&mut schemas);
    beyond::schemas(&mut schemas);
    super::dmt_v1::schemas(&mut schemas);
    super::beneficiaries::schemas(&mut schemas);
    super::penny_drop::schemas(&mut schemas);
    super::bbps::schemas(&mut schemas);
    super::error::schemas(&mut schemas);
    super::upstream::schemas(&mut schemas);
    super::admin::schemas(&mut schemas);
    super::admin_audit::schemas(&mut schemas);
    super::admin_events::schemas(&mut schemas);
    super::admin_held::schemas(&mut schemas);
    super::admin_reconcile::schemas(&mut schemas);
    super::admin_money::schemas(&mut schemas);
    super::admin_partners::schemas(&mut schemas);
    super::admin_search::schemas(&mut schemas);
    let mut paths = Paths::new();
    for op in partner::operations().into_iter().chain(beyond::operations()).chain(admin::operations()) {
        let method = op.method.clone();
        let path = op.path;
        paths.add_path_operation(path, vec![method], op.into_operation());
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "Token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Token",
                "The partner's token: a JWT signed HS256 with the partner's secret, claims `timestamp` (unix seconds, \
             within 300 s of the server's clock), `partnerId` (the body's `RegistrationID`) and `reqid` (unique per \
             partner for 10 minutes). A partner without `require_token` calling from its allowlist sends none (the \
             demo's AOP-554 from loopback). An optional `Authorisedkey` header must match where the partner has one.",
            ))),
        )
        .security_scheme(
            "AdminBearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An operator's personal token (`prt_<id>_<secret>`) or the bootstrap token \
                         (PAYRAIL_ADMIN_TOKEN, an admin). Each operation's least role is `x-payrail-role` \
                         (viewer < operator < admin), from the table ROUTE_ROLES.",
                    ))
                    .build(),
            ),
        )
        .build();
    let tags = [
        ("DMT status", "The seed status page of DMT transfers (SPEC §4)."),
        ("BBPS status", "The seed status page of bill payments (SPEC §5)."),
        ("DMT V1", "Remitters, beneficiaries, OTP-confirmed transfers and refunds (docs/API.md)."),
        ("BBPS", "Billers, bill fetch and bill payment (docs/API.md)."),
        ("Upstream", "The upstream's callback and the sandbox's hand control."),
        ("Operator: transactions", "Test transactions and state changes."),
        ("Operator: partners", "Partners, their credentials, callbacks, wallets and fee plans."),
        ("Operator: events", "Partner callback events and the upstream's health."),
        ("Operator: held work", "Transactions waiting for an operator."),
        ("Operator: search and audit", "Search, timelines, the ledger check and the audit log."),
    ];
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("payrail")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "AOPay-compatible partner API for DMT money transfers and BBPS bill payments, and payrail's \
                     operator API. Partner endpoints are POST with a JSON body (read as JSON whatever the \
                     Content-Type), paths match in any case and with a trailing slash, every refusal is \
                     `{\"status\":false,\"response_code\":N,\"message\":\"…\"}`. See docs/API.md and docs/WIRE.md.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags.into_iter().map(|(name, about)| TagBuilder::new().name(name).description(Some(about)).build())))
        .build()
}

/// One item of a transaction's timeline (`services::search::TimelineItem`,
/// serialised by hand): `at` and `kind`, then the fields of its kind
/// (docs/API.md, "Operator search and timelines").
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A shape only: it describes the items, never holds one.
pub(crate) struct TimelineEntry {
    /// India time.
    at: String,
    /// `created`, `status`, `upstream_submission`, `upstream_poll`, `upstream_callback`,
    /// `operator_action`, `audit`, `journal`, `partner_event`, `delivery_attempt`, `poll_due`.
    kind: String,
}

/// One operation of the document.
pub(crate) struct Op {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    body: Option<Body>,
    params: Vec<Parameter>,
    security: Security,
    answers: Vec<Answer>,
}

/// A request body: its schema and the documented sample.
struct Body {
    schema: &'static str,
    example: Option<&'static str>,
    required: bool,
    content_type: &'static str,
}

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Security {
    /// A partner: `Token`, or none from an allowlisted address for a partner without tokens.
    Partner,
    /// An operator's bearer token; the role is added from [`ROUTE_ROLES`].
    Operator,
    /// The upstream's own signed callback: checked by the provider, not a scheme here.
    Upstream,
}

/// One answer: a status, what it means, its schema (several: any of them),
/// and a documented sample.
struct Answer {
    status: u16,
    description: &'static str,
    schemas: &'static [&'static str],
    example: Option<&'static str>,
    content_type: &'static str,
}

impl Op {
    fn new(method: HttpMethod, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        let security = if path.starts_with("/api/") { Security::Partner } else { Security::Operator };
        Op { method, path, tag, summary, body: None, params: Vec::new(), security, answers: Vec::new() }
    }

    fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new(HttpMethod::Post, path, tag, summary)
    }

    fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new(HttpMethod::Get, path, tag, summary)
    }

    fn put(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new(HttpMethod::Put, path, tag, summary)
    }

    fn delete(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new(HttpMethod::Delete, path, tag, summary)
    }

    /// A required JSON body of `schema`, with a sample.
    fn body(mut self, schema: &'static str, example: &'static str) -> Op {
        self.body = Some(Body { schema, example: Some(example), required: true, content_type: "application/json" });
        self
    }

    /// A required body of another media type (a bank file's CSV).
    fn text_body(mut self, schema: &'static str, content_type: &'static str) -> Op {
        self.body = Some(Body { schema, example: None, required: true, content_type });
        self
    }

    /// An optional JSON body of `schema`.
    fn optional_body(mut self, schema: &'static str, example: Option<&'static str>) -> Op {
        self.body = Some(Body { schema, example, required: false, content_type: "application/json" });
        self
    }

    fn security(mut self, security: Security) -> Op {
        self.security = security;
        self
    }

    /// A path parameter, with the value the examples use.
    fn path_param(mut self, name: &'static str, integer: bool, example: Value, about: &'static str) -> Op {
        let schema = ObjectBuilder::new().schema_type(if integer { Type::Integer } else { Type::String });
        let schema = if integer {
            schema.format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        } else {
            schema
        };
        self.params.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(about))
                .schema(Some(schema.build()))
                .example(Some(example))
                .build(),
        );
        self
    }

    /// The partner path parameter `id`, with the value the examples use.
    fn partner_param(mut self, example: &'static str) -> Op {
        let schema = ObjectBuilder::new().schema_type(Type::String).pattern(Some(REGISTRATION_ID));
        self.params.push(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The partner's registration id, `AOP-<n>`."))
                .schema(Some(schema.build()))
                .example(Some(Value::String(example.into())))
                .build(),
        );
        self
    }

    /// The path parameter `kind`: `dmt` or `bbps`.
    fn kind_param(mut self) -> Op {
        let schema = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["dmt", "bbps"]));
        self.params.push(
            ParameterBuilder::new()
                .name("kind")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("`dmt` (the id is an ackno) or `bbps` (a txnid)."))
                .schema(Some(schema.build()))
                .example(Some(Value::String("dmt".into())))
                .build(),
        );
        self
    }

    /// Optional query parameters.
    fn query(mut self, params: Vec<Parameter>) -> Op {
        self.params.extend(params);
        self
    }

    /// An answer in JSON.
    fn answer(mut self, status: u16, description: &'static str, schemas: &'static [&'static str]) -> Op {
        self.answers.push(Answer { status, description, schemas, example: None, content_type: "application/json" });
        self
    }

    /// An answer in JSON with a documented sample.
    fn sample(
        mut self,
        status: u16,
        description: &'static str,
        schemas: &'static [&'static str],
        example: &'static str,
    ) -> Op {
        self.answers.push(Answer {
            status,
            description,
            schemas,
            example: Some(example),
            content_type: "application/json",
        });
        self
    }

    /// A CSV answer.
    fn csv(mut self, status: u16, description: &'static str) -> Op {
        self.answers.push(Answer {
            status,
            description,
            schemas: &[],
            example: None,
            content_type: "text/csv; charset=utf-8",
        });
        self
    }

    /// Every answer is refused in the one refusal shape.
    fn refusals(mut self, statuses: &[(u16, &'static str)]) -> Op {
        for &(status, description) in statuses {
            self = self.answer(status, description, &["Refusal"]);
        }
        self
    }

    /// The refusals every operation of its kind may give.
    fn common_refusals(self) -> Op {
        let common: &[(u16, &'static str)] = match self.security {
            Security::Partner => &[
                (400, "A malformed body or field (code 8, the message names it); nothing written."),
                (401, "Authentication failed (code 11), or a bad token (code 7 or 10)."),
                (429, "Too many requests, or failed authentications from this address (code 9), with Retry-After."),
                (500, "Internal failure (code 9)."),
                (503, "The store is unavailable (code 9), with Retry-After."),
            ],
            Security::Operator => &[
                (400, "A bad parameter or field (code 8, the message names it); nothing written."),
                (401, "No, a wrong, an expired or a revoked token (code 11)."),
                (403, "The role is too low (code 11)."),
                (429, "Too many failed authentications from this address (code 9), with Retry-After."),
                (500, "Internal failure (code 9)."),
                (503, "The store is unavailable (code 9), with Retry-After."),
            ],
            Security::Upstream => &[
                (429, "Too many failed authentications from this address (code 9), with Retry-After."),
                (500, "Internal failure (code 9)."),
            ],
        };
        self.refusals(common)
    }

    fn into_operation(self) -> Operation {
        let op = self.common_refusals();
        let mut builder = OperationBuilder::new()
            .tag(op.tag)
            .summary(Some(op.summary))
            .operation_id(Some(operation_id(&op.method, op.path)))
            .parameters(Some(op.params));
        if let Some(body) = op.body {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(body.schema)))
                .example(body.example.map(parse_example))
                .build();
            let required = if body.required { Required::True } else { Required::False };
            builder = builder.request_body(Some(
                RequestBodyBuilder::new().content(body.content_type, content).required(Some(required)).build(),
            ));
        }
        let mut answers = op.answers;
        answers.sort_by_key(|a| a.status);
        let mut responses: Vec<(u16, ResponseBuilder)> = Vec::new();
        for answer in answers {
            let content = match answer.schemas {
                [] => ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String).build())),
                [one] => ContentBuilder::new().schema(Some(Ref::from_schema_name(*one))),
                several => ContentBuilder::new().schema(Some(Schema::AnyOf(
                    several
                        .iter()
                        .fold(utoipa::openapi::schema::AnyOfBuilder::new(), |any, name| {
                            any.item(Ref::from_schema_name(*name))
                        })
                        .build(),
                ))),
            };
            let content = content.example(answer.example.map(parse_example)).build();
            match responses.last_mut() {
                // A second media type of the same status (JSON or CSV).
                Some((status, response)) if *status == answer.status => {
                    *response = std::mem::take(response).content(answer.content_type, content);
                }
                _ => responses.push((
                    answer.status,
                    ResponseBuilder::new().description(answer.description).content(answer.content_type, content),
                )),
            }
        }
        for (status, response) in responses {
            builder = builder.response(status.to_string(), response.build());
        }
        let securities = match op.security {
            Security::Partner => {
                vec![SecurityRequirement::new("Token", Vec::<String>::new()), SecurityRequirement::default()]
            }
            Security::Operator => vec![SecurityRequirement::new("AdminBearer", Vec::<String>::new())],
            Security::Upstream => vec![SecurityRequirement::default()],
        };
        // The operator API's least role, from the one table requests are checked against.
        let method = method_name(&op.method).to_ascii_uppercase();
        if let Some(route) = ROUTE_ROLES.iter().find(|r| r.method == method && r.path == op.path) {
            let role = Value::String(route.role.to_string());
            builder = builder.extensions(Some(Extensions::from_iter([("x-payrail-role", role)])));
        }
        builder.securities(Some(securities)).build()
    }
}

/// A sample written in this module: JSON by construction (a unit test parses every one).
fn parse_example(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()))
}

/// `post_api_aop_dmtv1_transactionstatus`, `get_admin_v1_dmt_ackno`, …
fn operation_id(method: &HttpMethod, path: &str) -> String {
    let method = method_name(method);
    let words: Vec<String> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    format!("{method}_{}", words.join("_"))
}

/// `get`, `post`, …
fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Put => "put",
        HttpMethod::Post => "post",
        HttpMethod::Delete => "delete",
        HttpMethod::Options => "options",
        HttpMethod::Head => "head",
        HttpMethod::Patch => "patch",
        HttpMethod::Trace => "trace",
    }
}

/// A query parameter: optional, a string (not empty) unless `integer` (1 or more).
fn query_param(name: &'static str, integer: bool, about: &'static str) -> Parameter {
    let schema = match integer {
        true => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
        false => ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)),
    }
    .build();
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(about))
        .schema(Some(schema))
        .build()
}

/// An optional query parameter: a transaction's number.
fn number_query(name: &'static str, about: &'static str) -> Parameter {
    let schema =
        ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(about))
        .schema(Some(schema.build()))
        .build()
}

/// An optional query parameter, one of `values`.
fn enum_query(name: &'static str, values: &[&'static str], about: &'static str) -> Parameter {
    let schema = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())).build();
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(about))
        .schema(Some(schema))
        .build()
}

/// A required query parameter matching `pattern`.
fn required_query(name: &'static str, pattern: &'static str, about: &'static str) -> Parameter {
    let schema = ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).build();
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .description(Some(about))
        .schema(Some(schema))
        .build()
}

/// The operations the document has, as (`"POST"`, `"/api/AOP/…"`), for tests.
pub fn operations() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(document()).unwrap_or(Value::Null);
    let mut found = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                if method != "parameters" {
                    found.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
