//! Channels and their adapters, and Meta's routing of one app's entries to
//! the channel that claims the page or phone number.
//!
//! Registration of adapters is a plain `match` on the platform.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use switchboard_messenger::{MessengerAdapter, MessengerChannel};
use switchboard_model::{ChannelId, InboundEvent, Platform, PlatformAdapter};
use switchboard_telegram::{TelegramAdapter, TelegramChannel};
use switchboard_whatsapp::{WhatsAppAdapter, WhatsAppChannel};

use crate::config::{ChannelSecrets, ChannelSettings, TemplateSettings};

/// One configured channel, ready to verify, parse, render and classify.
pub struct Channel {
    pub id: ChannelId,
    pub platform: Platform,
    pub adapter: Box<dyn PlatformAdapter>,
    /// Messenger page id / WhatsApp phone number id this channel answers for.
    pub business_id: Option<String>,
    /// Meta app secrets, to decide which channels share an app.
    app_secrets: Vec<SecretString>,
    pub outside_window_tag: Option<String>,
    pub outside_window_template: Option<TemplateSettings>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("platform", &self.platform)
            .field("business_id", &self.business_id)
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub fn from_settings(settings: &ChannelSettings) -> Channel {
        let id = settings.id.clone();
        match &settings.secrets {
            ChannelSecrets::Telegram {
                bot_token,
                secret_tokens,
            } => Channel {
                id: id.clone(),
                platform: Platform::Telegram,
                adapter: Box::new(TelegramAdapter::new(TelegramChannel {
                    id,
                    bot_token: bot_token.clone(),
                    secret_tokens: secret_tokens.clone(),
                })),
                business_id: None,
                app_secrets: Vec::new(),
                outside_window_tag: None,
                outside_window_template: None,
            },
            ChannelSecrets::Messenger {
                app_secrets,
                verify_tokens,
                page_access_token,
                page_id,
                outside_window_tag,
            } => Channel {
                id: id.clone(),
                platform: Platform::Messenger,
                adapter: Box::new(MessengerAdapter::new(MessengerChannel {
                    id,
                    app_secrets: app_secrets.clone(),
                    verify_tokens: verify_tokens.clone(),
                    page_access_token: page_access_token.clone(),
                    page_id: page_id.clone(),
                })),
                business_id: page_id.clone(),
                app_secrets: app_secrets.clone(),
                outside_window_tag: outside_window_tag.clone(),
                outside_window_template: None,
            },
            ChannelSecrets::WhatsApp {
                app_secrets,
                verify_tokens,
                access_token,
                phone_number_id,
                outside_window_template,
            } => Channel {
                id: id.clone(),
                platform: Platform::WhatsApp,
                adapter: Box::new(WhatsAppAdapter::new(WhatsAppChannel {
                    id,
                    app_secrets: app_secrets.clone(),
                    verify_tokens: verify_tokens.clone(),
                    access_token: access_token.clone(),
                    phone_number_id: phone_number_id.clone(),
                })),
                business_id: Some(phone_number_id.clone()),
                app_secrets: app_secrets.clone(),
                outside_window_tag: None,
                outside_window_template: outside_window_template.clone(),
            },
        }
    }

    /// Whether both channels are verified by a common Meta app secret, i.e.
    /// Meta may deliver one's entries on the other's callback URL.
    fn shares_app_with(&self, other: &Channel) -> bool {
        self.app_secrets.iter().any(|a| {
            other.app_secrets.iter().any(|b| {
                bool::from(
                    a.expose_secret()
                        .as_bytes()
                        .ct_eq(b.expose_secret().as_bytes()),
                )
            })
        })
    }
}

/// Where an event goes after Meta routing.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Answer it on this channel.
    Channel(ChannelId),
    /// No channel claims the page/number: acknowledge, count, record.
    Unclaimed,
}

#[derive(Debug, Clone, Default)]
pub struct ChannelRegistry {
    by_id: HashMap<String, Arc<Channel>>,
}

impl ChannelRegistry {
    pub fn new(settings: &[ChannelSettings]) -> Self {
        let by_id = settings
            .iter()
            .map(|s| {
                (
                    s.id.as_str().to_owned(),
                    Arc::new(Channel::from_settings(s)),
                )
            })
            .collect();
        Self { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Channel>> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Channel>> {
        self.by_id.values()
    }

    /// Meta delivers every page / number of an app to one callback URL. The
    /// entry's own id decides the channel: the channel (sharing the app's
    /// secret) that claims it, else the receiving channel when it claims no
    /// id at all (the one-page case), else nobody.
    pub fn route(&self, received_on: &Channel, event: &InboundEvent) -> Route {
        if received_on.platform == Platform::Telegram {
            return Route::Channel(received_on.id.clone());
        }
        let Some(business_id) = event.business_id.as_deref() else {
            return Route::Channel(received_on.id.clone());
        };
        if received_on.business_id.as_deref() == Some(business_id) {
            return Route::Channel(received_on.id.clone());
        }
        let claimant = self.by_id.values().find(|c| {
            c.platform == received_on.platform
                && c.business_id.as_deref() == Some(business_id)
                && c.shares_app_with(received_on)
        });
        match claimant {
            Some(channel) => Route::Channel(channel.id.clone()),
            None if received_on.business_id.is_none() => Route::Channel(received_on.id.clone()),
            None => Route::Unclaimed,
        }
    }
}
