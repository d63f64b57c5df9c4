//! The shop backend contract: orders, refunds, checkouts, complaints and
//! account verification. The assistant never calls it; it emits
//! [`BackendRequest`]s as effects, the gateway runs them against a
//! [`ShopBackend`] and feeds the results back. The REST form an HTTP backend
//! implements is docs/SHOP_BACKEND.md.

mod demo;
mod rest;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use demo::{DemoBackend, DevOutboxEntry, RecordedComplaint, RecordedRefund};
pub use rest::{RestCall, RestMethod, rest_call, rest_response};

use crate::guards::redact_pii;

/// One product line in a cart or checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub quantity: u32,
    /// Price of one unit in the currency's minor unit.
    pub unit_price_minor: u64,
}

/// What the assistant asks of the shop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackendRequest {
    /// The status word of any order; safe without verification.
    OrderStatus { order_number: String },
    /// Everything about an order, only if it belongs to `account_id`.
    OrderDetails {
        order_number: String,
        account_id: String,
    },
    /// Which account an email address or order number belongs to.
    ResolveAccount { identifier: String },
    /// Deliver a one-time code to the account's own contact details.
    SendLinkCode { account_id: String, code: String },
    RequestRefund {
        account_id: String,
        order_number: String,
        /// The sku of the item to refund.
        item: String,
        /// A reason code: `damaged`, `wrong_size`, `not_as_described`,
        /// `changed_mind`, or `other: <text>`.
        reason: String,
    },
    /// A payment link for the cart; the customer pays on the shop's site.
    CreateCheckout {
        items: Vec<CartLine>,
        account_id: Option<String>,
    },
    RecordComplaint {
        /// `platform:channel:chat`, so staff can find the conversation.
        conversation: String,
        account_id: Option<String>,
        order_number: Option<String>,
        /// The customer's words, card numbers and passwords already masked.
        text: String,
    },
}

impl BackendRequest {
    /// A stable lowercase name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendRequest::OrderStatus { .. } => "order_status",
            BackendRequest::OrderDetails { .. } => "order_details",
            BackendRequest::ResolveAccount { .. } => "resolve_account",
            BackendRequest::SendLinkCode { .. } => "send_link_code",
            BackendRequest::RequestRefund { .. } => "request_refund",
            BackendRequest::CreateCheckout { .. } => "create_checkout",
            BackendRequest::RecordComplaint { .. } => "record_complaint",
        }
    }
}

// Codes are secrets and identifiers or complaint texts are personal data:
// none of them may reach a log through `{:?}`.
impl fmt::Debug for BackendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendRequest::OrderStatus { order_number } => f
                .debug_struct("OrderStatus")
                .field("order_number", order_number)
                .finish(),
            BackendRequest::OrderDetails {
                order_number,
                account_id,
            } => f
                .debug_struct("OrderDetails")
                .field("order_number", order_number)
                .field("account_id", account_id)
                .finish(),
            BackendRequest::ResolveAccount { identifier } => f
                .debug_struct("ResolveAccount")
                .field("identifier", &redact_pii(identifier))
                .finish(),
            BackendRequest::SendLinkCode { account_id, .. } => f
                .debug_struct("SendLinkCode")
                .field("account_id", account_id)
                .field("code", &"[REDACTED]")
                .finish(),
            BackendRequest::RequestRefund {
                account_id,
                order_number,
                item,
                reason,
            } => f
                .debug_struct("RequestRefund")
                .field("account_id", account_id)
                .field("order_number", order_number)
                .field("item", item)
                .field("reason", &redact_pii(reason))
                .finish(),
            BackendRequest::CreateCheckout { items, account_id } => f
                .debug_struct("CreateCheckout")
                .field("items", items)
                .field("account_id", account_id)
                .finish(),
            BackendRequest::RecordComplaint {
                conversation,
                account_id,
                order_number,
                text,
            } => f
                .debug_struct("RecordComplaint")
                .field("conversation", conversation)
                .field("account_id", account_id)
                .field("order_number", order_number)
                .field("text", &redact_pii(text))
                .finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Placed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
    /// A state this version does not know; shown as "in progress".
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    pub quantity: u32,
    pub unit_price_minor: u64,
    /// Whether the shop would accept a refund request for it now.
    #[serde(default = "yes")]
    pub refundable: bool,
}

fn yes() -> bool {
    true
}

/// An order as the shop knows it. Full personal data: the assistant masks
/// it before showing it, and shows it only to its verified owner.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub order_number: String,
    pub account_id: String,
    pub status: OrderState,
    pub items: Vec<OrderLine>,
    pub total_minor: u64,
    pub currency: String,
    pub email: String,
    pub shipping_address: String,
}

impl fmt::Debug for OrderDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderDetails")
            .field("order_number", &self.order_number)
            .field("account_id", &self.account_id)
            .field("status", &self.status)
            .field("items", &self.items)
            .field("total_minor", &self.total_minor)
            .finish_non_exhaustive()
    }
}

/// The shop's answer to a [`BackendRequest`], one variant per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackendResponse {
    OrderStatus {
        order_number: String,
        status: OrderState,
    },
    OrderDetails(OrderDetails),
    AccountResolved {
        account_id: String,
        /// Where the code will go, already masked (`j***@example.com`).
        destination: String,
    },
    LinkCodeSent,
    RefundRequested {
        reference: String,
    },
    CheckoutCreated {
        url: String,
    },
    ComplaintRecorded {
        reference: String,
    },
}

/// Why a backend call failed. Cloneable and free of secrets, so it can be
/// fed back to the assistant and logged as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendError {
    /// No such order or account, or not one this account may see.
    #[error("not found")]
    NotFound,
    /// The shop refused; `reason` is short text fit to show the customer.
    #[error("rejected: {reason}")]
    Rejected { reason: String },
    /// The shop refused the gateway's credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// Network error, timeout or 5xx; worth retrying later.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    /// The shop answered something outside the contract.
    #[error("invalid response: {reason}")]
    InvalidResponse { reason: String },
}

pub type BackendResult = Result<BackendResponse, BackendError>;

/// A boxed, sendable backend future.
pub type BackendFuture<'a> = Pin<Box<dyn Future<Output = BackendResult> + Send + 'a>>;

/// A shop's systems: the demo backend here, the HTTP backend in the gateway.
pub trait ShopBackend: Send + Sync {
    fn call(&self, request: BackendRequest) -> BackendFuture<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_codes_and_personal_data() {
        let request = BackendRequest::SendLinkCode {
            account_id: "acc-1".into(),
            code: "123456".into(),
        };
        assert!(!format!("{request:?}").contains("123456"));
        let request = BackendRequest::ResolveAccount {
            identifier: "jane@example.com".into(),
        };
        assert!(!format!("{request:?}").contains("jane@"));
    }

    #[test]
    fn requests_serialise_with_a_type_tag() {
        let json = serde_json::to_value(BackendRequest::OrderStatus {
            order_number: "10023".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "order_status", "order_number": "10023"})
        );
    }

    #[test]
    fn unknown_order_states_are_tolerated() {
        let state: OrderState = serde_json::from_str("\"lost_in_space\"").unwrap();
        assert_eq!(state, OrderState::Unknown);
    }
}
