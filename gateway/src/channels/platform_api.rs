//! The platform calls that register a channel: Telegram's `getMe`,
//! `setWebhook`, `getWebhookInfo`, `deleteWebhook`, and the Graph API's
//! `subscribed_apps` edge for a Page or a WhatsApp Business Account.
//!
//! Every request goes to the configured `platforms.*.api_base`; the only
//! parts taken from input are ids and tokens, which are checked to be
//! plain ids first (no `/`, `?` or `#`), so input can never redirect a
//! request. Errors never carry a URL (a Telegram token is part of it).

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_model::Platform;

/// Telegram update kinds the gateway acts on; everything else would only
/// be acknowledged and dropped, so it is not asked for.
pub const TELEGRAM_ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
];

/// Page webhook fields the Messenger adapter turns into events the
/// assistant answers (messages, buttons, m.me links and opt-ins).
pub const MESSENGER_FIELDS: &[&str] = &[
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "messaging_referrals",
];

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{platform} did not answer {method}: {kind}")]
    Unreachable {
        platform: &'static str,
        method: &'static str,
        kind: &'static str,
    },
    #[error("{platform} refused {method} (HTTP {status}{code}): {description}", code = code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Refused {
        platform: &'static str,
        method: &'static str,
        status: u16,
        code: Option<i64>,
        description: String,
    },
    #[error(
        "{platform} answered {method} with a body that is not its API's JSON (HTTP {status}); is platforms.{platform}.api_base right?"
    )]
    Unexpected {
        platform: &'static str,
        method: &'static str,
        status: u16,
    },
}

impl ApiError {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ApiError::Unreachable { .. } => Some(
                "check the gateway's outbound network access and platforms.*.api_base; then try again",
            ),
            ApiError::Refused {
                platform: "telegram",
                status: 401 | 404,
                ..
            } => Some("the bot token is wrong or revoked: copy it again from @BotFather (/token)"),
            ApiError::Refused {
                platform: "telegram",
                status: 400,
                ..
            } => Some(
                "Telegram refused the webhook: the public URL must be HTTPS on port 443, 80, 88 or 8443 with a valid certificate",
            ),
            ApiError::Refused {
                code: Some(190), ..
            } => Some("the access token is invalid or expired: create a new one"),
            ApiError::Refused {
                code: Some(10 | 200 | 210 | 230 | 294),
                ..
            } => Some(
                "the token lacks a permission: a Page token needs pages_manage_metadata and pages_messaging; a WhatsApp token needs whatsapp_business_management and whatsapp_business_messaging",
            ),
            ApiError::Refused {
                code: Some(100), ..
            } => Some(
                "the id is wrong, or the token does not belong to that Page / WhatsApp Business Account",
            ),
            ApiError::Refused { .. } | ApiError::Unexpected { .. } => None,
        }
    }
}

/// What `getMe` says about the bot.
#[derive(Debug, Clone, Deserialize)]
pub struct BotInfo {
    pub id: i64,
    pub username: Option<String>,
}

/// Telegram's `WebhookInfo` (the fields the check reports).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct WebhookInfo {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub pending_update_count: u64,
    pub last_error_date: Option<i64>,
    pub last_error_message: Option<String>,
    pub last_synchronization_error_date: Option<i64>,
    pub max_connections: Option<u32>,
    pub allowed_updates: Option<Vec<String>>,
    pub ip_address: Option<String>,
    #[serde(default)]
    pub has_custom_certificate: bool,
}

/// `setWebhook`'s parameters.
#[derive(Debug)]
pub struct SetWebhook<'a> {
    pub url: &'a str,
    pub secret_token: &'a SecretString,
    pub max_connections: u32,
    pub drop_pending_updates: bool,
}

/// True for a bot token of the form `<digits>:<token chars>`.
pub fn is_bot_token(token: &str) -> bool {
    let Some((bot, secret)) = token.split_once(':') else {
        return false;
    };
    !bot.is_empty()
        && bot.bytes().all(|b| b.is_ascii_digit())
        && !secret.is_empty()
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// True for a Graph object id (Page, WhatsApp Business Account, phone
/// number): digits only.
pub fn is_graph_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

pub struct PlatformApi {
    http: reqwest::Client,
    bases: HashMap<Platform, String>,
}

impl PlatformApi {
    pub fn new(
        bases: HashMap<Platform, String>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, bases })
    }

    fn base(&self, platform: Platform) -> &str {
        self.bases.get(&platform).map_or("", String::as_str)
    }

    async fn telegram(
        &self,
        token: &SecretString,
        method: &'static str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let token = token.expose_secret();
        if !is_bot_token(token) {
            return Err(ApiError::Refused {
                platform: "telegram",
                method,
                status: 400,
                code: None,
                description:
                    "the bot token is not of the form 123456:ABC-... (as @BotFather gives it)"
                        .to_owned(),
            });
        }
        let url = format!("{}/bot{token}/{method}", self.base(Platform::Telegram));
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable("telegram", method, &e))?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.map_err(|_| ApiError::Unexpected {
            platform: "telegram",
            method,
            status,
        })?;
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
        Err(ApiError::Refused {
            platform: "telegram",
            method,
            status,
            code: answer.get("error_code").and_then(Value::as_i64),
            description: answer
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("no description")
                .to_owned(),
        })
    }

    pub async fn get_me(&self, token: &SecretString) -> Result<BotInfo, ApiError> {
        let result = self.telegram(token, "getMe", json!({})).await?;
        serde_json::from_value(result).map_err(|_| ApiError::Unexpected {
            platform: "telegram",
            method: "getMe",
            status: 200,
        })
    }

    pub async fn set_webhook(
        &self,
        token: &SecretString,
        request: &SetWebhook<'_>,
    ) -> Result<(), ApiError> {
        let body = json!({
            "url": request.url,
            "secret_token": request.secret_token.expose_secret(),
            "allowed_updates": TELEGRAM_ALLOWED_UPDATES,
            "max_connections": request.max_connections,
            "drop_pending_updates": request.drop_pending_updates,
        });
        self.telegram(token, "setWebhook", body).await.map(|_| ())
    }

    pub async fn get_webhook_info(&self, token: &SecretString) -> Result<WebhookInfo, ApiError> {
        let result = self.telegram(token, "getWebhookInfo", json!({})).await?;
        serde_json::from_value(result).map_err(|_| ApiError::Unexpected {
            platform: "telegram",
            method: "getWebhookInfo",
            status: 200,
        })
    }

    pub async fn delete_webhook(
        &self,
        token: &SecretString,
        drop_pending_updates: bool,
    ) -> Result<(), ApiError> {
        self.telegram(
            token,
            "deleteWebhook",
            json!({ "drop_pending_updates": drop_pending_updates }),
        )
        .await
        .map(|_| ())
    }

    async fn graph(
        &self,
        platform: Platform,
        method: reqwest::Method,
        label: &'static str,
        object_id: &str,
        token: &SecretString,
        body: Option<Value>,
    ) -> Result<Value, ApiError> {
        let name = platform.as_str();
        if !is_graph_id(object_id) {
            return Err(ApiError::Refused {
                platform: name,
                method: label,
                status: 400,
                code: None,
                description: "the id must be the numeric id Meta shows".to_owned(),
            });
        }
        let url = format!("{}/{object_id}/subscribed_apps", self.base(platform));
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(name, label, &e))?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.map_err(|_| ApiError::Unexpected {
            platform: name,
            method: label,
            status,
        })?;
        if let Some(error) = answer.get("error") {
            return Err(ApiError::Refused {
                platform: name,
                method: label,
                status,
                code: error.get("code").and_then(Value::as_i64),
                description: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(ApiError::Unexpected {
                platform: name,
                method: label,
                status,
            });
        }
        Ok(answer)
    }

    /// Subscribes the app (the token's) to a Page (with `fields`) or a
    /// WhatsApp Business Account (fields come from the app's dashboard).
    pub async fn subscribe(
        &self,
        platform: Platform,
        object_id: &str,
        token: &SecretString,
        fields: Option<&[&str]>,
    ) -> Result<(), ApiError> {
        let body = fields.map(|fields| json!({ "subscribed_fields": fields.join(",") }));
        let answer = self
            .graph(
                platform,
                reqwest::Method::POST,
                "POST subscribed_apps",
                object_id,
                token,
                body,
            )
            .await?;
        if answer.get("success").and_then(Value::as_bool) == Some(false) {
            return Err(ApiError::Refused {
                platform: platform.as_str(),
                method: "POST subscribed_apps",
                status: 200,
                code: None,
                description: "Meta answered success: false".to_owned(),
            });
        }
        Ok(())
    }

    /// The apps subscribed to the Page or WhatsApp Business Account.
    pub async fn subscriptions(
        &self,
        platform: Platform,
        object_id: &str,
        token: &SecretString,
    ) -> Result<Vec<Value>, ApiError> {
        let answer = self
            .graph(
                platform,
                reqwest::Method::GET,
                "GET subscribed_apps",
                object_id,
                token,
                None,
            )
            .await?;
        Ok(answer
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn unsubscribe(
        &self,
        platform: Platform,
        object_id: &str,
        token: &SecretString,
    ) -> Result<(), ApiError> {
        self.graph(
            platform,
            reqwest::Method::DELETE,
            "DELETE subscribed_apps",
            object_id,
            token,
            None,
        )
        .await
        .map(|_| ())
    }
}

/// A transport error reduced to its kind: reqwest's own text names the
/// URL, which holds the Telegram token.
fn unreachable(platform: &'static str, method: &'static str, error: &reqwest::Error) -> ApiError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    ApiError::Unreachable {
        platform,
        method,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_and_ids_reach_a_url() {
        assert!(is_bot_token("123456:ABC-def_GHI"));
        for bad in [
            "", "123456", ":abc", "abc:def", "1:a/b", "1:a?x", "1:a#x", "1:a b",
        ] {
            assert!(!is_bot_token(bad), "{bad}");
        }
        assert!(is_graph_id("100000000000001"));
        for bad in ["", "me", "1/2", "../x", "12?a", &"9".repeat(33)] {
            assert!(!is_graph_id(bad), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_step_and_hint_at_the_fix() {
        let error = ApiError::Refused {
            platform: "telegram",
            method: "getMe",
            status: 401,
            code: Some(401),
            description: "Unauthorized".into(),
        };
        assert_eq!(
            error.to_string(),
            "telegram refused getMe (HTTP 401, code 401): Unauthorized"
        );
        assert!(error.hint().unwrap().contains("@BotFather"));
        let graph = ApiError::Refused {
            platform: "messenger",
            method: "POST subscribed_apps",
            status: 400,
            code: Some(190),
            description: "Invalid OAuth access token".into(),
        };
        assert!(graph.hint().unwrap().contains("expired"));
    }
}
