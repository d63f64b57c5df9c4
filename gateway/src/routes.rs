//! The route catalogue and the API contract. Every route of both listeners
//! is declared through [`route_table!`], which registers it with actix and
//! lists it in one go, so [`catalogue`] is exactly what is served and the
//! OpenAPI document (`openapi.json`, served at `GET /admin/openapi.json`)
//! can be checked against it by a test. This module owns no handler and
//! decides nothing about authentication: the scopes that mount the tables
//! (startup.rs, console.rs) do.

use std::sync::OnceLock;

use actix_web::dev::ResourceDef;
use actix_web::{HttpRequest, HttpResponse, http::header, web};

use crate::startup::AppState;

/// The OpenAPI 3.1 document of both listeners, kept by hand beside the
/// code; `the_document_lists_exactly_the_routes_served` fails when the two
/// drift apart.
pub const OPENAPI: &str = include_str!("openapi.json");

/// One registered route: HTTP method (upper case) and the path as actix
/// matches it, relative to the scope it is mounted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Listener {
    Public,
    Admin,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Admin => "admin",
        }
    }
}

/// Declares a table of routes: a `const` listing them and a configure
/// function registering them. Methods are actix's lower-case route
/// constructors (`get`, `post`, `delete`, ...).
macro_rules! route_table {
    ($(#[$meta:meta])* $vis:vis fn $configure:ident, const $table:ident = [
        $($method:ident $path:literal => $handler:expr),* $(,)?
    ]) => {
        $vis const $table: &[$crate::routes::RouteSpec] = &[$(
            $crate::routes::RouteSpec {
                method: $crate::routes::upper!($method),
                path: $path,
            },
        )*];

        $(#[$meta])*
        $vis fn $configure(config: &mut ::actix_web::web::ServiceConfig) {
            $(config.route($path, ::actix_web::web::$method().to($handler));)*
        }
    };
}
pub(crate) use route_table;

macro_rules! upper {
    (get) => {
        "GET"
    };
    (post) => {
        "POST"
    };
    (put) => {
        "PUT"
    };
    (patch) => {
        "PATCH"
    };
    (delete) => {
        "DELETE"
    };
}
pub(crate) use upper;

/// Every table, where it is mounted, and whether only with the sandbox on.
/// A new table must be added here, or the contract test cannot see it.
const MOUNTED: &[(Listener, &str, &[RouteSpec], bool)] = &[
    (Listener::Public, "", crate::webhook::PUBLIC_ROUTES, false),
    (Listener::Public, "", crate::sandbox::SANDBOX_ROUTES, true),
    (
        Listener::Admin,
        "/console",
        crate::console::CONSOLE_ROUTES,
        false,
    ),
    (Listener::Admin, "", crate::console::SIGNED_ROUTES, false),
    (
        Listener::Admin,
        "",
        crate::console::ADMIN_HANDOFF_ROUTES,
        false,
    ),
    (
        Listener::Admin,
        "",
        crate::channels::admin_api::CHANNEL_ROUTES,
        false,
    ),
    (Listener::Admin, "", crate::admin::ADMIN_ROUTES, false),
];

/// Every route served, as `(listener, METHOD, path)` with paths in OpenAPI
/// form (`{path:.*}` becomes `{path}`).
pub fn catalogue() -> Vec<(Listener, &'static str, String)> {
    let mut routes = Vec::new();
    for (listener, prefix, table, _) in MOUNTED {
        for route in *table {
            routes.push((
                *listener,
                route.method,
                openapi_path(&format!("{prefix}{}", route.path)),
            ));
        }
    }
    routes.sort();
    routes
}

/// `/a/{name:regex}/b` -> `/a/{name}/b`.
fn openapi_path(actix: &str) -> String {
    let mut out = String::with_capacity(actix.len());
    let mut in_pattern = false;
    let mut depth = 0usize;
    for c in actix.chars() {
        if in_pattern {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        in_pattern = false;
                        out.push('}');
                    }
                }
                _ => {}
            }
            continue;
        }
        match c {
            '{' => {
                depth += 1;
                out.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                out.push(c);
            }
            ':' if depth > 0 => in_pattern = true,
            _ => out.push(c),
        }
    }
    out
}

struct Matcher {
    listener: Listener,
    sandbox_only: bool,
    method: &'static str,
    pattern: ResourceDef,
}

fn matchers() -> &'static [Matcher] {
    static MATCHERS: OnceLock<Vec<Matcher>> = OnceLock::new();
    MATCHERS.get_or_init(|| {
        MOUNTED
            .iter()
            .flat_map(|(listener, prefix, table, sandbox_only)| {
                table.iter().map(move |route| Matcher {
                    listener: *listener,
                    sandbox_only: *sandbox_only,
                    method: route.method,
                    pattern: ResourceDef::new(format!("{prefix}{}", route.path)),
                })
            })
            .collect()
    })
}

/// The methods `path` is served with on `listener`, in table order.
pub fn allowed_methods(listener: Listener, path: &str, sandbox: bool) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = Vec::new();
    for matcher in matchers() {
        if matcher.listener == listener
            && (sandbox || !matcher.sandbox_only)
            && matcher.pattern.is_match(path)
            && !methods.contains(&matcher.method)
        {
            methods.push(matcher.method);
        }
    }
    // Tables list routes in the order actix should try them (busiest
    // first); `Allow` names methods in one fixed order whatever that is.
    const ORDER: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
    methods.sort_by_key(|method| ORDER.iter().position(|known| known == method));
    methods
}

/// What a request no route took gets: 405 with `Allow` when its path is
/// served with other methods (RFC 9110, 15.5.6), 404 otherwise. actix's
/// own answer is a 404 either way, because `App::route` turns the method
/// into a guard on the whole resource.
fn fallback(listener: Listener, req: &HttpRequest) -> HttpResponse {
    let sandbox = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings.sandbox);
    let methods = allowed_methods(listener, req.match_info().as_str(), sandbox);
    if methods.is_empty() {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such route\n");
    }
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, methods.join(", ")))
        .content_type("text/plain; charset=utf-8")
        .body("method not allowed\n")
}

/// Default service of the public listener.
pub async fn public_fallback(req: HttpRequest) -> HttpResponse {
    fallback(Listener::Public, &req)
}

/// Default service of the admin listener and its scopes.
pub async fn admin_fallback(req: HttpRequest) -> HttpResponse {
    fallback(Listener::Admin, &req)
}

/// Query strings that do not fit a handler's parameters: a JSON 400 like
/// every other refusal, instead of actix's plain text.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let answer = HttpResponse::BadRequest().json(serde_json::json!({
            "error": "invalid query string",
            "detail": error.to_string(),
            "hint": "see GET /admin/openapi.json for the parameters and their ranges",
        }));
        actix_web::error::InternalError::from_response(error, answer).into()
    })
}

/// JSON bodies that do not fit: a JSON 400 (413 when too large). serde's
/// own message can quote a value, and a console form carries a token, so
/// only the kind of error and where it is are told.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().error_handler(|error, _req| {
        let answer = json_refusal(&error);
        actix_web::error::InternalError::from_response(error, answer).into()
    })
}

/// The answer to a JSON body that does not fit (see [`json_config`]).
pub fn json_refusal(error: &actix_web::error::JsonPayloadError) -> HttpResponse {
    use actix_web::error::JsonPayloadError;
    let (status, detail) = match error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => (
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "the body is too large".to_owned(),
        ),
        JsonPayloadError::ContentType => (
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json".to_owned(),
        ),
        JsonPayloadError::Deserialize(inner) | JsonPayloadError::Serialize(inner) => {
            let kind = match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    "the body is not valid JSON"
                }
                serde_json::error::Category::Data | serde_json::error::Category::Io => {
                    "the body has a missing, unknown or mistyped field"
                }
            };
            (
                actix_web::http::StatusCode::BAD_REQUEST,
                format!("{kind} (line {}, column {})", inner.line(), inner.column()),
            )
        }
        _ => (
            actix_web::http::StatusCode::BAD_REQUEST,
            "the body could not be read".to_owned(),
        ),
    };
    HttpResponse::build(status).json(serde_json::json!({
        "error": "invalid body",
        "detail": detail,
    }))
}

/// Parses a JSON body read as bytes, for handlers that must check the
/// caller before they look at the body; refusals match [`json_config`]'s.
pub fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, Box<HttpResponse>> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<actix_web::mime::Mime>().ok())
        .is_some_and(|m| {
            m.subtype() == actix_web::mime::JSON || m.suffix() == Some(actix_web::mime::JSON)
        });
    if !json {
        return Err(Box::new(json_refusal(
            &actix_web::error::JsonPayloadError::ContentType,
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(json_refusal(
            &actix_web::error::JsonPayloadError::Deserialize(e),
        ))
    })
}

/// `GET /admin/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(OPENAPI)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    fn documented() -> BTreeSet<(String, String, String)> {
        let doc = document();
        let mut operations = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let listener = operation["x-listener"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no x-listener"))
                    .to_owned();
                operations.insert((listener, method.to_uppercase(), path.clone()));
            }
        }
        operations
    }

    #[test]
    fn the_document_lists_exactly_the_routes_served() {
        let served: BTreeSet<(String, String, String)> = catalogue()
            .into_iter()
            .map(|(listener, method, path)| (listener.as_str().to_owned(), method.to_owned(), path))
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let phantom: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && phantom.is_empty(),
            "served but not in openapi.json: {undocumented:#?}\n\
             in openapi.json but not served: {phantom:#?}"
        );
    }

    #[test]
    fn no_route_is_registered_twice() {
        let mut seen = BTreeMap::new();
        for route in catalogue() {
            *seen.entry(route).or_insert(0) += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{twice:?}");
    }

    /// A route added with a bare `.route(...)` would be served without
    /// being in the catalogue, so the contract test could not see it.
    #[test]
    fn routes_are_only_registered_through_tables() {
        let sources = [
            ("startup.rs", include_str!("startup.rs")),
            ("admin.rs", include_str!("admin.rs")),
            ("console.rs", include_str!("console.rs")),
            ("webhook.rs", include_str!("webhook.rs")),
            ("sandbox.rs", include_str!("sandbox.rs")),
            (
                "channels/admin_api.rs",
                include_str!("channels/admin_api.rs"),
            ),
        ];
        for (name, source) in sources {
            let code = source.split("#[cfg(test)]").next().unwrap_or(source);
            for needle in [".route(\"", "web::resource("] {
                assert!(
                    !code.contains(needle),
                    "{name} registers a route with `{needle}`: declare it in a route_table! instead"
                );
            }
        }
    }

    #[test]
    fn every_operation_is_described_and_secured_by_known_schemes() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"]
            .as_object()
            .expect("securitySchemes")
            .keys()
            .map(String::as_str)
            .collect();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                let responses = operation["responses"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{id}: no responses"));
                assert!(!responses.is_empty(), "{id}: no responses");
                let security = operation
                    .get("security")
                    .or_else(|| doc.get("security"))
                    .and_then(Value::as_array)
                    .unwrap_or_else(|| panic!("{id}: say what authenticates it (or [])"));
                for requirement in security {
                    for scheme in requirement.as_object().expect("requirement").keys() {
                        assert!(schemes.contains(scheme.as_str()), "{id}: unknown {scheme}");
                    }
                }
                // Authenticated operations document the refusals.
                if !security.is_empty() {
                    assert!(
                        responses.contains_key("401"),
                        "{id} is authenticated but documents no 401"
                    );
                }
            }
        }
    }

    #[test]
    fn other_methods_on_a_served_path_are_named_in_allow() {
        assert_eq!(
            allowed_methods(Listener::Public, "/webhooks/telegram/tg", false),
            vec!["GET", "POST"]
        );
        assert_eq!(
            allowed_methods(Listener::Admin, "/admin/conversations/telegram:tg:1", false),
            vec!["GET", "DELETE"]
        );
        assert_eq!(
            allowed_methods(Listener::Admin, "/console", false),
            vec!["GET"]
        );
        assert!(allowed_methods(Listener::Public, "/sandbox/messages", false).is_empty());
        assert_eq!(
            allowed_methods(Listener::Public, "/sandbox/messages", true),
            vec!["GET"]
        );
        assert!(allowed_methods(Listener::Public, "/admin/channels", true).is_empty());
        assert!(allowed_methods(Listener::Admin, "/nowhere", true).is_empty());
    }

    #[test]
    fn actix_patterns_become_openapi_templates() {
        assert_eq!(
            openapi_path("/sandbox/messenger/{path:.*}"),
            "/sandbox/messenger/{path}"
        );
        assert_eq!(
            openapi_path("/webhooks/{platform}/{channel}"),
            "/webhooks/{platform}/{channel}"
        );
        assert_eq!(openapi_path("/a/{id:[0-9]{2}}/b"), "/a/{id}/b");
    }
}
