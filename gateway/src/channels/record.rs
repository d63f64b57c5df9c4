//! The stored form of a channel registered at run time. Serialised as JSON
//! and sealed by the store (AES-256-GCM in Redis); versioned (`v`) so a
//! later release can read what an earlier one wrote.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use switchboard_model::{ChannelId, Platform};

use crate::config::{ChannelSecrets, ChannelSettings, TemplateSettings};

/// Current record version.
pub const RECORD_VERSION: u32 = 1;

fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

fn expose_option<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

#[derive(Serialize, Deserialize)]
pub struct StoredChannel {
    pub v: u32,
    pub id: ChannelId,
    /// The URL the platform was told to call (never fetched by Switchboard).
    pub webhook_url: String,
    pub created_at_ms: i64,
    #[serde(flatten)]
    pub secrets: StoredSecrets,
}

impl std::fmt::Debug for StoredChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredChannel")
            .field("id", &self.id)
            .field("platform", &self.secrets.platform())
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

/// A WhatsApp template for replies after the 24-hour window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTemplate {
    pub name: String,
    pub language: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum StoredSecrets {
    Telegram {
        #[serde(serialize_with = "expose")]
        bot_token: SecretString,
        #[serde(serialize_with = "expose")]
        secret_token: SecretString,
        /// The secret of the registration this one replaced, accepted too
        /// until Telegram's queued deliveries carry the new one.
        #[serde(default, serialize_with = "expose_option")]
        previous_secret_token: Option<SecretString>,
        /// The bot's @username, as getMe reported it.
        username: Option<String>,
    },
    Messenger {
        #[serde(serialize_with = "expose")]
        app_secret: SecretString,
        #[serde(serialize_with = "expose")]
        verify_token: SecretString,
        #[serde(serialize_with = "expose")]
        page_access_token: SecretString,
        page_id: String,
        outside_window_tag: Option<String>,
    },
    #[serde(rename = "whatsapp")]
    WhatsApp {
        #[serde(serialize_with = "expose")]
        app_secret: SecretString,
        #[serde(serialize_with = "expose")]
        verify_token: SecretString,
        #[serde(serialize_with = "expose")]
        access_token: SecretString,
        phone_number_id: String,
        /// The WhatsApp Business Account the number belongs to.
        waba_id: Option<String>,
        outside_window_template: Option<StoredTemplate>,
    },
}

impl StoredSecrets {
    pub fn platform(&self) -> Platform {
        match self {
            StoredSecrets::Telegram { .. } => Platform::Telegram,
            StoredSecrets::Messenger { .. } => Platform::Messenger,
            StoredSecrets::WhatsApp { .. } => Platform::WhatsApp,
        }
    }
}

impl StoredChannel {
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<StoredChannel, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The settings the registry builds the channel's adapter from.
    pub fn to_settings(&self) -> ChannelSettings {
        let secrets = match &self.secrets {
            StoredSecrets::Telegram {
                bot_token,
                secret_token,
                previous_secret_token,
                ..
            } => ChannelSecrets::Telegram {
                bot_token: bot_token.clone(),
                secret_tokens: std::iter::once(secret_token.clone())
                    .chain(previous_secret_token.clone())
                    .collect(),
            },
            StoredSecrets::Messenger {
                app_secret,
                verify_token,
                page_access_token,
                page_id,
                outside_window_tag,
            } => ChannelSecrets::Messenger {
                app_secrets: vec![app_secret.clone()],
                verify_tokens: vec![verify_token.clone()],
                page_access_token: page_access_token.clone(),
                page_id: Some(page_id.clone()),
                outside_window_tag: outside_window_tag.clone(),
            },
            StoredSecrets::WhatsApp {
                app_secret,
                verify_token,
                access_token,
                phone_number_id,
                outside_window_template,
                ..
            } => ChannelSecrets::WhatsApp {
                app_secrets: vec![app_secret.clone()],
                verify_tokens: vec![verify_token.clone()],
                access_token: access_token.clone(),
                phone_number_id: phone_number_id.clone(),
                outside_window_template: outside_window_template.as_ref().map(|t| {
                    TemplateSettings {
                        name: t.name.clone(),
                        language: t.language.clone(),
                    }
                }),
            },
        };
        ChannelSettings {
            id: self.id.clone(),
            platform: self.secrets.platform(),
            secrets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_debug_shows_no_secret() {
        let record = StoredChannel {
            v: RECORD_VERSION,
            id: ChannelId::new("shop-wa").unwrap(),
            webhook_url: "https://bot.example.com/webhooks/whatsapp/shop-wa".into(),
            created_at_ms: 1,
            secrets: StoredSecrets::WhatsApp {
                app_secret: SecretString::from("app-secret-1"),
                verify_token: SecretString::from("verify-1"),
                access_token: SecretString::from("access-1"),
                phone_number_id: "123".into(),
                waba_id: Some("456".into()),
                outside_window_template: Some(StoredTemplate {
                    name: "back".into(),
                    language: "en_US".into(),
                }),
            },
        };
        let bytes = record.to_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["platform"], "whatsapp");
        let read = StoredChannel::from_bytes(&bytes).unwrap();
        let settings = read.to_settings();
        assert_eq!(settings.platform, Platform::WhatsApp);
        let ChannelSecrets::WhatsApp {
            access_token,
            outside_window_template,
            ..
        } = &settings.secrets
        else {
            panic!("whatsapp secrets expected");
        };
        assert_eq!(access_token.expose_secret(), "access-1");
        assert_eq!(outside_window_template.as_ref().unwrap().name, "back");
        let debug = format!("{read:?} {settings:?}");
        for secret in ["app-secret-1", "verify-1", "access-1"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}
