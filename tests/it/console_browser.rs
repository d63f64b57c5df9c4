//! The agent console in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`, installed by .ci/run) driven over
//! WebDriver. Fails, never skips, when the browser is missing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::handoff::{complain, wait_for_handoff};
use crate::helpers::*;

const HOSTILE_NAME: &str = "<img src=x onerror=alert(1)>";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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

/// A W3C WebDriver session on chromedriver, spoken over plain HTTP: the
/// few commands these tests need. (fantoccini would pull in aws-lc-rs
/// beside ring, and two rustls providers break the workspace's default.)
struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    async fn open(driver: &Driver, width: u32, height: u32) -> Browser {
        let chromium = find_binary(&["chromium", "chromium-browser", "google-chrome"])
            .expect("chromium is missing: install Debian's `chromium` package (.ci/run does)");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         format!("--window-size={width},{height}")],
            },
        }}});
        let response: Value = http
            .post(format!("{}/session", driver.url))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver does not answer")
            .json()
            .await
            .unwrap();
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("cannot open a chromium session: {response:#}"));
        Browser {
            http,
            session: format!("{}/session/{id}", driver.url),
        }
    }

    /// One command; `Err` carries the WebDriver error value.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        let value = response["value"].clone();
        if value.get("error").is_some() {
            Err(value)
        } else {
            Ok(value)
        }
    }

    async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap();
    }

    async fn find(&self, css: &str) -> Option<String> {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(str::to_owned)
    }

    async fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(Instant::now() < deadline, "no element {css} appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        self.command("POST", &format!("/element/{element}/click"), None)
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap();
    }

    async fn text(&self, css: &str) -> String {
        let Some(element) = self.find(css).await else {
            return String::new();
        };
        self.command("GET", &format!("/element/{element}/text"), None)
            .await
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    }

    async fn hidden(&self, css: &str) -> bool {
        let element = self.wait_for(css).await;
        self.command("GET", &format!("/element/{element}/attribute/hidden"), None)
            .await
            .map(|v| !v.is_null())
            .unwrap_or(true)
    }

    async fn execute(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
        .unwrap()
    }

    async fn alert_open(&self) -> bool {
        self.command("GET", "/alert/text", None).await.is_ok()
    }

    async fn screenshot(&self, name: &str) {
        let encoded = self.command("GET", "/screenshot", None).await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        let path = screenshot_path(name);
        std::fs::write(&path, png).unwrap();
        #[allow(clippy::print_stdout)]
        {
            println!("agent console screenshot: {}", path.display());
        }
    }

    async fn close(self) {
        let _ = self.command("DELETE", "", None).await;
    }
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
    let browser = Browser::open(&driver, 1280, 900).await;
    browser.goto(&format!("{}/console/", app.admin)).await;

    // A wrong token is refused in the page.
    browser.type_into("#token", "not-the-token").await;
    browser.click("#login-button").await;
    wait_until("the refusal", || async {
        !browser.text("#login-error").await.is_empty()
    })
    .await;
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#login-button").await;
    wait_until("the queue view", || async {
        !browser.hidden("#app-view").await
    })
    .await;

    // A customer with a hostile name complains through a signed webhook.
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    complain(&app, chat, HOSTILE_NAME).await;
    wait_for_handoff(&app, &conversation).await;

    browser.wait_for("#queue li").await;
    // The assistant keeps the first word of the name: "<img".
    let first_name = HOSTILE_NAME.split_whitespace().next().unwrap();
    assert_eq!(
        browser.text("#queue li .customer-name").await,
        first_name,
        "the name must show as text"
    );
    let complaint = browser.text("#queue li .complaint").await;
    assert!(complaint.contains("arrived broken"), "{complaint}");
    assert!(!complaint.contains("4111 1111 1111 1111"), "{complaint}");

    browser.click("#queue li").await;
    browser.wait_for("#transcript li").await;
    assert_eq!(browser.text("#conv-name").await, first_name);

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
        browser
            .text("#transcript li.customer:last-child .text")
            .await
            == HOSTILE_NAME
    })
    .await;

    // The agent answers; the reply reaches the platform API and shows in
    // the live transcript.
    let reply = "Hello, I am Zoe from the shop. A new parcel is on its way.";
    browser.type_into("#reply-text", reply).await;
    browser.click("#send").await;
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
        browser
            .text("#transcript li.agent")
            .await
            .contains("A new parcel")
    })
    .await;

    // No script ran: no alert is open, and no element was made from the
    // customer's markup.
    assert!(!browser.alert_open().await, "an alert is open: script ran");
    assert_eq!(
        browser
            .execute("return document.querySelectorAll('img').length;")
            .await,
        json!(0),
        "customer markup became elements"
    );
    browser.screenshot("agent-console.png").await;

    // Hand back to the bot from the page.
    browser.click("#hand-back").await;
    wait_until("the hand-back", || async {
        !browser.text("#conv-status").await.is_empty()
    })
    .await;
    browser.close().await;

    phone_sized(&app, &driver).await;
    drop(driver);
    app.stop().await;
}

/// The same page on a phone-sized screen: the queue and a conversation
/// fit, nothing overflows sideways.
async fn phone_sized(app: &TestApp, driver: &Driver) {
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    crate::handoff::say(app, chat, "Eve", "I want to talk to a human").await;
    wait_for_handoff(app, &conversation).await;
    let browser = Browser::open(driver, 390, 844).await;
    browser.goto(&format!("{}/console/", app.admin)).await;
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#login-button").await;
    browser.click("#queue li").await;
    browser.wait_for("#transcript li").await;
    assert_eq!(
        browser
            .execute("return document.documentElement.scrollWidth > window.innerWidth + 1;")
            .await,
        json!(false),
        "the console scrolls sideways on a phone"
    );
    browser.screenshot("agent-console-phone.png").await;
    browser.close().await;
}
