//! TLS on the public listener (and optionally the admin one) with rustls:
//! HTTPS and HTTP/2 work, plain HTTP on the TLS port does not.

use std::process::Command;

use crate::helpers::*;

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command is needed for the TLS tests (apt-get install openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, made with
/// the openssl command. Returns (CA cert, server cert, server key).
fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (ca_key, ca, key, csr, cert, ext) = (
        path("ca.key"),
        path("ca.pem"),
        path("key.pem"),
        path("server.csr"),
        path("cert.pem"),
        path("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=switchboard test CA",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca.into(), cert.into(), key.into())
}

#[tokio::test]
async fn https_and_http2_work_and_plain_http_does_not() {
    let dir = TempDir::new();
    let (ca, cert, key) = certificates(&dir.0);
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__SERVER__TLS_CERT", cert.to_str().unwrap()),
            ("SWITCHBOARD__SERVER__TLS_KEY", key.to_str().unwrap()),
            ("SWITCHBOARD__SERVER__ADMIN_TLS", "true"),
        ],
    )
    .await;
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let https = app.public.replace("http://", "https://");
    let response = client.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN should pick HTTP/2"
    );

    let admin = app.admin.replace("http://", "https://");
    let response = client
        .get(format!("{admin}/readyz"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .unwrap();
    let answered = plain
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert!(
        !matches!(answered, Ok(200)),
        "plain HTTP must not be served: {answered:?}"
    );

    // A webhook over TLS goes through the whole path.
    let response = client
        .post(format!("{https}/webhooks/telegram/tg"))
        .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
        .body(telegram_text(1234, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.fake
        .wait_for(1, std::time::Duration::from_secs(5))
        .await;
    app.stop().await;
}
