//! Render: an arbitrary outbound message through all three adapters, with
//! the platforms' limits and the secrets checked on every request.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{FuzzOutbound, check_render, messenger, telegram, whatsapp};
use switchboard_messenger::MessengerAdapter;
use switchboard_model::PlatformAdapter;
use switchboard_telegram::TelegramAdapter;
use switchboard_whatsapp::WhatsAppAdapter;

static ADAPTERS: LazyLock<(MessengerAdapter, WhatsAppAdapter, TelegramAdapter)> =
    LazyLock::new(|| (messenger(), whatsapp(), telegram()));

fuzz_target!(|message: FuzzOutbound| {
    let (ms, wa, tg) = &*ADAPTERS;
    let adapters: [&dyn PlatformAdapter; 3] = [ms, wa, tg];
    for adapter in adapters {
        check_render(adapter, &message.to_model(adapter));
    }
    // A message for another platform must be refused, not sent.
    let foreign = message.to_model(tg);
    for adapter in [ms as &dyn PlatformAdapter, wa] {
        assert!(
            adapter.render(&foreign).is_err(),
            "rendered a Telegram message"
        );
    }
});
