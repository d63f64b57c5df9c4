//! The agent console in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`, installed by .ci/run) driven over
//! WebDriver. Fails, never skips, when the browser is missing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::handoff::{complain, wait_for_handoff};
use crate::helpers::*;

const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>";

fn find_binary(names: &[&str]) -> Option<String> {
    for name in names {
        for dir in std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/bin", "/usr/lib/chromium"])
        {
            let path = std::path::Path::new(dir).join(name);
            if path.is_file() {
                return Some(path.to_string_lossy().into_owned());
            }
        }
    }
    None
}

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_driver() -> Driver {
    let driver = find_binary(&["chromedriver"]).expect(
        "chromedriver is missing: install Debian's `chromium` and `chromium-driver` (.ci/run does)",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::new();
    loop {
        if let Ok(response) = client.get(format!("{url}/status")).send().await
            && response.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not come up on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let chromium = find_binary(&["chromium", "chromium-browser", "google-chrome"])
        .expect("chromium is missing: install Debian's `chromium` package (.ci/run does)");
    // fantoccini's TLS client needs a process-wide provider; ring is the
    // one the workspace builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     format!("--window-size={width},{height}")],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("cannot open a chromium session through chromedriver")
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn screenshot_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir())
        .join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn an_agent_signs_in_sees_the_complaint_answers_and_no_customer_string_runs_script() {
    let app = spawn_app().await;
    let driver = start_driver().await;
    let client = browser(&driver, 1280, 900).await;
    let console = format!("{}/console/", app.admin);

    client.goto(&console).await.unwrap();
    let token = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    // A wrong token is refused in the page.
    token.send_keys("not-the-token").await.unwrap();
    client
        .find(Locator::Id("login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until("the refusal", || async {
        client
            .find(Locator::Id("login-error"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            != ""
    })
    .await;
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Id("login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until("the queue view", || async {
        client
            .find(Locator::Id("app-view"))
            .await
            .unwrap()
            .attr("hidden")
            .await
            .unwrap()
            .is_none()
    })
    .await;

    // A customer with a hostile name complains through a signed webhook.
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    complain(&app, chat, HOSTILE_NAME).await;
    wait_for_handoff(&app, &conversation).await;

    let item = client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#queue li"))
        .await
        .unwrap();
    // The assistant keeps the first word of the name: "<img".
    let first_name = HOSTILE_NAME.split_whitespace().next().unwrap();
    let name = item.find(Locator::Css(".customer-name")).await.unwrap();
    assert_eq!(
        name.text().await.unwrap(),
        first_name,
        "the name must show as text"
    );
    let complaint = item
        .find(Locator::Css(".complaint"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(complaint.contains("arrived broken"), "{complaint}");
    assert!(!complaint.contains("4111 1111 1111 1111"), "{complaint}");

    item.click().await.unwrap();
    wait_until("the transcript", || async {
        client.find(Locator::Css("#transcript li")).await.is_ok()
    })
    .await;
    assert_eq!(
        client
            .find(Locator::Id("conv-name"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        first_name
    );
    // The customer writes markup during the hand-off: it shows as text.
    let response = app
        .post_telegram(
            "tg",
            Some(TG_SECRET),
            &crate::handoff::telegram_from(chat, HOSTILE_NAME, HOSTILE_NAME),
        )
        .await;
    assert_eq!(response.status(), 200);
    wait_until("the customer's markup in the transcript", || async {
        match client
            .find(Locator::Css("#transcript li.customer:last-child .text"))
            .await
        {
            Ok(line) => line.text().await.unwrap() == HOSTILE_NAME,
            Err(_) => false,
        }
    })
    .await;

    // The agent answers; the reply reaches the platform API and shows in
    // the live transcript.
    let reply = "Hello, I am Zoe from the shop. A new parcel is on its way.";
    client
        .find(Locator::Id("reply-text"))
        .await
        .unwrap()
        .send_keys(reply)
        .await
        .unwrap();
    client
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .fake
        .to_chat(&chat.to_string())
        .iter()
        .any(|r| sent_text(r) == reply)
    {
        assert!(
            Instant::now() < deadline,
            "the agent's reply did not reach the platform API"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("the agent line in the transcript", || async {
        match client.find(Locator::Css("#transcript li.agent")).await {
            Ok(line) => line.text().await.unwrap().contains("A new parcel"),
            Err(_) => false,
        }
    })
    .await;

    // No script ran: no alert is open, and no element was made from the
    // customer's markup.
    assert!(
        client.get_alert_text().await.is_err(),
        "an alert is open: script ran"
    );
    let images: Value = client
        .execute("return document.querySelectorAll('img').length;", vec![])
        .await
        .unwrap();
    assert_eq!(images, json!(0), "customer markup became elements");

    let path = screenshot_path("agent-console.png");
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    #[allow(clippy::print_stdout)]
    {
        println!("agent console screenshot: {}", path.display());
    }

    // Hand back to the bot from the page.
    client
        .find(Locator::Id("hand-back"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until("the hand-back", || async {
        client
            .find(Locator::Id("conv-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            != ""
    })
    .await;
    client.close().await.unwrap();

    // The same page on a phone-sized screen: the queue fits, nothing
    // overflows sideways.
    say_phone(&app, &driver).await;
    drop(driver);
    app.stop().await;
}

async fn say_phone(app: &TestApp, driver: &Driver) {
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    crate::handoff::say(app, chat, "Eve", "I want to talk to a human").await;
    wait_for_handoff(app, &conversation).await;
    let client = browser(driver, 390, 844).await;
    client
        .goto(&format!("{}/console/", app.admin))
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Id("login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let item = client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#queue li"))
        .await
        .unwrap();
    item.click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#transcript li"))
        .await
        .unwrap();
    let overflow: Value = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(false),
        "the console scrolls sideways on a phone"
    );
    let path = screenshot_path("agent-console-phone.png");
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    #[allow(clippy::print_stdout)]
    {
        println!("agent console phone screenshot: {}", path.display());
    }
    client.close().await.unwrap();
}
