//! The HTTP shop backend: moves bytes for the REST contract that
//! `switchboard_core::backend::{rest_call, rest_response}` define (and
//! docs/SHOP_BACKEND.md documents), with a bearer token and timeouts.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use switchboard_core::backend::{
    BackendError, BackendFuture, BackendRequest, BackendResponse, RestMethod, ShopBackend,
    rest_call, rest_response,
};

pub struct HttpBackend {
    base: String,
    token: SecretString,
    http: reqwest::Client,
}

impl HttpBackend {
    pub fn new(base: &str, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    async fn send(&self, request: BackendRequest) -> Result<BackendResponse, BackendError> {
        let call = rest_call(&request);
        let url = format!("{}{}", self.base, call.path);
        let method = match call.method {
            RestMethod::Get => reqwest::Method::GET,
            RestMethod::Post => reqwest::Method::POST,
        };
        let mut builder = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = &call.body {
            let bytes = serde_json::to_vec(body).map_err(|e| BackendError::InvalidResponse {
                reason: format!("request not encodable: {e}"),
            })?;
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| BackendError::Unavailable {
                reason: if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                },
            })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|_| BackendError::Unavailable {
                reason: "body not received".into(),
            })?;
        rest_response(&request, status, &body)
    }
}

impl ShopBackend for HttpBackend {
    fn call(&self, request: BackendRequest) -> BackendFuture<'_> {
        Box::pin(self.send(request))
    }
}
