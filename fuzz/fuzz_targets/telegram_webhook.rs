//! Telegram: secret-token check, parse and classify over arbitrary
//! requests. Input layout: see `WebhookInput::split`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{TELEGRAM_SCHEME, telegram, webhook};
use switchboard_telegram::TelegramAdapter;

static ADAPTER: LazyLock<TelegramAdapter> = LazyLock::new(telegram);

fuzz_target!(|data: &[u8]| {
    webhook(&*ADAPTER, &TELEGRAM_SCHEME, data);
});
