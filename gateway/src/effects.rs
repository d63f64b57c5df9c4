//! Carries out the assistant's effects: shop backend calls, one-time link
//! codes (issue, deliver out of band, check), hand-off (the record, the
//! agents' queue and the help-desk webhook), erasure. Results go back to
//! the assistant as inputs.
//!
//! One-time code records live in the store keyed by account, so a code
//! asked for in one chat cannot be used from another, and a new request in
//! another chat replaces (never reveals) the old one. Only hashes are kept.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::assistant::{Effect, EffectResult, LinkCodeFailure};
use switchboard_core::backend::{BackendError, BackendRequest, BackendResponse, ShopBackend};
use switchboard_core::otp::{self, LinkCodeRecord};
use switchboard_model::InboundEvent;
use tracing::{info, warn};

use crate::handoff::HandoffDesk;
use crate::metrics::Metrics;
use crate::sender::now_ms;
use crate::store::{
    Store, code_sends_account_key, code_sends_conversation_key, link_code_key, pending_link_key,
};

/// Long enough to outlive a code (5 min) and its lock (15 min).
const CODE_RECORD_TTL: Duration = Duration::from_secs(30 * 60);
/// The send caps' window (`otp::SEND_WINDOW_MS`).
const SEND_WINDOW: Duration = Duration::from_millis(otp::SEND_WINDOW_MS.unsigned_abs());
/// Longest we wait on the shop backend before telling the customer so.
const BACKEND_DEADLINE: Duration = Duration::from_secs(15);

pub struct EffectRunner {
    backend: Arc<dyn ShopBackend>,
    store: Store,
    metrics: Arc<Metrics>,
    handoffs: Arc<HandoffDesk>,
}

pub struct EffectOutcome {
    pub result: Option<EffectResult>,
    /// Everything about the conversation was erased: save nothing.
    pub erased: bool,
}

impl EffectOutcome {
    fn result(result: EffectResult) -> Self {
        Self {
            result: Some(result),
            erased: false,
        }
    }

    /// The effect has no result to feed back.
    fn none() -> Self {
        Self {
            result: None,
            erased: false,
        }
    }
}

impl EffectRunner {
    pub fn new(
        backend: Arc<dyn ShopBackend>,
        store: Store,
        metrics: Arc<Metrics>,
        handoffs: Arc<HandoffDesk>,
    ) -> Self {
        Self {
            backend,
            store,
            metrics,
            handoffs,
        }
    }

    pub async fn run(&self, effect: Effect, event: &InboundEvent) -> EffectOutcome {
        match effect {
            Effect::Backend(request) => {
                EffectOutcome::result(EffectResult::Backend(self.call(request).await))
            }
            Effect::IssueLinkCode { identifier } => {
                EffectOutcome::result(self.issue_code(&identifier, event).await)
            }
            Effect::CheckLinkCode { code } => {
                EffectOutcome::result(self.check_code(&code, event).await)
            }
            Effect::Handoff { summary } => {
                // The state already says "handed off", so the bot is silent
                // whatever happens here; a record that cannot be written is
                // recorded so staff still learn of the hand-off.
                if let Err(error) = self.handoffs.open(event, &summary, now_ms()).await {
                    warn!(error = %error, "hand-off record not stored");
                    self.metrics.dead_letter("handoff_not_stored");
                }
                EffectOutcome::none()
            }
            Effect::EraseUserData => match async {
                self.handoffs.close(&event.conversation).await?;
                self.store.erase_conversation(&event.conversation).await
            }
            .await
            {
                Ok(()) => {
                    info!(platform = event.platform.as_str(), channel = %event.channel, "customer data erased on request");
                    EffectOutcome {
                        result: Some(EffectResult::Erased),
                        erased: true,
                    }
                }
                Err(error) => {
                    warn!(error = %error, "erase failed");
                    EffectOutcome::result(EffectResult::Backend(Err(unavailable(
                        "storage unavailable",
                    ))))
                }
            },
        }
    }

    async fn call(&self, request: BackendRequest) -> Result<BackendResponse, BackendError> {
        let kind = request.kind();
        match tokio::time::timeout(BACKEND_DEADLINE, self.backend.call(request)).await {
            Ok(result) => {
                if let Err(error) = &result {
                    warn!(request = kind, error = %error, "shop backend call failed");
                }
                result
            }
            Err(_) => {
                warn!(request = kind, "shop backend call timed out");
                Err(unavailable("timed out"))
            }
        }
    }

    async fn issue_code(&self, identifier: &str, event: &InboundEvent) -> EffectResult {
        let failed = |failure: LinkCodeFailure| EffectResult::LinkCodeFailed(failure);
        let (account_id, destination) = match self
            .call(BackendRequest::ResolveAccount {
                identifier: identifier.to_owned(),
            })
            .await
        {
            Ok(BackendResponse::AccountResolved {
                account_id,
                destination,
            }) => (account_id, destination),
            Ok(_) => return failed(LinkCodeFailure::Unavailable),
            Err(BackendError::NotFound) => return failed(LinkCodeFailure::UnknownAccount),
            Err(_) => return failed(LinkCodeFailure::Unavailable),
        };
        let now = now_ms();
        let key = link_code_key(&account_id);
        let existing = match self.store.get(&key).await {
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<LinkCodeRecord>(&b).ok()),
            Err(_) => return failed(LinkCodeFailure::Unavailable),
        };
        // Asking for a fresh code must not reset the brute-force lock.
        if let Err(failure) = otp::may_issue(existing.as_ref(), now) {
            return failed(LinkCodeFailure::Code(failure));
        }
        // Counted before sending, and counted even if the send then fails:
        // a cap that a failing backend could reset would not be one.
        let caps = [
            (
                code_sends_conversation_key(&event.conversation),
                otp::MAX_SENDS_PER_CONVERSATION,
                "conversation",
            ),
            (
                code_sends_account_key(&account_id),
                otp::MAX_SENDS_PER_ACCOUNT,
                "account",
            ),
        ];
        for (key, cap, scope) in caps {
            match self.store.count_in_window(&key, SEND_WINDOW).await {
                Ok(count) if count > cap => {
                    warn!(
                        platform = event.platform.as_str(),
                        channel = %event.channel,
                        scope,
                        "one-time code refused: hourly send cap reached"
                    );
                    self.metrics.link_code_capped(scope);
                    return failed(LinkCodeFailure::TooManyCodes);
                }
                Ok(_) => {}
                Err(_) => return failed(LinkCodeFailure::Unavailable),
            }
        }
        let mut random = [0u8; 32];
        if getrandom::fill(&mut random).is_err() {
            return failed(LinkCodeFailure::Unavailable);
        }
        let (record, code) = otp::issue(
            &account_id,
            &event.conversation,
            &event.sender.id,
            now,
            random,
        );
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return failed(LinkCodeFailure::Unavailable);
        };
        let stored = async {
            self.store.put(&key, bytes, CODE_RECORD_TTL).await?;
            self.store
                .put(
                    &pending_link_key(&event.conversation),
                    account_id.clone().into_bytes(),
                    CODE_RECORD_TTL,
                )
                .await
        };
        if stored.await.is_err() {
            return failed(LinkCodeFailure::Unavailable);
        }
        match self
            .call(BackendRequest::SendLinkCode { account_id, code })
            .await
        {
            Ok(_) => EffectResult::LinkCodeIssued {
                destination_masked: destination,
            },
            Err(_) => failed(LinkCodeFailure::Unavailable),
        }
    }

    async fn check_code(&self, code: &str, event: &InboundEvent) -> EffectResult {
        let failed = |failure: LinkCodeFailure| EffectResult::LinkCodeFailed(failure);
        let account = match self.store.get(&pending_link_key(&event.conversation)).await {
            Ok(Some(account)) => account,
            Ok(None) => return failed(LinkCodeFailure::NoPendingCode),
            Err(_) => return failed(LinkCodeFailure::Unavailable),
        };
        let account_id = String::from_utf8_lossy(&account).into_owned();
        let key = link_code_key(&account_id);
        let mut record = match self.store.get(&key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<LinkCodeRecord>(&bytes) {
                Ok(record) => record,
                Err(_) => return failed(LinkCodeFailure::NoPendingCode),
            },
            // Replaced by a newer request elsewhere, or expired.
            Ok(None) => return failed(LinkCodeFailure::NoPendingCode),
            Err(_) => return failed(LinkCodeFailure::Unavailable),
        };
        let outcome = otp::check(
            &mut record,
            code,
            &event.conversation,
            &event.sender.id,
            now_ms(),
        );
        // The attempt count must persist whatever the outcome.
        let saved = match serde_json::to_vec(&record) {
            Ok(bytes) => self.store.put(&key, bytes, CODE_RECORD_TTL).await.is_ok(),
            Err(_) => false,
        };
        if !saved {
            return failed(LinkCodeFailure::Unavailable);
        }
        match outcome {
            Ok(()) => {
                let _ = self
                    .store
                    .delete(&pending_link_key(&event.conversation))
                    .await;
                EffectResult::Linked { account_id }
            }
            Err(failure) => failed(LinkCodeFailure::Code(failure)),
        }
    }
}

fn unavailable(reason: &str) -> BackendError {
    BackendError::Unavailable {
        reason: reason.to_owned(),
    }
}
