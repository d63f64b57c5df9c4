//! Channels and their adapters, and Meta's routing of one app's entries to
//! the channel that claims the page or phone number.
//!
//! Registration of adapters is a plain `match` on the platform. The set of
//! channels is the config file's plus those registered at run time (kept
//! in the store, see `channels/`); it is swapped as a whole when the latter
//! change, so a webhook reads one consistent snapshot with a single atomic
//! load and never waits for a lock.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use switchboard_messenger::{MessengerAdapter, MessengerChannel};
use switchboard_model::{ChannelId, InboundEvent, Platform, PlatformAdapter};
use switchboard_telegram::{TelegramAdapter, TelegramChannel};
use switchboard_whatsapp::{WhatsAppAdapter, WhatsAppChannel};

use crate::config::{ChannelSecrets, ChannelSettings, TemplateSettings};

/// Where a channel was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelSource {
    /// The config file (or the demo): changed only by editing it and
    /// restarting; the admin API cannot remove it.
    Config,
    /// Registered at run time through the admin API; kept in the store.
    Store,
}

impl ChannelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelSource::Config => "config",
            ChannelSource::Store => "store",
        }
    }
}

/// One configured channel, ready to verify, parse, render and classify.
pub struct Channel {
    pub id: ChannelId,
    pub platform: Platform,
    pub source: ChannelSource,
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
            .field("source", &self.source)
            .field("business_id", &self.business_id)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel from the config file.
    pub fn from_settings(settings: &ChannelSettings) -> Channel {
        Self::with_source(settings, ChannelSource::Config)
    }

    pub fn with_source(settings: &ChannelSettings, source: ChannelSource) -> Channel {
        let id = settings.id.clone();
        match &settings.secrets {
            ChannelSecrets::Telegram {
                bot_token,
                secret_tokens,
            } => Channel {
                id: id.clone(),
                platform: Platform::Telegram,
                source,
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
                source,
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
                source,
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

/// One immutable view of every channel.
#[derive(Debug, Default)]
struct Snapshot {
    by_id: HashMap<String, Arc<Channel>>,
}

/// The live set of channels, shared by the webhook routes, the pipeline and
/// the sender (clones share it). Reads are lock-free; a change builds a new
/// snapshot and swaps it in.
#[derive(Clone, Default)]
pub struct ChannelRegistry {
    current: Arc<ArcSwap<Snapshot>>,
    /// The config file's channels, which every snapshot starts from.
    configured: Arc<Vec<Arc<Channel>>>,
}

impl std::fmt::Debug for ChannelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRegistry")
            .field("channels", &self.current.load().by_id.len())
            .finish_non_exhaustive()
    }
}

impl ChannelRegistry {
    /// The config file's channels only.
    pub fn new(settings: &[ChannelSettings]) -> Self {
        let configured: Vec<Arc<Channel>> = settings
            .iter()
            .map(|s| Arc::new(Channel::from_settings(s)))
            .collect();
        let by_id = configured
            .iter()
            .map(|c| (c.id.as_str().to_owned(), c.clone()))
            .collect();
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot { by_id })),
            configured: Arc::new(configured),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Channel>> {
        self.current.load().by_id.get(id).cloned()
    }

    /// Every channel, in no particular order.
    pub fn all(&self) -> Vec<Arc<Channel>> {
        self.current.load().by_id.values().cloned().collect()
    }

    /// True when the config file defines `id` (the admin API leaves those alone).
    pub fn is_configured(&self, id: &str) -> bool {
        self.configured.iter().any(|c| c.id.as_str() == id)
    }

    /// Replaces the run-time channels with `stored`. Config channels stay
    /// and win over a stored channel with the same id; those ids are
    /// returned so the caller can report them.
    pub fn set_stored(&self, stored: &[ChannelSettings]) -> Vec<ChannelId> {
        let mut by_id: HashMap<String, Arc<Channel>> = self
            .configured
            .iter()
            .map(|c| (c.id.as_str().to_owned(), c.clone()))
            .collect();
        let mut shadowed = Vec::new();
        for settings in stored {
            if by_id.contains_key(settings.id.as_str()) {
                shadowed.push(settings.id.clone());
                continue;
            }
            by_id.insert(
                settings.id.as_str().to_owned(),
                Arc::new(Channel::with_source(settings, ChannelSource::Store)),
            );
        }
        self.current.store(Arc::new(Snapshot { by_id }));
        shadowed
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
        let snapshot = self.current.load();
        let claimant = snapshot.by_id.values().find(|c| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelSecrets;
    use secrecy::SecretString;

    fn telegram(id: &str) -> ChannelSettings {
        ChannelSettings {
            id: ChannelId::new(id).unwrap(),
            platform: Platform::Telegram,
            secrets: ChannelSecrets::Telegram {
                bot_token: SecretString::from("1:x"),
                secret_tokens: vec![SecretString::from("s")],
            },
        }
    }

    #[test]
    fn stored_channels_are_swapped_in_and_config_channels_stay() {
        let registry = ChannelRegistry::new(&[telegram("from-config")]);
        let reader = registry.clone();
        assert!(reader.get("added").is_none());

        let shadowed = registry.set_stored(&[telegram("added"), telegram("from-config")]);
        assert_eq!(shadowed, vec![ChannelId::new("from-config").unwrap()]);
        let added = reader.get("added").expect("a clone sees the new snapshot");
        assert_eq!(added.source, ChannelSource::Store);
        assert_eq!(
            reader.get("from-config").unwrap().source,
            ChannelSource::Config,
            "the config file wins over a stored channel with its id"
        );
        assert_eq!(reader.all().len(), 2);

        registry.set_stored(&[]);
        assert!(reader.get("added").is_none());
        assert!(reader.get("from-config").is_some());
        assert!(registry.is_configured("from-config") && !registry.is_configured("added"));
    }
}
