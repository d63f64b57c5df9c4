//! Admin routes for run-time channels (behind the admin listener's token
//! middleware; changing routes need an operator token):
//!
//! - `POST /admin/channels` registers one (JSON body: [`super::AddChannel`]),
//! - `GET /admin/channels/{id}/check` asks the platform about it,
//! - `DELETE /admin/channels/{id}?drop_pending_updates=&keep_webhook=&force=`
//!   unregisters it.
//!
//! Answers are JSON with the `steps` that ran; errors add `error` and `hint`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{AddChannel, Failure, Registrar, RemoveOptions};

crate::routes::route_table! {
    pub fn routes,
    const CHANNEL_ROUTES = [
        post "/admin/channels" => add,
        get "/admin/channels/{id}/check" => check,
        delete "/admin/channels/{id}" => remove,
    ]
}

fn failure(failure: &Failure) -> HttpResponse {
    let status =
        StatusCode::from_u16(failure.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({
        "error": failure.error.to_string(),
        "hint": failure.error.hint(),
        "steps": failure.steps,
    }))
}

fn bad_request(error: &str, hint: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error, "hint": hint, "steps": [] }))
}

async fn add(registrar: web::Data<Registrar>, body: web::Bytes) -> HttpResponse {
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    let request: AddChannel = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(request) => request,
        Err(error) => {
            // serde's own text can quote the offending value (a token), so
            // only the path and unknown-field names are echoed.
            let inner = error.inner().to_string();
            let detail = if inner.starts_with("unknown field") || inner.starts_with("missing field")
            {
                inner
            } else {
                "a value has the wrong type".to_owned()
            };
            return bad_request(
                &format!(
                    "the request body is not a channel registration at '{}': {detail}",
                    error.path()
                ),
                "send JSON like {\"platform\": \"telegram\", \"id\": \"shop-telegram\", \"bot_token\": \"...\", \"public_url\": \"https://...\"}",
            );
        }
    };
    match registrar.add(request).await {
        Ok(answer) => HttpResponse::Created().json(answer),
        Err(error) => failure(&error),
    }
}

async fn check(registrar: web::Data<Registrar>, path: web::Path<String>) -> HttpResponse {
    match registrar.check(&path).await {
        Ok(answer) => HttpResponse::Ok().json(answer),
        Err(error) => failure(&error),
    }
}

async fn remove(
    registrar: web::Data<Registrar>,
    path: web::Path<String>,
    query: web::Query<RemoveOptions>,
) -> HttpResponse {
    match registrar.remove(&path, query.into_inner()).await {
        Ok(answer) => HttpResponse::Ok().json(answer),
        Err(error) => failure(&error),
    }
}
