//! Messenger: verify, parse and classify over arbitrary requests, plus the
//! subscription handshake. Input layout: see `WebhookInput::split`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{META_SCHEME, handshake, messenger, webhook};
use switchboard_messenger::MessengerAdapter;

static ADAPTER: LazyLock<MessengerAdapter> = LazyLock::new(messenger);

fuzz_target!(|data: &[u8]| {
    webhook(&*ADAPTER, &META_SCHEME, data);
    handshake(&*ADAPTER, data);
});
