//! `trunkwarden serve`: the HTTP front door. A delivery is verified over its raw bytes, stored
//! durably, and answered `202` (or `200` for a duplicate) — processing happens later, from the
//! ledger, in the workers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::queue::worker::{self, Handler, Heartbeat, WorkerConfig};
use crate::queue::{Inserted, NewDelivery, Store, StoreError, Sync, now_ms};
use crate::webhook::{ForgeKind, Verifier, meta};

/// Everything `serve` needs, resolved from flags, environment and the config file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A PostgreSQL URL several replicas share; `None` keeps the ledger in `data_dir` (SQLite).
    pub db: Option<String>,
    /// Largest accepted body; GitHub sends up to 25 MB.
    pub max_body_bytes: usize,
    /// Bytes of bodies read at once across all connections, before any signature is checked:
    /// the bound on what unsigned senders can make the process hold.
    pub max_body_bytes_in_flight: usize,
    pub request_timeout: Duration,
    pub connections: Connections,
    /// `None` runs ingest only: deliveries are stored and left for another process.
    pub workers: Option<WorkerConfig>,
    pub sync: Sync,
    pub verifier: Verifier,
    /// What the ledger keeps and for how long; `None` keeps everything.
    pub retention: Option<crate::queue::retention::Retention>,
    /// The status page: on or off, and the token that opens it beyond loopback.
    pub ui: crate::ui::UiSettings,
}

/// Bounds on connections, so idle or slow sockets cannot hold the front door open.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Open connections at most; one past it is closed at once. Keep it under the process's
    /// file-descriptor limit (`LimitNOFILE` in the systemd unit, `ulimit -n` in containers).
    pub max: usize,
    /// A request's header must arrive within this, and an idle keep-alive connection is closed
    /// after it.
    pub header_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max: 512,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct App {
    store: Store,
    verifier: Verifier,
    metrics: PrometheusHandle,
    heartbeat: Option<Heartbeat>,
}

/// The process-wide Prometheus recorder (installed once, shared by every server in a process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let builder = PrometheusBuilder::new();
            let recorder = builder
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then our handle renders nothing.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe_metrics();
            }
            handle
        })
        .clone()
}

/// A `# HELP` line for every metric, and every series a dashboard or an alert reads present
/// from the start at zero, before the first event.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "trunkwarden_deliveries_received_total",
        "Webhook deliveries received, by forge."
    );
    describe_counter!(
        "trunkwarden_deliveries_accepted_total",
        "Deliveries verified and stored, by forge and event."
    );
    describe_counter!(
        "trunkwarden_deliveries_rejected_total",
        "Deliveries refused, by forge and reason (signature, size, header)."
    );
    describe_counter!(
        "trunkwarden_deliveries_duplicate_total",
        "Redeliveries of a delivery already stored, by forge."
    );
    describe_counter!(
        "trunkwarden_processed_total",
        "Deliveries processed, by outcome (done, ignored)."
    );
    describe_counter!(
        "trunkwarden_retries_total",
        "Processing attempts that failed for now and were scheduled again."
    );
    describe_counter!(
        "trunkwarden_dead_letters_total",
        "Deliveries given up on; `trunkwarden deliveries list --state dead` shows why."
    );
    describe_counter!(
        "trunkwarden_forge_requests_total",
        "Forge API requests, by forge, endpoint and HTTP status."
    );
    describe_gauge!(
        "trunkwarden_queue_depth",
        "Deliveries stored and not yet processed."
    );
    describe_gauge!(
        "trunkwarden_deliveries",
        "Deliveries in the ledger, by state."
    );
    describe_gauge!(
        "trunkwarden_ledger_bytes",
        "Bytes the ledger takes on disk; flat once the retention prunes as much as arrives."
    );
    describe_gauge!(
        "trunkwarden_forge_rate_limit_remaining",
        "Requests left in the rate-limit budget the forge announced last, by forge."
    );
    describe_histogram!(
        "trunkwarden_ack_seconds",
        metrics::Unit::Seconds,
        "Time from a delivery's arrival to its answer, by forge."
    );
    describe_histogram!(
        "trunkwarden_processing_seconds",
        metrics::Unit::Seconds,
        "Time to process one delivery."
    );
    for name in [
        "trunkwarden_dead_letters_total",
        "trunkwarden_retries_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for outcome in ["done", "ignored"] {
        metrics::counter!("trunkwarden_processed_total", "outcome" => outcome).absolute(0);
    }
    for forge in ForgeKind::ALL {
        let f = forge.as_str();
        metrics::counter!("trunkwarden_deliveries_received_total", "forge" => f).absolute(0);
        metrics::counter!("trunkwarden_deliveries_duplicate_total", "forge" => f).absolute(0);
    }
    metrics::gauge!("trunkwarden_queue_depth").set(0.0);
}

/// Builds the router over an opened store.
fn router(app: Arc<App>, max_body: usize, in_flight: usize, timeout: Duration) -> Router {
    let gate = BodyGate::new(max_body, in_flight);
    Router::new()
        .route("/webhook", post(ingest_detect))
        .route("/webhook/{forge}", post(ingest_named))
        .route_layer(axum::middleware::from_fn_with_state(gate, gate_body))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(app)
}

/// Room for request bodies, counted in KiB: a body is read only once its declared length (the
/// largest allowed when it declares none) fits beside the others being read.
#[derive(Clone)]
struct BodyGate {
    max_body: usize,
    kib: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
}

impl BodyGate {
    fn new(max_body: usize, in_flight: usize) -> BodyGate {
        let total_kib = u32::try_from(in_flight.max(max_body).div_ceil(1024).max(1))
            .unwrap_or(u32::MAX >> 4)
            .min(tokio::sync::Semaphore::MAX_PERMITS as u32);
        BodyGate {
            max_body,
            kib: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }
}

/// How long a body waits for room before the sender is told to come back.
const BODY_ROOM_WAIT: Duration = Duration::from_secs(5);

/// Refuses a declared length over the limit before a byte of the body is read, and holds room
/// for the body while it is read, verified and stored.
async fn gate_body(
    State(gate): State<BodyGate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.max_body as u64) {
        metrics::counter!("trunkwarden_deliveries_rejected_total", "forge" => "unknown", "reason" => "too_large")
            .increment(1);
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({ "error": format!("the body declares more than {} bytes", gate.max_body) }),
        );
    }
    let bytes = declared.map_or(gate.max_body, |n| n as usize);
    let want = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, gate.total_kib);
    match tokio::time::timeout(BODY_ROOM_WAIT, gate.kib.clone().acquire_many_owned(want)).await {
        Ok(Ok(room)) => {
            // Read here into one buffer of the declared size: the body is held once, not
            // as chunks and again as their copy.
            let (parts, body) = req.into_parts();
            let body = match read_body(body, declared, gate.max_body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let response = next
                .run(axum::extract::Request::from_parts(parts, body.into()))
                .await;
            drop(room);
            response
        }
        _ => {
            metrics::counter!("trunkwarden_deliveries_rejected_total", "forge" => "unknown", "reason" => "busy")
                .increment(1);
            let mut r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "too many bodies being read at once; try again" }),
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            r
        }
    }
}

/// A request body, whole, refused past `max` bytes.
async fn read_body(
    body: axum::body::Body,
    declared: Option<u64>,
    max: usize,
) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(64 << 10, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            reply(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("cannot read the body: {e}") }),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "error": format!("the body is larger than {max} bytes") }),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn ingest_detect(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    match crate::webhook::detect(&headers) {
        Some(forge) => ingest(&app, forge, &headers, body).await,
        None => reply(
            StatusCode::BAD_REQUEST,
            json!({"error": "unknown sender: expected an X-GitHub-Event, X-Gitea-Event, X-Forgejo-Event or X-Gitlab-Event header, or POST to /webhook/{github,gitea,forgejo,gitlab}"}),
        ),
    }
}

async fn ingest_named(
    State(app): State<Arc<App>>,
    Path(forge): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match forge.parse::<ForgeKind>() {
        Ok(forge) => ingest(&app, forge, &headers, body).await,
        Err(e) => reply(StatusCode::NOT_FOUND, json!({ "error": e })),
    }
}

async fn ingest(app: &App, forge: ForgeKind, headers: &HeaderMap, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let response = ingest_inner(app, forge, headers, body).await;
    // From the body in hand to the answer: what the forge waits for, disk sync included.
    metrics::histogram!("trunkwarden_ack_seconds", "forge" => forge.as_str())
        .record(started.elapsed().as_secs_f64());
    response
}

async fn ingest_inner(app: &App, forge: ForgeKind, headers: &HeaderMap, body: Bytes) -> Response {
    let f = forge.as_str();
    metrics::counter!("trunkwarden_deliveries_received_total", "forge" => f).increment(1);
    if let Err(why) = app
        .verifier
        .verify(forge, headers, &body, chrono::Utc::now().timestamp())
    {
        metrics::counter!("trunkwarden_deliveries_rejected_total", "forge" => f, "reason" => why.label())
            .increment(1);
        tracing::warn!(forge = f, reason = why.label(), "delivery refused: {why}");
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({ "error": why.to_string() }),
        );
    }
    let m = match meta(forge, headers, &body) {
        Ok(m) => m,
        Err(e) => {
            metrics::counter!("trunkwarden_deliveries_rejected_total", "forge" => f, "reason" => "bad_header")
                .increment(1);
            return reply(StatusCode::BAD_REQUEST, json!({ "error": e.to_string() }));
        }
    };
    let event = m.event.clone();
    let delivery_id = m.delivery_id.clone();
    let new = NewDelivery {
        forge,
        hook_id: m.hook_id,
        delivery_id: m.delivery_id,
        event: m.event,
        headers: serde_json::to_string(&m.headers).unwrap_or_else(|_| "{}".into()),
        body,
        received_at: now_ms(),
    };
    match app.store.insert(new).await {
        Ok(Inserted::New(id)) => {
            metrics::counter!("trunkwarden_deliveries_accepted_total", "forge" => f, "event" => event.clone())
                .increment(1);
            tracing::debug!(forge = f, %event, %delivery_id, id, "delivery stored");
            reply(
                StatusCode::ACCEPTED,
                json!({ "id": id, "delivery": delivery_id, "status": "queued" }),
            )
        }
        Ok(Inserted::Duplicate) => {
            metrics::counter!("trunkwarden_deliveries_duplicate_total", "forge" => f).increment(1);
            reply(
                StatusCode::OK,
                json!({ "delivery": delivery_id, "status": "duplicate" }),
            )
        }
        Err(e) => {
            tracing::error!(forge = f, error = %e, "cannot store delivery");
            // 503 makes GitLab retry; GitHub and Gitea never redeliver on their own.
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "cannot store the delivery" }),
            )
        }
    }
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if let Err(e) = app.store.ping().await {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ready": false, "database": e.to_string() }),
        );
    }
    if let Some(hb) = &app.heartbeat
        && hb.age_ms().is_none_or(|age| age > 10_000)
    {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ready": false, "workers": "not running" }),
        );
    }
    reply(StatusCode::OK, json!({ "ready": true }))
}

async fn render_metrics(State(app): State<Arc<App>>) -> Response {
    if let Ok(counts) = app.store.counts().await {
        for state in ["queued", "done", "ignored", "dead"] {
            let n = counts.get(state).copied().unwrap_or(0);
            metrics::gauge!("trunkwarden_deliveries", "state" => state).set(n as f64);
        }
        metrics::gauge!("trunkwarden_queue_depth")
            .set(counts.get("queued").copied().unwrap_or(0) as f64);
    }
    if let Ok(bytes) = app.store.size_bytes().await {
        metrics::gauge!("trunkwarden_ledger_bytes").set(bytes as f64);
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// A running server: its address, its ledger, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Store,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    workers: Option<JoinHandle<()>>,
    upkeep: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests and jobs finish, and waits for both.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.upkeep.await;
        let _ = self.http.await;
        if let Some(w) = self.workers {
            let _ = w.await;
        }
    }
}

/// How often the ledger is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The ledger's retention beside the server, pruned at start and hourly in small windows that
/// leave room for the writer's other work.
async fn upkeep(
    store: Store,
    retention: Option<crate::queue::retention::Retention>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(r) = retention else {
        return;
    };
    loop {
        if let Err(e) = store.prune(&r).await {
            tracing::warn!(error = %e, "cannot prune the ledger; trying again in an hour");
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Opens the ledger, binds the listener, and starts the HTTP server and the workers.
pub async fn start<H: Handler>(
    settings: Settings,
    handler: Arc<H>,
) -> Result<Running, ServerError> {
    start_with(settings, handler, None).await
}

/// [`start`], with the status page reading the trunks from `source` (the engines).
pub async fn start_with<H: Handler>(
    settings: Settings,
    handler: Arc<H>,
    source: Option<Arc<dyn crate::ui::Source>>,
) -> Result<Running, ServerError> {
    let store = Store::connect(settings.db.as_deref(), &settings.data_dir, settings.sync).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: settings.listen,
        source,
    })?;
    // One line says which forges are heard; unsigned acceptance is worth a warning of its own.
    let names = |keep: &dyn Fn(ForgeKind) -> bool| {
        ForgeKind::ALL
            .into_iter()
            .filter(|f| keep(*f))
            .map(ForgeKind::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let v = &settings.verifier;
    let signed = names(&|f| v.has_secret(f));
    let unsigned = names(&|f| !v.has_secret(f) && v.allow_unsigned.contains(&f));
    let refused = names(&|f| !v.has_secret(f) && !v.allow_unsigned.contains(&f));
    if signed.is_empty() && unsigned.is_empty() {
        tracing::warn!(
            "no webhook secret configured: every delivery is refused (README: Webhook secrets)"
        );
    } else {
        tracing::info!(
            accepting = %signed,
            refusing = %refused,
            "accepting signed deliveries from {}",
            if signed.is_empty() { "no forge" } else { signed.as_str() }
        );
    }
    if !unsigned.is_empty() {
        tracing::warn!(forges = %unsigned, "accepting UNSIGNED deliveries, as configured");
    }
    let (stop, stop_rx) = watch::channel(false);
    let upkeep = tokio::spawn(upkeep(store.clone(), settings.retention, stop_rx.clone()));
    let heartbeat = settings.workers.map(|_| Heartbeat::default());
    let app = Arc::new(App {
        store: store.clone(),
        verifier: settings.verifier.clone(),
        metrics: metrics_handle(),
        heartbeat: heartbeat.clone(),
    });
    let mut routes = router(
        app,
        settings.max_body_bytes,
        settings.max_body_bytes_in_flight,
        settings.request_timeout,
    );
    if settings.ui.enabled {
        routes = routes.merge(crate::ui::routes(store.clone(), source, &settings.ui));
    }
    let http = tokio::spawn(accept(
        listener,
        routes,
        settings.connections,
        stop_rx.clone(),
    ));
    let workers = match (settings.workers, heartbeat) {
        (Some(cfg), Some(hb)) => Some(tokio::spawn(worker::run(
            store.clone(),
            handler,
            cfg,
            hb,
            stop_rx,
        ))),
        _ => None,
    };
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), "trunkwarden serve listening");
    Ok(Running {
        addr,
        store,
        stop,
        http,
        workers,
        upkeep,
    })
}

/// Serves HTTP/1.1 until `stop`: each connection bounded by a header-read (and keep-alive idle)
/// timeout, at most `limits.max` at once — one more is closed on arrival instead of waiting, so
/// a flood of idle sockets cannot starve signed deliveries of file descriptors. On stop, open
/// requests finish (for up to the request timeout's worth of grace).
async fn accept(
    listener: tokio::net::TcpListener,
    routes: Router,
    limits: Connections,
    mut stop: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("trunkwarden_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer's address travels with each request: the status page answers loopback
        // peers only, unless a token opens it.
        let service =
            hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
                routes.clone(),
                move |mut r: axum::http::Request<hyper::body::Incoming>| {
                    r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    r
                },
            ));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            // What a connection buffers ahead of its handler, waiting or not: 64 KiB, not 400.
            .max_buf_size(64 << 10);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s of shutdown; closing them");
    }
}

/// The settings file of `trunkwarden serve` (`--config`). Every key is optional; command-line
/// flags and `TRUNKWARDEN_*` variables win over it. Secrets never live here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub ui: UiSection,
    #[serde(default)]
    pub queue: QueueSection,
    #[serde(default)]
    pub webhook: WebhookSection,
}

/// `[server]`: where to listen and keep data.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    /// Bytes of bodies being read at once (default 2 × `max_body_bytes`).
    pub max_body_bytes_in_flight: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    /// Open connections at most (default 512).
    pub max_connections: Option<usize>,
    /// Seconds for a request's header to arrive, and for a keep-alive connection to stay idle
    /// (default 10).
    pub header_timeout_secs: Option<u64>,
}

/// `[ui]`: the status page.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// Serve the pages (default true; loopback peers only without a token).
    pub enabled: Option<bool>,
    /// The environment variable holding the token that opens the pages to other hosts
    /// (default `TRUNKWARDEN_UI_TOKEN`).
    pub token_env: Option<String>,
}

/// `[queue]`: how deliveries are processed and retried.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Deliveries processed at once; 0 runs ingest only.
    pub workers: Option<usize>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    /// `full` (fsync every commit, the default) or `normal`.
    pub sync: Option<Sync>,
    /// Days a done or ignored delivery is kept (default 30; 0 keeps them forever).
    pub retention_days: Option<u64>,
    /// Days its body is kept (default 7).
    pub body_retention_days: Option<u64>,
    /// Days a dead letter is kept, unless replayed (default 90).
    pub dead_retention_days: Option<u64>,
}

/// `[webhook]`: which forges may send unsigned deliveries, and signature tolerances.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    #[serde(default)]
    pub allow_unsigned: Vec<ForgeKind>,
    pub gitlab_timestamp_tolerance_secs: Option<i64>,
}

impl ServerFile {
    /// Reads and parses a settings file; errors name the file, line and key.
    pub fn load(path: &std::path::Path) -> Result<ServerFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }
}
