//! The status page over real HTTP: who may see it, the headers that protect its reader, and
//! clear answers to bad requests. The browser tests (`ui_browser.rs`) look at what it shows.

mod support;

use std::sync::Arc;

use trunkwarden::queue::worker::RecordHandler;
use trunkwarden::server::{Running, Settings, start};
use trunkwarden::ui::UiSettings;

async fn serve(ui: UiSettings) -> (tempfile::TempDir, Running, String) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        ui,
        ..support::settings(dir.path(), None, support::SECRET)
    };
    let running = start(settings, Arc::new(RecordHandler)).await.unwrap();
    let url = format!("http://{}", running.addr);
    (dir, running, url)
}

/// The body of a GET.
async fn body(c: &reqwest::Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_sees_the_pages_with_a_strict_policy() {
    let (_dir, running, url) = serve(UiSettings {
        enabled: true,
        token: None,
    })
    .await;
    let c = no_redirects();
    let r = c.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("No forge token is set"),
        "ingest-only says so"
    );
    for path in ["/ui/style.css", "/ui/live.js", "/deliveries"] {
        let r = c.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_answers_and_credentials_are_never_shown() {
    let (_dir, running, url) = serve(UiSettings {
        enabled: true,
        token: None,
    })
    .await;
    let c = no_redirects();
    let fx = support::github("pull_request.opened.0", "ui-1");
    let (status, _) = support::post(&c, &format!("{url}/webhook"), &fx).await;
    assert_eq!(status, 202);
    for (path, code, says) in [
        ("/deliveries?forge=bitbucket", 400, "unknown forge"),
        ("/deliveries?state=lost", 400, "unknown delivery state"),
        ("/deliveries/abc", 400, "a delivery id is a number"),
        ("/deliveries/999", 404, "no delivery 999"),
        ("/repos/acme/app?status=finished", 404, "No forge token"),
    ] {
        let r = c.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), code, "{path}");
        assert!(r.text().await.unwrap().contains(says), "{path}");
    }
    let list = body(
        &c,
        &format!("{url}/deliveries?forge=github&event=pull_request"),
    )
    .await;
    assert!(list.contains("href=\"/deliveries/1\""), "{list}");
    let page = body(&c, &format!("{url}/deliveries/1")).await;
    let signature = fx.headers["x-hub-signature-256"].to_str().unwrap();
    assert!(page.contains("x-github-event"));
    assert!(!page.contains(signature) && !page.contains("x-hub-signature"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_the_pages_and_nothing_else_does() {
    let token = "ui-token-0123456789";
    let (_dir, running, url) = serve(UiSettings {
        enabled: true,
        token: Some(token.into()),
    })
    .await;
    let c = no_redirects();
    // Without it: to the sign-in form; a wrong bearer: refused.
    let r = c.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let r = c
        .get(format!("{url}/deliveries"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{url}/ui/live"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The form: a wrong token sets nothing; the right one a cookie that is not the token.
    let r = c
        .post(format!("{url}/ui/login"))
        .body("token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = c
        .post(format!("{url}/ui/login"))
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains(token), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let r = c
        .get(format!("{url}/"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The webhook is not behind the page's token.
    let (status, _) = support::post(
        &c,
        &format!("{url}/webhook"),
        &support::github("pull_request.opened.0", "ui-2"),
    )
    .await;
    assert_eq!(status, 202);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_page_is_not_there() {
    let (_dir, running, url) = serve(UiSettings {
        enabled: false,
        token: None,
    })
    .await;
    let r = no_redirects().get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    running.shutdown().await;
}
