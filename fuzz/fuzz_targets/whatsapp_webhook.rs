//! WhatsApp: verify, parse and classify over arbitrary requests, plus the
//! subscription handshake. Input layout: see `WebhookInput::split`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{META_SCHEME, handshake, webhook, whatsapp};
use switchboard_whatsapp::WhatsAppAdapter;

static ADAPTER: LazyLock<WhatsAppAdapter> = LazyLock::new(whatsapp);

fuzz_target!(|data: &[u8]| {
    webhook(&*ADAPTER, &META_SCHEME, data);
    handshake(&*ADAPTER, data);
});
