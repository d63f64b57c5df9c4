//! The in-memory demo backend: two seeded customers with orders, a dev
//! outbox instead of email, and recorded refunds and complaints.

use std::fmt;
use std::future::ready;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use super::{
    BackendError, BackendFuture, BackendRequest, BackendResponse, BackendResult, CartLine,
    OrderDetails, OrderLine, OrderState, ShopBackend,
};
use crate::guards::{first_email, mask_email};

/// A code the demo backend "sent". Development only: the admin API shows
/// these so a tester can complete account linking without real email.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DevOutboxEntry {
    /// Increases with every code sent.
    pub sequence: u64,
    pub account_id: String,
    /// The full address the code went to.
    pub destination: String,
    pub code: String,
}

impl fmt::Debug for DevOutboxEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevOutboxEntry")
            .field("sequence", &self.sequence)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRefund {
    pub reference: String,
    pub account_id: String,
    pub order_number: String,
    pub item: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedComplaint {
    pub reference: String,
    pub conversation: String,
    pub account_id: Option<String>,
    pub order_number: Option<String>,
    pub text: String,
}

struct Account {
    id: &'static str,
    email: &'static str,
}

const ACCOUNTS: &[Account] = &[
    Account {
        id: "acc-1001",
        email: "jane@example.com",
    },
    Account {
        id: "acc-1002",
        email: "max@example.org",
    },
];

#[derive(Default)]
struct Ledger {
    orders: Vec<OrderDetails>,
    outbox: Vec<DevOutboxEntry>,
    refunds: Vec<RecordedRefund>,
    complaints: Vec<RecordedComplaint>,
    checkouts: u64,
}

/// In-memory shop backend with seeded data:
///
/// | order | customer | email | status |
/// |---|---|---|---|
/// | 10023 | acc-1001 | jane@example.com | shipped |
/// | 10024 | acc-1002 | max@example.org | delivered |
/// | 10025 | acc-1001 | jane@example.com | delivered |
pub struct DemoBackend {
    ledger: Mutex<Ledger>,
    checkout_base: String,
}

impl fmt::Debug for DemoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoBackend").finish_non_exhaustive()
    }
}

impl Default for DemoBackend {
    fn default() -> Self {
        Self::new()
    }
}

fn line(sku: &str, name: &str, size: Option<&str>, quantity: u32, price: u64) -> OrderLine {
    OrderLine {
        sku: sku.to_owned(),
        name: name.to_owned(),
        size: size.map(str::to_owned),
        quantity,
        unit_price_minor: price,
        refundable: true,
    }
}

impl DemoBackend {
    pub fn new() -> Self {
        let orders = vec![
            OrderDetails {
                order_number: "10023".to_owned(),
                account_id: "acc-1001".to_owned(),
                status: OrderState::Shipped,
                items: vec![
                    line("JKT-RAIN", "Rain Jacket", Some("M"), 1, 8900),
                    line("BTL-STEEL", "Steel Water Bottle", None, 2, 2450),
                ],
                total_minor: 13800,
                currency: "EUR".to_owned(),
                email: "jane@example.com".to_owned(),
                shipping_address: "12 Elm Street, 10115 Berlin".to_owned(),
            },
            OrderDetails {
                order_number: "10024".to_owned(),
                account_id: "acc-1002".to_owned(),
                status: OrderState::Delivered,
                items: vec![line(
                    "SHOE-TRAIL",
                    "Trail Running Shoes",
                    Some("42"),
                    1,
                    11900,
                )],
                total_minor: 11900,
                currency: "EUR".to_owned(),
                email: "max@example.org".to_owned(),
                shipping_address: "7 Harbour Road, 20457 Hamburg".to_owned(),
            },
            OrderDetails {
                order_number: "10025".to_owned(),
                account_id: "acc-1001".to_owned(),
                status: OrderState::Delivered,
                items: vec![
                    line("TEE-MERINO", "Merino T-Shirt", Some("S"), 1, 4900),
                    line("SOCK-HIKE", "Hiking Socks", Some("M"), 2, 1490),
                ],
                total_minor: 7880,
                currency: "EUR".to_owned(),
                email: "jane@example.com".to_owned(),
                shipping_address: "12 Elm Street, 10115 Berlin".to_owned(),
            },
        ];
        Self {
            ledger: Mutex::new(Ledger {
                orders,
                ..Ledger::default()
            }),
            checkout_base: "https://demo-outfitters.example/checkout/".to_owned(),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // The ledger stays consistent across a panic elsewhere: every
        // mutation below is a single push or field update.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Codes "sent" so far, oldest first.
    pub fn outbox(&self) -> Vec<DevOutboxEntry> {
        self.ledger().outbox.clone()
    }

    pub fn refunds(&self) -> Vec<RecordedRefund> {
        self.ledger().refunds.clone()
    }

    pub fn complaints(&self) -> Vec<RecordedComplaint> {
        self.ledger().complaints.clone()
    }

    /// Answers a request synchronously; [`ShopBackend::call`] wraps this.
    pub fn handle(&self, request: BackendRequest) -> BackendResult {
        let mut ledger = self.ledger();
        match request {
            BackendRequest::OrderStatus { order_number } => ledger
                .orders
                .iter()
                .find(|order| order.order_number == order_number)
                .map(|order| BackendResponse::OrderStatus {
                    order_number: order.order_number.clone(),
                    status: order.status,
                })
                .ok_or(BackendError::NotFound),
            BackendRequest::OrderDetails {
                order_number,
                account_id,
            } => ledger
                .orders
                .iter()
                .find(|order| order.order_number == order_number && order.account_id == account_id)
                .cloned()
                .map(BackendResponse::OrderDetails)
                .ok_or(BackendError::NotFound),
            BackendRequest::ResolveAccount { identifier } => {
                let identifier = identifier.trim();
                let account_id = match first_email(identifier) {
                    Some(email) => ACCOUNTS
                        .iter()
                        .find(|account| account.email == email)
                        .map(|account| account.id.to_owned()),
                    None => ledger
                        .orders
                        .iter()
                        .find(|order| order.order_number == identifier.trim_start_matches('#'))
                        .map(|order| order.account_id.clone()),
                };
                let account = account_id
                    .and_then(|id| ACCOUNTS.iter().find(|account| account.id == id))
                    .ok_or(BackendError::NotFound)?;
                Ok(BackendResponse::AccountResolved {
                    account_id: account.id.to_owned(),
                    destination: mask_email(account.email),
                })
            }
            BackendRequest::SendLinkCode { account_id, code } => {
                let account = ACCOUNTS
                    .iter()
                    .find(|account| account.id == account_id)
                    .ok_or(BackendError::NotFound)?;
                let sequence = ledger.outbox.len() as u64 + 1;
                ledger.outbox.push(DevOutboxEntry {
                    sequence,
                    account_id,
                    destination: account.email.to_owned(),
                    code,
                });
                Ok(BackendResponse::LinkCodeSent)
            }
            BackendRequest::RequestRefund {
                account_id,
                order_number,
                item,
                reason,
            } => {
                let order = ledger
                    .orders
                    .iter()
                    .find(|order| {
                        order.order_number == order_number && order.account_id == account_id
                    })
                    .ok_or(BackendError::NotFound)?;
                if !order.items.iter().any(|line| line.sku == item) {
                    return Err(BackendError::NotFound);
                }
                match order.status {
                    OrderState::Delivered => {}
                    OrderState::Refunded => {
                        return Err(BackendError::Rejected {
                            reason: "this order has already been refunded".to_owned(),
                        });
                    }
                    _ => {
                        return Err(BackendError::Rejected {
                            reason: "the order hasn't been delivered yet; you can return it once it arrives".to_owned(),
                        });
                    }
                }
                if ledger
                    .refunds
                    .iter()
                    .any(|refund| refund.order_number == order_number && refund.item == item)
                {
                    return Err(BackendError::Rejected {
                        reason: "a refund for this item is already in progress".to_owned(),
                    });
                }
                let reference = format!("R-{}", 5001 + ledger.refunds.len());
                ledger.refunds.push(RecordedRefund {
                    reference: reference.clone(),
                    account_id,
                    order_number,
                    item,
                    reason,
                });
                Ok(BackendResponse::RefundRequested { reference })
            }
            BackendRequest::CreateCheckout { items, .. } => {
                if items.is_empty() || items.iter().any(|item: &CartLine| item.quantity == 0) {
                    return Err(BackendError::Rejected {
                        reason: "the cart is empty".to_owned(),
                    });
                }
                ledger.checkouts += 1;
                Ok(BackendResponse::CheckoutCreated {
                    url: format!("{}c-{:04}", self.checkout_base, ledger.checkouts),
                })
            }
            BackendRequest::RecordComplaint {
                conversation,
                account_id,
                order_number,
                text,
            } => {
                let reference = format!("C-{}", 7001 + ledger.complaints.len());
                ledger.complaints.push(RecordedComplaint {
                    reference: reference.clone(),
                    conversation,
                    account_id,
                    order_number,
                    text,
                });
                Ok(BackendResponse::ComplaintRecorded { reference })
            }
        }
    }
}

impl ShopBackend for DemoBackend {
    fn call(&self, request: BackendRequest) -> BackendFuture<'_> {
        Box::pin(ready(self.handle(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_only_detailed_for_their_owner() {
        let backend = DemoBackend::new();
        let mine = backend.handle(BackendRequest::OrderDetails {
            order_number: "10023".into(),
            account_id: "acc-1001".into(),
        });
        assert!(matches!(mine, Ok(BackendResponse::OrderDetails(_))));
        let theirs = backend.handle(BackendRequest::OrderDetails {
            order_number: "10024".into(),
            account_id: "acc-1001".into(),
        });
        assert_eq!(theirs, Err(BackendError::NotFound));
    }

    #[test]
    fn accounts_resolve_by_email_or_order_with_a_masked_destination() {
        let backend = DemoBackend::new();
        for identifier in ["Jane@Example.com", "10023", "#10025"] {
            assert_eq!(
                backend.handle(BackendRequest::ResolveAccount {
                    identifier: identifier.into()
                }),
                Ok(BackendResponse::AccountResolved {
                    account_id: "acc-1001".into(),
                    destination: "j***@example.com".into()
                }),
                "{identifier}"
            );
        }
    }

    #[test]
    fn sent_codes_land_in_the_dev_outbox() {
        let backend = DemoBackend::new();
        backend
            .handle(BackendRequest::SendLinkCode {
                account_id: "acc-1002".into(),
                code: "654321".into(),
            })
            .unwrap();
        let outbox = backend.outbox();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].destination, "max@example.org");
        assert_eq!(outbox[0].code, "654321");
        assert!(!format!("{outbox:?}").contains("654321"));
    }

    #[test]
    fn refunds_need_a_delivered_order_and_are_not_repeated() {
        let backend = DemoBackend::new();
        let request = |order: &str, item: &str| BackendRequest::RequestRefund {
            account_id: "acc-1001".into(),
            order_number: order.into(),
            item: item.into(),
            reason: "damaged".into(),
        };
        assert!(matches!(
            backend.handle(request("10023", "JKT-RAIN")),
            Err(BackendError::Rejected { .. })
        ));
        assert_eq!(
            backend.handle(request("10025", "TEE-MERINO")),
            Ok(BackendResponse::RefundRequested {
                reference: "R-5001".into()
            })
        );
        assert!(matches!(
            backend.handle(request("10025", "TEE-MERINO")),
            Err(BackendError::Rejected { .. })
        ));
    }
}
