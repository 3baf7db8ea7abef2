//! The status page's routes, who may see them, and the headers that keep a page from being
//! turned against its reader.
//!
//! Access: with a token configured (`[ui] token_env`), every request shows it — as
//! `Authorization: Bearer …` or through the cookie `/ui/login` sets; without one, only
//! loopback peers are answered. Pages are read-only; nothing they show is a credential.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use sha2::Digest as _;

use super::board::{BoardInput, board};
use super::layout::{Frame, LIVE_JS, STYLE, page};
use super::{Source, pages};
use crate::queue::{Store, now_ms};
use crate::tasks::Status;

/// Whether the status page is served, and the token that opens it beyond loopback.
#[derive(Clone, Default)]
pub struct UiSettings {
    pub enabled: bool,
    /// From the environment variable `[ui] token_env` names; never from a file or argv.
    pub token: Option<String>,
}

impl std::fmt::Debug for UiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiSettings")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

struct Ui {
    store: Store,
    source: Option<Arc<dyn Source>>,
    /// What the login cookie carries: a digest of the token, never the token.
    cookie: Option<String>,
    token: Option<String>,
}

const COOKIE: &str = "trunkwarden_ui";

/// Strict by default: our own stylesheet and script only, no inline code, no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn cookie_value(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("trunkwarden-ui\0{token}")))
}

/// The status page's routes over the ledger and, when the engine runs, its view of the trunks.
pub fn routes(store: Store, source: Option<Arc<dyn Source>>, settings: &UiSettings) -> Router {
    let ui = Arc::new(Ui {
        store,
        source,
        cookie: settings.token.as_deref().map(cookie_value),
        token: settings.token.clone(),
    });
    Router::new()
        .route("/", get(overview))
        .route("/repos/{owner}/{name}", get(repo))
        .route("/deliveries", get(deliveries))
        .route("/deliveries/{id}", get(delivery))
        .route("/ui/live", get(live))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/style.css", get(style))
        .route("/ui/live.js", get(script))
        .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .with_state(ui)
}

fn is_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(a)| a.ip().is_loopback())
}

/// Whether the request shows the token, compared in constant time.
fn shows_token(ui: &Ui, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq as _;
    let (Some(token), Some(cookie)) = (&ui.token, &ui.cookie) else {
        return false;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| bool::from(b.as_bytes().ct_eq(token.as_bytes()))) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|v| bool::from(v.as_bytes().ct_eq(cookie.as_bytes())))
}

/// Lets a request through when it may see the page, and puts the security headers on every
/// answer.
async fn guard(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = path == "/ui/login" || path == "/ui/style.css";
    let allowed = match &ui.token {
        Some(_) => open || shows_token(&ui, req.headers()),
        None => is_loopback(&req),
    };
    let mut response = if allowed {
        next.run(req).await
    } else if ui.token.is_some() {
        if req.headers().contains_key(header::AUTHORIZATION) {
            (StatusCode::UNAUTHORIZED, "the token does not match\n").into_response()
        } else {
            Redirect::to("/ui/login").into_response()
        }
    } else {
        (
            StatusCode::FORBIDDEN,
            "the status page answers loopback only; set [ui] token_env to open it to others\n",
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn html_page(title: &str, main: Markup) -> Response {
    Html(page(title, Frame::Served, main).into_string()).into_response()
}

fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let mut r = html_page(title, html! { h1 { (title) } p.problem { (message) } });
    *r.status_mut() = status;
    r
}

async fn overview(State(ui): State<Arc<Ui>>) -> Response {
    let main = pages::overview(ui.source.as_deref(), &ui.store, now_ms()).await;
    html_page("Overview", main)
}

#[derive(Debug, serde::Deserialize)]
struct RepoQuery {
    forge: Option<String>,
    status: Option<String>,
    page: Option<usize>,
}

async fn repo(
    State(ui): State<Arc<Ui>>,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<RepoQuery>,
) -> Response {
    let full = format!("{owner}/{name}");
    let Some(source) = ui.source.as_deref() else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not watched",
            "No forge token is set, so no repository is watched.",
        );
    };
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match Status::ALL.into_iter().find(|x| x.as_str() == s) {
            Some(x) => Some(x),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Unknown status",
                    &format!("`{s}` is not a status of the protocol"),
                );
            }
        },
    };
    let forge = match q.forge.filter(|f| !f.is_empty()) {
        Some(f) => f,
        None => {
            let repos = source.repos().await;
            match repos.iter().find(|w| w.repo == full) {
                Some(w) => w.forge.as_str().to_owned(),
                None => String::new(),
            }
        }
    };
    let Some(snap) = source.snapshot(&forge, &full).await else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not watched",
            &format!("{full} is not a repository the bot watches."),
        );
    };
    let Some(table) = snap.view.table.as_deref() else {
        return html_page(
            &full,
            html! { h1 { (full) } p { "The task table has not been read since the start; the next pass reads it." } },
        );
    };
    let href = format!("/repos/{full}");
    let input = BoardInput {
        repo: &full,
        links: &snap.links,
        table,
        learnings: snap.view.learnings.as_deref(),
        waits: &snap.waits,
        merged: &snap.merged,
        required: &snap.required,
        now_ms: now_ms(),
        status,
        page: q.page.unwrap_or(0),
        href: Some(&href),
    };
    match board(&input) {
        Ok(main) => {
            let meta = html! {
                p.trunk {
                    "trunk " code { (snap.view.trunk) }
                    @if snap.view.tip.len() >= 7 { " at " code { (&snap.view.tip[..7]) } }
                    " · " (snap.view.tasks_path)
                    " · read " (super::layout::ago(now_ms() - snap.view.read_at_ms)) " ago"
                }
            };
            html_page(&full, html! { (meta) (main) })
        }
        Err(e) => problem(
            StatusCode::OK,
            &full,
            &format!(
                "{}: the task table cannot be read: {e}",
                snap.view.tasks_path
            ),
        ),
    }
}

async fn deliveries(State(ui): State<Arc<Ui>>, Query(q): Query<pages::DeliveryQuery>) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Bad filter", &e),
    };
    match ui.store.page(&filter, q.before, pages::PAGE).await {
        Ok(rows) => html_page("Deliveries", pages::deliveries(&filter, &rows, now_ms())),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Ledger unavailable",
            &e.to_string(),
        ),
    }
}

async fn delivery(State(ui): State<Arc<Ui>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Bad id",
            "a delivery id is a number",
        );
    };
    match ui.store.get(id).await {
        Ok(Some(d)) => html_page(&format!("Delivery {id}"), pages::delivery(&d)),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "No such delivery",
            &format!("the ledger has no delivery {id}"),
        ),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Ledger unavailable",
            &e.to_string(),
        ),
    }
}

/// A version of everything shown: it changes when a delivery arrives or a pass reads a trunk.
async fn live(State(ui): State<Arc<Ui>>) -> Response {
    let newest = ui.store.newest_id().await.unwrap_or(0);
    let generation = ui.source.as_ref().map_or(0, |s| s.generation());
    (
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{newest}-{generation}"),
    )
        .into_response()
}

async fn login_form() -> Response {
    html_page(
        "Sign in",
        html! {
            h1 { "Status page" }
            form.login method="post" action="/ui/login" {
                label { "Token " input type="password" name="token" autocomplete="current-password" required; }
                button type="submit" { "Open" }
            }
        },
    )
}

async fn login(State(ui): State<Arc<Ui>>, body: Bytes) -> Response {
    use subtle::ConstantTimeEq as _;
    let given = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match (&ui.token, &ui.cookie) {
        (Some(token), Some(cookie)) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/"
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        _ => problem(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "That token does not open this page.",
        ),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLE,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        LIVE_JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn answer(peer: &str, token: Option<&str>, bearer: Option<&str>) -> StatusCode {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::queue::Sync::Normal)
            .await
            .unwrap();
        let settings = UiSettings {
            enabled: true,
            token: token.map(str::to_owned),
        };
        let mut req = Request::builder().uri("/deliveries");
        if let Some(b) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        routes(store, None, &settings)
            .oneshot(req)
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn other_hosts_need_the_token() {
        assert_eq!(answer("127.0.0.1:5000", None, None).await, StatusCode::OK);
        assert_eq!(answer("[::1]:5000", None, None).await, StatusCode::OK);
        assert_eq!(
            answer("10.1.2.3:5000", None, None).await,
            StatusCode::FORBIDDEN,
            "no token configured: loopback only"
        );
        assert_eq!(
            answer("10.1.2.3:5000", Some("t0k"), Some("t0k")).await,
            StatusCode::OK
        );
        assert_eq!(
            answer("127.0.0.1:5000", Some("t0k"), Some("t0")).await,
            StatusCode::UNAUTHORIZED,
            "a configured token binds loopback too (a proxy on the host is loopback)"
        );
    }
}
