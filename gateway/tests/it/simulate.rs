//! `switchboard simulate` against a real gateway: a short run with every
//! fault on comes out clean, and a gateway that acknowledges webhooks but
//! never answers is caught.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use switchboard::config::Settings;
use switchboard::simulate::{LIFT_ABUSE_LIMITS, SimulateArgs, gateway_env, simulate};
use switchboard::startup::Application;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A demo gateway in this process whose platform APIs are the simulator's.
async fn gateway(fakes: SocketAddr) -> (String, switchboard::startup::ShutdownTrigger) {
    let mut env = gateway_env(fakes);
    env.push(("SWITCHBOARD__SERVER__BIND".into(), "127.0.0.1:0".into()));
    env.push((
        "SWITCHBOARD__SERVER__ADMIN_BIND".into(),
        "127.0.0.1:0".into(),
    ));
    let lifted: Vec<(String, String)> = env
        .iter()
        .cloned()
        .chain(
            LIFT_ABUSE_LIMITS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
    // Builds without the `[abuse]` section reject its keys.
    let settings = Settings::load_from(None, &lifted)
        .or_else(|_| Settings::load_from(None, &env))
        .unwrap();
    let app = Application::build(settings).await.unwrap();
    let url = format!("http://{}", app.public_addr());
    let trigger = app.shutdown_trigger();
    tokio::spawn(app.run_until_stopped());
    (url, trigger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_with_every_fault_on_is_clean() {
    let fakes = free_addr();
    let (url, trigger) = gateway(fakes).await;
    let args = SimulateArgs::from_args([
        "--gateway",
        &url,
        "--listen",
        &fakes.to_string(),
        "--rate",
        "150",
        "--duration",
        "3",
        "--chats",
        "200",
        "--connections",
        "8",
        "--faults",
        "--duplicates",
        "0.05",
        "--out-of-order",
        "0.05",
        "--batches",
        "0.2",
        "--timeout-retries",
        "0.05",
        "--fault-429",
        "0.03",
        "--fault-5xx",
        "0.05",
        "--fault-window",
        "0.05",
        "--fault-blocked",
        "0.05",
        "--drain",
        "20",
        "--quiet",
    ])
    .unwrap();
    let report = simulate(args).await.unwrap();
    trigger.trigger();
    assert!(report.is_clean(), "{report}");
    assert!(report.acked >= 300, "{report}");
    assert!(report.replies >= 250, "{report}");
    // The faults were really exercised.
    assert!(
        report.duplicates > 0 && report.reordered > 0 && report.batched > 0,
        "{report}"
    );
    assert!(
        report.faults > 0 && report.refused_on_purpose > 0,
        "{report}"
    );
}

/// A "gateway" that takes every webhook and does nothing with it.
async fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() }))
    })
    .disable_signals()
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_never_answers_is_caught() {
    let url = black_hole().await;
    let args = SimulateArgs::from_args([
        "--gateway",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "100",
        "--duration",
        "1",
        "--chats",
        "50",
        "--drain",
        "0.5",
        "--quiet",
    ])
    .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), simulate(args))
        .await
        .unwrap()
        .unwrap();
    assert!(!report.is_clean());
    assert!(report.never_answered > 50, "{report}");
    assert_eq!(report.replies, 0);
}
