//! Processing stored deliveries: one dispatcher reads the queue in arrival order and hands each
//! delivery to its repository's lane; a lane processes its deliveries one at a time, in order,
//! and lanes of different repositories run in parallel up to a concurrency limit.
//!
//! A delivery stays `queued` in the ledger until its outcome is committed, so a process that dies
//! mid-way processes it again after a restart. Lanes hand outcomes to the dispatcher, which
//! commits them in groups (at most every few milliseconds) and only then forgets the deliveries.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Delivery, Finish, Store, now_ms};
use crate::webhook::{Event, ForgeKind, PayloadError, normalize};

/// Why a handler could not finish a delivery.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: a forge timed out, a push lost a race.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help; the delivery is dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

/// What the bot does with a normalized event. Implementations must be idempotent: a delivery
/// can be handled again after a crash.
pub trait Handler: Send + Sync + 'static {
    /// Handles one event of one delivery.
    fn handle(
        &self,
        delivery: &Delivery,
        event: &Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Periodic work (the engine's resync), run every [`WorkerConfig::tick`] by the
    /// dispatcher only: with several replicas, only the one holding the dispatch lock.
    fn tick(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Whether `event` may be handled in one call with the events queued behind it in its
    /// lane (the engine: one reconcile, one commit, for a burst of CI results).
    fn coalesces(&self, _event: &Event) -> bool {
        false
    }

    /// Handles events that coalesce as one; each counts as handled when this returns `Ok`.
    fn handle_together(
        &self,
        delivery: &Delivery,
        events: &[&Event],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for e in events {
                self.handle(delivery, e).await?;
            }
            Ok(())
        }
    }
}

/// A shared handler is a handler, so callers can keep a reference to its state.
impl<H: Handler> Handler for Arc<H> {
    fn handle(
        &self,
        delivery: &Delivery,
        event: &Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (**self).handle(delivery, event)
    }

    fn tick(&self) -> impl Future<Output = ()> + Send {
        (**self).tick()
    }

    fn coalesces(&self, event: &Event) -> bool {
        (**self).coalesces(event)
    }

    fn handle_together(
        &self,
        delivery: &Delivery,
        events: &[&Event],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (**self).handle_together(delivery, events)
    }
}

/// The handler until the engine exists: log the event; the ledger records it as the result.
#[derive(Debug, Default, Clone)]
pub struct RecordHandler;

impl Handler for RecordHandler {
    async fn handle(&self, d: &Delivery, event: &Event) -> Result<(), HandlerError> {
        tracing::info!(delivery = d.id, forge = %d.forge, "{}", event.summary());
        Ok(())
    }
}

/// Retry schedule: exponential backoff with jitter, then the dead-letter state.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`: half of `base·2^(attempt−1)` fixed, half random.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let half = exp / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Settings of the worker pool.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Deliveries processed at the same time (across lanes).
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// How often the dispatcher runs [`Handler::tick`]; `None` never.
    pub tick: Option<Duration>,
}

/// Liveness of the dispatcher, read by `/readyz`: the last time (Unix ms) its loop turned.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    /// Milliseconds since the dispatcher last turned; `None` before it first did.
    pub fn age_ms(&self) -> Option<i64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_ms() - t),
        }
    }

    fn beat(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }
}

struct Job {
    delivery: Delivery,
    normalized: Result<Option<Event>, PayloadError>,
    lane: String,
}

struct Lane {
    tx: mpsc::UnboundedSender<Job>,
    pending: usize,
}

/// What a lane reports to the dispatcher: an outcome to record, and whether the lane is done with
/// the delivery (a retry is recorded, then the delivery is tried again).
struct Outcome {
    lane: String,
    id: i64,
    finish: Option<Finish>,
    last: bool,
}

/// Outcomes are committed together once this many wait, or the oldest has waited this long.
const OUTCOMES_BATCH: usize = 64;
const OUTCOMES_WAIT: Duration = Duration::from_millis(10);

/// Outcomes waiting to be committed, and the deliveries to forget once they are.
#[derive(Default)]
struct Outcomes {
    finishes: Vec<Finish>,
    finished: Vec<(String, i64)>,
    since: Option<Instant>,
}

impl Outcomes {
    fn add(&mut self, o: Outcome) {
        self.since.get_or_insert_with(Instant::now);
        if let Some(f) = o.finish {
            self.finishes.push(f);
        }
        if o.last {
            self.finished.push((o.lane, o.id));
        }
    }

    fn due(&self) -> Option<tokio::time::Instant> {
        self.since.map(|t| (t + OUTCOMES_WAIT).into())
    }

    /// Commits what waits, then forgets the finished deliveries. If the commit fails they are
    /// forgotten too: still queued in the ledger, the rescan dispatches them again.
    async fn commit(
        &mut self,
        store: &Store,
        lanes: &mut HashMap<String, Lane>,
        in_flight: &mut HashSet<i64>,
    ) {
        self.since = None;
        let finishes = std::mem::take(&mut self.finishes);
        if !finishes.is_empty()
            && let Err(e) = store.finish_all(finishes).await
        {
            // The deliveries stay queued and are processed again; handlers are idempotent.
            tracing::error!(error = %e, "cannot record the outcome of deliveries");
        }
        for (name, id) in self.finished.drain(..) {
            forget(lanes, in_flight, &name, id);
        }
    }
}

/// Normalizes a stored delivery and names its lane (`forge:owner/repo`).
fn prepare(d: Delivery) -> Job {
    let normalized = match d.forge.parse::<ForgeKind>() {
        Ok(forge) => normalize(forge, &d.event, d.header("content-type"), &d.body),
        Err(e) => Err(PayloadError::NotJson(e)),
    };
    let repo = normalized
        .as_ref()
        .ok()
        .and_then(|e| e.as_ref())
        .and_then(Event::repo)
        .map(|r| r.full_name.clone())
        .unwrap_or_default();
    Job {
        lane: format!("{}:{repo}", d.forge),
        delivery: d,
        normalized,
    }
}

/// Runs the dispatcher until `stop` turns true, then lets every lane finish the delivery it is
/// on (not the ones queued behind it) and returns. With PostgreSQL only the replica that holds
/// the leader lock dispatches; the others stand by and take over when it goes away.
pub async fn run<H: Handler>(
    store: Store,
    handler: Arc<H>,
    config: WorkerConfig,
    heartbeat: Heartbeat,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let beat = heartbeat.clone();
        let leader = tokio::select! {
            l = store.lead(move || beat.beat()) => l,
            _ = stop.wait_for(|s| *s) => return,
        };
        let leader = match leader {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot take the dispatcher lock; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if dispatch(&store, &handler, config, &heartbeat, stop.clone(), leader).await {
            return;
        }
        tracing::error!("lost the dispatcher lock (database connection gone); taking it again");
    }
}

/// The dispatcher proper; returns `true` when stopped, `false` when leadership was lost.
async fn dispatch<H: Handler>(
    store: &Store,
    handler: &Arc<H>,
    config: WorkerConfig,
    heartbeat: &Heartbeat,
    mut stop: watch::Receiver<bool>,
    mut leader: super::Leader,
) -> bool {
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let mut outcomes = Outcomes::default();
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let mut in_flight: HashSet<i64> = HashSet::new();
    let mut tasks = JoinSet::new();
    let mut last_id = 0i64;
    let mut last_rescan = Instant::now();
    let mut last_check = Instant::now();
    let new_work = store.new_work();
    let idle = store.idle_poll();
    let fed = store.subscribe();
    let mut catching_up = true;
    let mut stopped = true;
    // The periodic tick: one at a time, started only while this process leads.
    let mut ticking: Option<tokio::task::JoinHandle<()>> = None;
    let mut next_tick = config.tick.map(|every| tokio::time::Instant::now() + every);

    loop {
        heartbeat.beat();
        if *stop.borrow() {
            break;
        }
        if let (Some(every), Some(at)) = (config.tick, next_tick)
            && at <= tokio::time::Instant::now()
            && ticking.as_ref().is_none_or(|t| t.is_finished())
        {
            let h = handler.clone();
            ticking = Some(tokio::spawn(async move { h.tick().await }));
            next_tick = Some(tokio::time::Instant::now() + every);
        }
        if last_check.elapsed() > Duration::from_secs(5) {
            last_check = Instant::now();
            if !leader.holds().await {
                stopped = false;
                break;
            }
        }
        // New deliveries, in arrival order: from the writer's feed while it kept them all, else
        // (at start, and after the feed overflowed) read from the ledger.
        let mut fetched = Vec::new();
        let mut full = false;
        if catching_up {
            match store.queued_after(last_id, 256).await {
                Ok(batch) => {
                    full = batch.len() >= 256;
                    catching_up = full || !fed;
                    fetched = batch;
                }
                Err(e) => tracing::error!(error = %e, "cannot read the queue"),
            }
        }
        if fed && let Some(f) = store.take_feed() {
            catching_up |= f.lost;
            // Past what the ledger read returned; the feed overlaps it.
            let after = fetched
                .last()
                .map_or(last_id, |d: &Delivery| d.id.max(last_id));
            fetched.extend(f.items.into_iter().filter(|d| d.id > after));
        }
        // Deliveries an operator put back (`deliveries retry`) have old ids.
        if last_rescan.elapsed() > Duration::from_secs(2) {
            last_rescan = Instant::now();
            if let Ok(ids) = store.queued_ids_up_to(last_id).await {
                for id in ids.into_iter().filter(|id| !in_flight.contains(id)) {
                    if let Ok(Some(d)) = store.get(id).await {
                        fetched.push(d);
                    }
                }
            }
        }
        for d in fetched {
            last_id = last_id.max(d.id);
            if !in_flight.insert(d.id) {
                continue;
            }
            let job = prepare(d);
            let name = job.lane.clone();
            let lane = lanes.entry(name.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.spawn(lane_loop(
                    rx,
                    handler.clone(),
                    permits.clone(),
                    config.retry,
                    done_tx.clone(),
                    stop.clone(),
                ));
                Lane { tx, pending: 0 }
            });
            lane.pending += 1;
            if lane.tx.send(job).is_err() {
                tracing::error!(lane = %name, "lane stopped unexpectedly");
            }
        }
        // Record outcomes; forget finished deliveries; close lanes with nothing left.
        while let Ok(o) = done_rx.try_recv() {
            outcomes.add(o);
        }
        if outcomes.finishes.len() >= OUTCOMES_BATCH
            || outcomes
                .due()
                .is_some_and(|t| t <= tokio::time::Instant::now())
        {
            outcomes.commit(store, &mut lanes, &mut in_flight).await;
        }
        while tasks.try_join_next().is_some() {}
        if full {
            continue;
        }
        let mut wake = outcomes
            .due()
            .unwrap_or_else(|| tokio::time::Instant::now() + idle);
        if let Some(at) = next_tick {
            wake = wake.min(at);
        }
        tokio::select! {
            _ = new_work.notified() => {}
            Some(o) = done_rx.recv() => outcomes.add(o),
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.changed() => {}
        }
    }
    // A tick in progress finishes on a graceful stop, and stops with a lost lead: a standby
    // never acts.
    if let Some(t) = ticking.take() {
        if stopped {
            let _ = t.await;
        } else {
            t.abort();
        }
    }
    // Lanes finish the delivery they are on; their outcomes are recorded before returning.
    lanes.clear();
    drop(done_tx);
    while tasks.join_next().await.is_some() {}
    while let Some(o) = done_rx.recv().await {
        outcomes.add(o);
    }
    outcomes.commit(store, &mut lanes, &mut in_flight).await;
    stopped
}

/// A delivery finished: it is no longer in flight, and a lane with nothing left is closed.
fn forget(lanes: &mut HashMap<String, Lane>, in_flight: &mut HashSet<i64>, name: &str, id: i64) {
    in_flight.remove(&id);
    if let Some(l) = lanes.get_mut(name) {
        l.pending = l.pending.saturating_sub(1);
        if l.pending == 0 {
            lanes.remove(name);
        }
    }
}

/// Deliveries handled in one call at most.
const COALESCE_MAX: usize = 64;

async fn lane_loop<H: Handler>(
    mut rx: mpsc::UnboundedReceiver<Job>,
    handler: Arc<H>,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
    done: mpsc::UnboundedSender<Outcome>,
    stop: watch::Receiver<bool>,
) {
    // Jobs taken from the channel but not handled yet, in order.
    let mut held: std::collections::VecDeque<Job> = Default::default();
    loop {
        let job = match held.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        if *stop.borrow() {
            return; // still queued in the ledger; the next start picks it up
        }
        // Deliveries already waiting behind this one that the handler takes in the same call:
        // they were stored before the call starts, so its reads see what they announce.
        let mut also = Vec::new();
        if held.is_empty() && coalescable(handler.as_ref(), &job) {
            while also.len() + 1 < COALESCE_MAX {
                match rx.try_recv() {
                    Ok(j) if coalescable(handler.as_ref(), &j) => also.push(j),
                    Ok(j) => {
                        held.push_back(j);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let (lane, id) = (job.lane.clone(), job.delivery.id);
        let d = &job.delivery;
        let span = tracing::info_span!("delivery", id = d.id, forge = %d.forge, event = %d.event, delivery_id = %d.delivery_id, lane = %lane, together = also.len());
        let report = |finish: Option<Finish>, last: bool| {
            let _ = done.send(Outcome {
                lane: lane.clone(),
                id,
                finish,
                last,
            });
        };
        let extra: Vec<&Event> = also
            .iter()
            .filter_map(|j| j.normalized.as_ref().ok().and_then(Option::as_ref))
            .collect();
        let last = process(
            &job,
            &extra,
            handler.as_ref(),
            &permits,
            retry,
            stop.clone(),
            &report,
        )
        .instrument(span)
        .await;
        let together = matches!(last, Some(Finish::Done { .. }));
        report(last, true);
        if together {
            for j in also {
                let result = j
                    .normalized
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .map(|e| serde_json::to_string(e).unwrap_or_default())
                    .unwrap_or_default();
                metrics::counter!("trunkwarden_processed_total", "outcome" => "done").increment(1);
                let _ = done.send(Outcome {
                    lane: j.lane.clone(),
                    id: j.delivery.id,
                    finish: Some(Finish::Done {
                        id: j.delivery.id,
                        lane: j.lane.clone(),
                        result,
                    }),
                    last: true,
                });
            }
        } else {
            // Not handled: each goes again on its own, in order.
            for j in also.into_iter().rev() {
                held.push_front(j);
            }
        }
    }
}

/// A job whose event the handler may take together with others, and that is due now.
fn coalescable<H: Handler>(handler: &H, job: &Job) -> bool {
    job.delivery.next_attempt_at <= now_ms()
        && matches!(&job.normalized, Ok(Some(e)) if handler.coalesces(e))
}

/// Processes one delivery; returns the outcome to record, or `None` when stopped first (it
/// stays queued). Retries are reported through `report` as they happen.
async fn process<H: Handler>(
    job: &Job,
    also: &[&Event],
    handler: &H,
    permits: &Semaphore,
    retry: RetryPolicy,
    mut stop: watch::Receiver<bool>,
    report: &impl Fn(Option<Finish>, bool),
) -> Option<Finish> {
    let d = &job.delivery;
    let event = match &job.normalized {
        Err(e) => {
            // A verified delivery we cannot read: keep it for an operator, do not retry.
            tracing::warn!(error = %e, "payload does not parse; dead-lettered");
            metrics::counter!("trunkwarden_dead_letters_total").increment(1);
            return Some(Finish::Dead {
                id: d.id,
                attempts: d.attempts + 1,
                error: e.to_string(),
            });
        }
        Ok(None) => {
            metrics::counter!("trunkwarden_processed_total", "outcome" => "ignored").increment(1);
            return Some(Finish::Ignored {
                id: d.id,
                reason: format!("event `{}` is not acted on", d.event),
            });
        }
        Ok(Some(e)) => e,
    };
    let mut attempts = d.attempts;
    let mut not_before = d.next_attempt_at;
    loop {
        // Honour a retry time recorded before a restart.
        let wait = not_before - now_ms();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = stop.changed() => return None,
            }
        }
        let Ok(_permit) = permits.acquire().await else {
            return None;
        };
        attempts += 1;
        let started = Instant::now();
        let outcome = if also.is_empty() {
            handler.handle(d, event).await
        } else {
            let mut all = vec![event];
            all.extend_from_slice(also);
            handler.handle_together(d, &all).await
        };
        metrics::histogram!("trunkwarden_processing_seconds")
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                metrics::counter!("trunkwarden_processed_total", "outcome" => "done").increment(1);
                return Some(Finish::Done {
                    id: d.id,
                    lane: job.lane.clone(),
                    result: serde_json::to_string(event).unwrap_or_default(),
                });
            }
            Err(HandlerError::Transient(msg)) if attempts < i64::from(retry.max_attempts) => {
                let delay = retry.delay(attempts as u32);
                tracing::warn!(attempt = attempts, error = %msg, retry_in_ms = delay.as_millis() as u64, "handler failed; will retry");
                metrics::counter!("trunkwarden_retries_total").increment(1);
                not_before = now_ms() + delay.as_millis() as i64;
                report(
                    Some(Finish::Retry {
                        id: d.id,
                        attempts,
                        next_attempt_at: not_before,
                        error: msg,
                    }),
                    false,
                );
            }
            Err(e) => {
                tracing::error!(attempt = attempts, error = %e, "handler failed; dead-lettered");
                metrics::counter!("trunkwarden_dead_letters_total").increment(1);
                return Some(Finish::Dead {
                    id: d.id,
                    attempts,
                    error: e.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.delay(30) <= Duration::from_millis(1000));
        }
    }
}
