//! The Redis limiter: exact across replicas sharing one Redis.
//!
//! Each place is a lease (an id with an expiry kept in Redis); all changes happen in Lua
//! scripts (see `scripts`). Leases that a live holder keeps (reservations, calls in flight)
//! are renewed by a small task per lease; that task also performs the final step (commit,
//! cancel, release), so a renewal can never race with it and shorten a decided place.
//!
//! Any Redis fault or timeout becomes `LimiterUnavailable`: nothing is granted without
//! Redis's answer. The connection manager reconnects by itself on the next call.

mod ledger;
mod scripts;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::LimiterConfig;
use crate::decision::{Decision, refusal};
use crate::error::{CallError, ConfigError, LimiterUnavailable, QueueTimeout, ReserveError};
use crate::types::{ActivePlace, CapKey, Holder, PlaceId, RunId, RunRef};
use ledger::{EpochState, Ledger};
use scripts::LuaScript;
use wake::{CHANNEL, Wakers};

pub(crate) const PREFIX: &str = "layer-mcp:cap";
const STARTING: &str = "starting";
const UNKNOWN: &str = "unknown";

pub(crate) struct RedisBackend {
    config: LimiterConfig,
    redis: Conn,
    wakers: Arc<Wakers>,
    /// The run places this replica wrote, to write back if Redis forgets them.
    ledger: Arc<Ledger>,
    epoch: Arc<EpochState>,
    /// Background tasks (wake-up subscriber, epoch watcher), stopped on drop.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A connection to Redis that reconnects by itself, and the limit on every round trip.
#[derive(Clone)]
pub(crate) struct Conn {
    conn: ConnectionManager,
    timeout: Duration,
}

impl Conn {
    /// One script call: `EVALSHA`, falling back to `EVAL` (which also caches the script)
    /// when Redis does not know it (first use, or after a restart), all within the timeout.
    pub(crate) async fn eval(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, LimiterUnavailable> {
        let mut conn = self.conn.clone();
        let call = async {
            let sha = invocation("EVALSHA", &script.hash, keys, args);
            match sha.query_async::<Value>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    invocation("EVAL", &script.code, keys, args)
                        .query_async::<Value>(&mut conn)
                        .await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            // Debug level: during an outage every heartbeat fails; the caller logs what it
            // does about the error it gets.
            Ok(Err(e)) => {
                tracing::debug!(script = script.name, kind = ?e.kind(), "limiter: redis call failed");
                Err(unavailable(&e))
            }
            Err(_) => {
                tracing::debug!(script = script.name, "limiter: redis call timed out");
                Err(LimiterUnavailable::new("redis did not answer in time"))
            }
        }
    }
}

struct RunKeys([String; 3]);

impl RunKeys {
    fn new(key: &CapKey) -> RunKeys {
        let tag = key.tag();
        RunKeys(["runs", "holders", "run_ids"].map(|s| format!("{PREFIX}:{{{tag}}}:{s}")))
    }
}

#[derive(Clone)]
struct CallKeys {
    keys: [String; 4],
    tag: String,
}

impl CallKeys {
    fn new(key: &CapKey) -> CallKeys {
        let tag = key.tag();
        CallKeys {
            keys: ["calls", "queue", "tickets", "seq"].map(|s| format!("{PREFIX}:{{{tag}}}:{s}")),
            tag,
        }
    }
}

pub(crate) fn ms(d: Duration) -> String {
    // At least 1ms: a zero lease would be expired on arrival.
    d.as_millis().max(1).to_string()
}

fn unavailable(e: &RedisError) -> LimiterUnavailable {
    LimiterUnavailable::new(redis_conn::describe(e))
}

fn recovering_error() -> LimiterUnavailable {
    LimiterUnavailable::new("redis lost its state and the replicas are writing their runs back")
}

fn invocation(verb: &str, script: &str, keys: &[String], args: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(script).arg(keys.len());
    for k in keys {
        cmd.arg(k);
    }
    for a in args {
        cmd.arg(a);
    }
    cmd
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn holder_from(stored: &str) -> Holder {
    match stored {
        STARTING => Holder::Starting,
        UNKNOWN => Holder::Unknown,
        // Unreadable means written by something else: count it, name nothing.
        json => serde_json::from_str::<RunRef>(json)
            .map(|run| Holder::Run { run })
            .unwrap_or(Holder::Unknown),
    }
}

/// Triples `place, ms left, holder` as returned by the scripts' `places()`.
fn places_from(values: &[Value]) -> Option<Vec<ActivePlace>> {
    values
        .chunks(3)
        .map(|c| match c {
            [place, left, holder] => Some(ActivePlace {
                place: PlaceId::new(text(place)?),
                expires_in: Duration::from_millis(u64::try_from(int(left)?).unwrap_or(0)),
                holder: holder_from(&text(holder)?),
            }),
            _ => None,
        })
        .collect()
}

impl RedisBackend {
    pub(crate) fn connect(
        url: &str,
        tls: &redis_conn::Tls,
        config: LimiterConfig,
    ) -> Result<RedisBackend, ConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::Invalid(
                "the Redis limiter must be created inside a Tokio runtime".to_owned(),
            ));
        }
        let url: redis_conn::RedisUrl = url
            .parse()
            .map_err(|e: redis_conn::UrlError| ConfigError::RedisUrl(e.to_string()))?;
        let client =
            redis_conn::client(&url, tls).map_err(|e| ConfigError::RedisUrl(e.to_string()))?;
        let t = config.redis_timeout;
        // No reconnect retries inside the manager: a call during an outage fails at once
        // (fail closed, quickly) and the next call starts a fresh connection attempt.
        let conn =
            redis_conn::manager(&client, t).map_err(|e| ConfigError::RedisUrl(e.to_string()))?;
        let redis = Conn { conn, timeout: t };
        let wakers = Arc::new(Wakers::default());
        let ledger = Arc::new(Ledger::default());
        let epoch = Arc::new(EpochState::default());
        let mut tasks = vec![
            tokio::spawn(ledger::watch_epoch(
                redis.clone(),
                Arc::clone(&ledger),
                Arc::clone(&epoch),
                config.clone(),
            ))
            .abort_handle(),
        ];
        if config.pubsub_wake {
            let subscriber = wake::subscribe_forever(client, Arc::clone(&wakers), t);
            tasks.push(tokio::spawn(subscriber).abort_handle());
        }
        Ok(RedisBackend {
            config,
            redis,
            wakers,
            ledger,
            epoch,
            tasks,
        })
    }

    pub(crate) fn config(&self) -> &LimiterConfig {
        &self.config
    }

    async fn eval(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, LimiterUnavailable> {
        self.redis.eval(script, keys, args).await
    }

    fn bad_reply(script: &LuaScript) -> LimiterUnavailable {
        tracing::error!(
            script = script.name,
            "limiter: unexpected reply from redis script"
        );
        LimiterUnavailable::new("unexpected reply from redis")
    }

    async fn eval_int(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[String],
    ) -> Result<i64, LimiterUnavailable> {
        let v = self.eval(script, keys, args).await?;
        int(&v).ok_or_else(|| Self::bad_reply(script))
    }

    /// Round trip to Redis, for readiness checks.
    /// Also fails while Redis is recovering from losing its state (see `ledger`).
    pub(crate) async fn check(&self) -> Result<(), LimiterUnavailable> {
        let mut conn = self.redis.conn.clone();
        let keys = ledger::epoch_keys();
        let cmd = redis::cmd("MGET").arg(&keys).clone();
        let ask = cmd.query_async::<(Option<String>, Option<String>)>(&mut conn);
        let (epoch, recovering) = match tokio::time::timeout(self.config.redis_timeout, ask).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(unavailable(&e)),
            Err(_) => return Err(LimiterUnavailable::new("redis did not answer in time")),
        };
        let known = self.epoch.known();
        if recovering.is_some() || (!known.is_empty() && epoch.as_deref() != Some(known.as_str())) {
            self.epoch.kick();
            return Err(recovering_error());
        }
        Ok(())
    }

    // ---- active runs ----

    pub(crate) async fn reserve(
        self: &Arc<Self>,
        key: &CapKey,
    ) -> Result<RedisReservation, ReserveError> {
        let keys = RunKeys::new(key);
        let place = PlaceId::random();
        let limit = self.config.max_active_runs;
        let args = [
            place.to_string(),
            limit.to_string(),
            ms(self.config.reservation_lease),
            uuid::Uuid::new_v4().simple().to_string(),
            ms(ledger::recovery_window(&self.config)),
            ms(ledger::EPOCH_TTL),
            self.epoch.known(),
        ];
        let [epoch, recovering] = ledger::epoch_keys();
        let script_keys = [
            keys.0[0].clone(),
            keys.0[1].clone(),
            keys.0[2].clone(),
            epoch,
            recovering,
        ];
        let script = &*scripts::RESERVE;
        let reply = self.eval(script, &script_keys, &args).await?;
        let Value::Array(items) = reply else {
            return Err(Self::bad_reply(script).into());
        };
        match items.split_first() {
            Some((flag, _)) if int(flag) == Some(1) => {
                let (tx, rx) = oneshot::channel();
                tokio::spawn(reservation_lease(Arc::clone(self), keys, place.clone(), rx));
                Ok(RedisReservation { id: place, tx })
            }
            Some((flag, rest)) if int(flag) == Some(0) => {
                let active = places_from(rest).ok_or_else(|| Self::bad_reply(script))?;
                Err(ReserveError::Full(refusal(limit, active, &self.config)))
            }
            Some((flag, _)) if int(flag) == Some(2) => {
                // This replica may be the one that has not written its runs back yet.
                self.epoch.kick();
                Err(recovering_error().into())
            }
            _ => Err(Self::bad_reply(script).into()),
        }
    }

    async fn apply(
        &self,
        keys: &RunKeys,
        place: &PlaceId,
        decision: &Decision,
    ) -> Result<(), LimiterUnavailable> {
        let (run_id, holder, lease) = match decision {
            Decision::Cancel => {
                let args = [place.to_string()];
                self.eval_int(&scripts::CANCEL, &keys.0, &args).await?;
                self.ledger.forget_place(place);
                return Ok(());
            }
            Decision::Unknown(lease) => (String::new(), UNKNOWN.to_owned(), *lease),
            Decision::Commit(run, lease) => {
                let holder = serde_json::to_string(run)
                    .map_err(|_| LimiterUnavailable::new("run reference not serialisable"))?;
                (run.id.to_string(), holder, *lease)
            }
        };
        let args = [place.to_string(), run_id.clone(), holder.clone(), ms(lease)];
        self.eval_int(&scripts::COMMIT, &keys.0, &args).await?;
        self.ledger.record(
            place,
            ledger::Entry {
                keys: keys.0.clone(),
                run_id,
                holder,
                expires_at: Instant::now() + lease,
            },
        );
        Ok(())
    }

    pub(crate) async fn active_runs(
        &self,
        key: &CapKey,
    ) -> Result<Vec<ActivePlace>, LimiterUnavailable> {
        let script = &*scripts::LIST_RUNS;
        match self.eval(script, &RunKeys::new(key).0, &[]).await? {
            Value::Array(items) => places_from(&items).ok_or_else(|| Self::bad_reply(script)),
            _ => Err(Self::bad_reply(script)),
        }
    }

    pub(crate) async fn release_run(
        &self,
        key: &CapKey,
        run: &RunId,
    ) -> Result<bool, LimiterUnavailable> {
        let args = [run.to_string()];
        let keys = RunKeys::new(key);
        let n = self.eval_int(&scripts::RELEASE_RUN, &keys.0, &args).await?;
        self.ledger.forget_run(&keys.0, run.as_str());
        Ok(n > 0)
    }

    pub(crate) async fn touch_run(
        &self,
        key: &CapKey,
        run: &RunId,
        lease: Duration,
    ) -> Result<bool, LimiterUnavailable> {
        let args = [run.to_string(), ms(lease)];
        let keys = RunKeys::new(key);
        let n = self.eval_int(&scripts::TOUCH_RUN, &keys.0, &args).await?;
        if n > 0 {
            self.ledger.touch_run(&keys.0, run.as_str(), lease);
        }
        Ok(n > 0)
    }

    // ---- calls in flight ----

    pub(crate) async fn acquire_call(
        self: &Arc<Self>,
        key: &CapKey,
        max_wait: Duration,
    ) -> Result<RedisPermit, CallError> {
        let started = Instant::now();
        let deadline = started + max_wait;
        let keys = CallKeys::new(key);
        let id = PlaceId::random();
        // From here until admission the id is a ticket in the queue; if this future is
        // dropped (client gone) or fails, the guard takes it out at once.
        let mut ticket = Ticket {
            backend: Arc::clone(self),
            keys: keys.clone(),
            id: id.clone(),
            armed: true,
        };
        let notify = self.wakers.register(&keys.tag);
        let args = [
            id.to_string(),
            self.config.max_calls_in_flight.to_string(),
            ms(self.config.call_lease),
            ms(self.config.ticket_lease),
            CHANNEL.to_owned(),
            keys.tag.clone(),
        ];
        let script = &*scripts::ACQUIRE_CALL;
        loop {
            // Registered before asking, so a release between the answer and the wait still
            // wakes this waiter.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let reply = self.eval(script, &keys.keys, &args).await?;
            let admitted = match &reply {
                Value::Array(items) => items.first().and_then(int),
                _ => None,
            };
            match admitted {
                Some(1) => {
                    ticket.armed = false;
                    let (stop, stopped) = oneshot::channel();
                    tokio::spawn(call_lease(Arc::clone(self), keys, id, stopped));
                    return Ok(RedisPermit { _stop: stop });
                }
                Some(0) => {}
                _ => return Err(Self::bad_reply(script).into()),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CallError::QueueTimeout(QueueTimeout {
                    limit: self.config.max_calls_in_flight,
                    waited: now - started,
                }));
            }
            let nap = self.config.queue_poll_interval.min(deadline - now);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn release_call(&self, keys: &CallKeys, id: &PlaceId) -> Result<(), LimiterUnavailable> {
        let args = [id.to_string(), CHANNEL.to_owned(), keys.tag.clone()];
        self.eval_int(&scripts::RELEASE_CALL, &keys.keys, &args)
            .await?;
        // Local waiters need not wait for the pub/sub round trip.
        self.wakers.wake(&keys.tag);
        Ok(())
    }
}

fn heartbeat(every: Duration) -> tokio::time::Interval {
    let mut beat = tokio::time::interval_at(Instant::now() + every, every);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    beat
}

/// What the owner of a reservation sends its lease task.
struct Decide {
    decision: Decision,
    reply: oneshot::Sender<Result<(), LimiterUnavailable>>,
}

/// A reservation in Redis: its lease task renews it until the owner decides, or until the
/// owner drops it (then the place is kept as an unknown run for the run lease).
pub(crate) struct RedisReservation {
    id: PlaceId,
    tx: oneshot::Sender<Decide>,
}

impl RedisReservation {
    pub(crate) fn id(&self) -> &PlaceId {
        &self.id
    }

    pub(crate) async fn decide(self, decision: Decision) -> Result<(), LimiterUnavailable> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Decide { decision, reply }).is_err() {
            return Err(LimiterUnavailable::new("limiter stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(LimiterUnavailable::new("limiter stopped")))
    }
}

async fn reservation_lease(
    backend: Arc<RedisBackend>,
    keys: RunKeys,
    place: PlaceId,
    mut decided: oneshot::Receiver<Decide>,
) {
    let config = backend.config.clone();
    let mut beat = heartbeat(config.heartbeat_interval);
    let request = loop {
        tokio::select! {
            biased;
            request = &mut decided => break request.ok(),
            _ = beat.tick() => {
                let args = [place.to_string(), ms(config.reservation_lease)];
                // A failed beat is retried on the next one; the lease outlasts two misses.
                let _ = backend.eval_int(&scripts::RENEW_RESERVATION, &keys.0, &args).await;
            }
        }
    };
    let (decision, reply) = match request {
        Some(Decide { decision, reply }) => (decision, Some(reply)),
        None => (Decision::Unknown(config.run_lease), None),
    };
    let first = backend.apply(&keys, &place, &decision).await;
    let failed = first.is_err();
    if let Some(reply) = reply {
        let _ = reply.send(first);
    }
    // A run that may exist must be written down once Redis is back; a cancel need not be
    // (the reservation lease frees the place). Give up when the run's own lease would be
    // over anyway.
    let lease = match &decision {
        Decision::Cancel => return,
        Decision::Commit(_, lease) | Decision::Unknown(lease) => *lease,
    };
    if failed {
        let give_up = Instant::now() + lease;
        while Instant::now() < give_up {
            tokio::time::sleep(config.heartbeat_interval).await;
            if backend.apply(&keys, &place, &decision).await.is_ok() {
                break;
            }
        }
    }
}

/// A call place in Redis. Dropping it stops the heartbeat, and the lease task releases the
/// place and wakes the queue.
pub(crate) struct RedisPermit {
    _stop: oneshot::Sender<()>,
}

async fn call_lease(
    backend: Arc<RedisBackend>,
    keys: CallKeys,
    id: PlaceId,
    mut stopped: oneshot::Receiver<()>,
) {
    let config = backend.config.clone();
    let mut beat = heartbeat(config.heartbeat_interval);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = beat.tick() => {
                let args = [id.to_string(), ms(config.call_lease)];
                let _ = backend.eval_int(&scripts::RENEW_CALL, &keys.keys, &args).await;
            }
        }
    }
    // If Redis is away the lease frees the place by itself; retry only within it.
    let give_up = Instant::now() + config.call_lease;
    while backend.release_call(&keys, &id).await.is_err() && Instant::now() < give_up {
        tokio::time::sleep(config.heartbeat_interval).await;
    }
}

/// A queued ticket; dropped while armed, it leaves the queue (and frees the place, should
/// Redis have admitted it in the very call that was abandoned).
struct Ticket {
    backend: Arc<RedisBackend>,
    keys: CallKeys,
    id: PlaceId,
    armed: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime left: the ticket lease expires by itself
        };
        let backend = Arc::clone(&self.backend);
        let keys = self.keys.clone();
        let id = self.id.clone();
        runtime.spawn(async move {
            let _ = backend.release_call(&keys, &id).await;
        });
    }
}
