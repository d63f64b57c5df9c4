//! The REST form of the backend contract (docs/SHOP_BACKEND.md), sans I/O:
//! which call a request becomes, and what an HTTP answer means. The
//! gateway's HTTP client only moves bytes.

use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{BackendError, BackendRequest, BackendResponse, OrderDetails, OrderState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestMethod {
    Get,
    Post,
}

/// One HTTP call relative to the configured base URL. The caller adds
/// `Authorization: Bearer <token>` and `Accept: application/json`.
#[derive(Clone, PartialEq)]
pub struct RestCall {
    pub method: RestMethod,
    /// Starts with `/`; path segments are percent-encoded.
    pub path: String,
    /// JSON body for POSTs.
    pub body: Option<Value>,
}

// Bodies carry codes and personal data: never print them.
impl fmt::Debug for RestCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestCall")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body", &self.body.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn rest_call(request: &BackendRequest) -> RestCall {
    let post = |path: String, body: Value| RestCall {
        method: RestMethod::Post,
        path,
        body: Some(body),
    };
    match request {
        BackendRequest::OrderStatus { order_number } => RestCall {
            method: RestMethod::Get,
            path: format!("/orders/{}/status", segment(order_number)),
            body: None,
        },
        BackendRequest::OrderDetails {
            order_number,
            account_id,
        } => RestCall {
            method: RestMethod::Get,
            path: format!(
                "/accounts/{}/orders/{}",
                segment(account_id),
                segment(order_number)
            ),
            body: None,
        },
        BackendRequest::ResolveAccount { identifier } => post(
            "/accounts/resolve".to_owned(),
            json!({ "identifier": identifier }),
        ),
        BackendRequest::SendLinkCode { account_id, code } => post(
            format!("/accounts/{}/link-codes", segment(account_id)),
            json!({ "code": code }),
        ),
        BackendRequest::RequestRefund {
            account_id,
            order_number,
            item,
            reason,
        } => post(
            "/refunds".to_owned(),
            json!({
                "account_id": account_id,
                "order_number": order_number,
                "item": item,
                "reason": reason,
            }),
        ),
        BackendRequest::CreateCheckout { items, account_id } => post(
            "/checkouts".to_owned(),
            json!({ "items": items, "account_id": account_id }),
        ),
        BackendRequest::RecordComplaint {
            conversation,
            account_id,
            order_number,
            text,
        } => post(
            "/complaints".to_owned(),
            json!({
                "conversation": conversation,
                "account_id": account_id,
                "order_number": order_number,
                "text": text,
            }),
        ),
    }
}

#[derive(Deserialize)]
struct StatusBody {
    order_number: String,
    status: OrderState,
}

#[derive(Deserialize)]
struct ResolvedBody {
    account_id: String,
    destination: String,
}

#[derive(Deserialize)]
struct ReferenceBody {
    reference: String,
}

#[derive(Deserialize)]
struct CheckoutBody {
    url: String,
}

#[derive(Deserialize)]
struct ReasonBody {
    reason: String,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, BackendError> {
    serde_json::from_slice(body).map_err(|error| BackendError::InvalidResponse {
        reason: format!("unexpected body: {error}"),
    })
}

/// What an HTTP answer to `request` means.
pub fn rest_response(
    request: &BackendRequest,
    status: u16,
    body: &[u8],
) -> Result<BackendResponse, BackendError> {
    match status {
        200..=299 => {}
        404 => return Err(BackendError::NotFound),
        401 | 403 => return Err(BackendError::Unauthorized),
        409 | 422 => {
            let reason = serde_json::from_slice::<ReasonBody>(body)
                .map(|body| body.reason)
                .unwrap_or_else(|_| "the shop refused the request".to_owned());
            return Err(BackendError::Rejected { reason });
        }
        408 | 429 | 500..=599 => {
            return Err(BackendError::Unavailable {
                reason: format!("HTTP {status}"),
            });
        }
        _ => {
            return Err(BackendError::InvalidResponse {
                reason: format!("HTTP {status}"),
            });
        }
    }
    match request {
        BackendRequest::OrderStatus { .. } => {
            let body: StatusBody = parse(body)?;
            Ok(BackendResponse::OrderStatus {
                order_number: body.order_number,
                status: body.status,
            })
        }
        BackendRequest::OrderDetails { .. } => {
            parse::<OrderDetails>(body).map(BackendResponse::OrderDetails)
        }
        BackendRequest::ResolveAccount { .. } => {
            let body: ResolvedBody = parse(body)?;
            Ok(BackendResponse::AccountResolved {
                account_id: body.account_id,
                destination: body.destination,
            })
        }
        BackendRequest::SendLinkCode { .. } => Ok(BackendResponse::LinkCodeSent),
        BackendRequest::RequestRefund { .. } => {
            let body: ReferenceBody = parse(body)?;
            Ok(BackendResponse::RefundRequested {
                reference: body.reference,
            })
        }
        BackendRequest::CreateCheckout { .. } => {
            let body: CheckoutBody = parse(body)?;
            Ok(BackendResponse::CheckoutCreated { url: body.url })
        }
        BackendRequest::RecordComplaint { .. } => {
            let body: ReferenceBody = parse(body)?;
            Ok(BackendResponse::ComplaintRecorded {
                reference: body.reference,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_and_codes_never_printed() {
        let call = rest_call(&BackendRequest::OrderDetails {
            order_number: "10 23/x".into(),
            account_id: "acc-1".into(),
        });
        assert_eq!(call.path, "/accounts/acc-1/orders/10%2023%2Fx");
        let call = rest_call(&BackendRequest::SendLinkCode {
            account_id: "acc-1".into(),
            code: "123456".into(),
        });
        assert_eq!(call.body, Some(json!({"code": "123456"})));
        assert!(!format!("{call:?}").contains("123456"));
    }

    #[test]
    fn status_codes_map_to_errors() {
        let request = BackendRequest::OrderStatus {
            order_number: "1".into(),
        };
        assert_eq!(
            rest_response(&request, 404, b""),
            Err(BackendError::NotFound)
        );
        assert_eq!(
            rest_response(&request, 401, b""),
            Err(BackendError::Unauthorized)
        );
        assert!(matches!(
            rest_response(&request, 503, b""),
            Err(BackendError::Unavailable { .. })
        ));
        assert_eq!(
            rest_response(&request, 422, br#"{"reason":"too late"}"#),
            Err(BackendError::Rejected {
                reason: "too late".into()
            })
        );
        assert!(matches!(
            rest_response(&request, 200, b"nonsense"),
            Err(BackendError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn the_demo_backends_answers_round_trip_through_the_rest_shapes() {
        let demo = super::super::DemoBackend::new();
        let request = BackendRequest::OrderDetails {
            order_number: "10023".into(),
            account_id: "acc-1001".into(),
        };
        let Ok(BackendResponse::OrderDetails(order)) = demo.handle(request.clone()) else {
            panic!("seeded order");
        };
        let body = serde_json::to_vec(&order).unwrap();
        assert_eq!(
            rest_response(&request, 200, &body),
            Ok(BackendResponse::OrderDetails(order))
        );
        let request = BackendRequest::OrderStatus {
            order_number: "10024".into(),
        };
        assert_eq!(
            rest_response(
                &request,
                200,
                br#"{"order_number":"10024","status":"delivered"}"#
            ),
            Ok(BackendResponse::OrderStatus {
                order_number: "10024".into(),
                status: OrderState::Delivered
            })
        );
    }
}
