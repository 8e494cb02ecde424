//! The way to Layer. One pooled [`LayerClient`] serves every caller; each call carries the
//! caller's own credential.
//!
//! **The choke point**: every tool call that reaches Layer gets its client from
//! [`Upstream::admit`] (or [`Upstream::admit_unscoped`] for calls that name no workspace),
//! naming the caller, the workspace and what kind of call it is. Admission takes a call place
//! (waiting in the caller's queue), and for an execute a run place too (see [`crate::caps`]);
//! [`Admission::settle`] and [`Admission::start_run`] tell the caps how the call ended (a run
//! started, a run seen finished…).

use std::sync::Arc;

use layer_api::{AuthedClient, IdempotencyKey, LayerClient, WorkspaceId};
use limiter::{CallPermit, CapKey, Reservation, RunRef};

use crate::auth::{Caller, SharedAuthenticator};
use crate::cancel::Cancellation;
use crate::caps::Caps;
use crate::errors::{Code, Subject, ToolError};

/// What a workspace call does, for the caps and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Reads (list, get, estimate): bounded as calls in flight.
    Read,
    /// Starts a run (`execute_forge`, `execute_workflow`): takes an active-run place.
    StartRun,
    /// Polls a run: frees its place once terminal.
    PollRun,
    /// Cancels a run: frees its place on success.
    CancelRun,
    /// Requests an upload URL or uploads a file.
    Upload,
}

/// How an admitted call ended, for the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing the caps need to know beyond "done".
    Done,
    /// The call failed (and says nothing about a run).
    Failed,
    /// A run was seen: over (`terminal`) or still running.
    RunSeen { run: String, terminal: bool },
    /// A run is known to be over (cancelled, already finished, or unknown to Layer).
    RunEnded(String),
}

/// Shared handle to Layer.
#[derive(Clone)]
pub struct Upstream {
    client: LayerClient,
    authenticator: SharedAuthenticator,
    caps: Arc<Caps>,
}

impl Upstream {
    pub fn new(client: LayerClient, authenticator: SharedAuthenticator, caps: Arc<Caps>) -> Self {
        Self {
            client,
            authenticator,
            caps,
        }
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// The choke point for workspace-scoped calls (see the module docs). Waits for a call
    /// place (giving up when `cancel` fires); an execute also reserves a run place.
    pub async fn admit<'a>(
        &'a self,
        caller: &'a Caller,
        workspace: WorkspaceId,
        kind: CallKind,
        cancel: &Cancellation,
    ) -> Result<Admission<'a>, ToolError> {
        let key = Caps::key(caller.user(), Some(workspace));
        let call = self.caps.call_place(&key, cancel).await?;
        let reservation = if kind == CallKind::StartRun {
            let client = self.client.with_token(caller.upstream_credential());
            let reserve = self.caps.reserve_run(&key, &client, workspace);
            Some(tokio::select! {
                reservation = reserve => reservation?,
                // Nothing reached Layer yet: safe to give up.
                _ = cancel.any() => return Err(crate::caps::refusal::abandoned()),
            })
        } else {
            None
        };
        tracing::debug!(user = %caller.user(), %workspace, ?kind, "upstream call admitted");
        Ok(Admission {
            upstream: self,
            caller,
            workspace: Some(workspace),
            key,
            kind,
            idempotency_key: None,
            _call: call,
            reservation,
        })
    }

    /// A call that names no workspace (listing the caller's workspaces): its call place is
    /// the user's own.
    pub async fn admit_unscoped<'a>(
        &'a self,
        caller: &'a Caller,
        cancel: &Cancellation,
    ) -> Result<Admission<'a>, ToolError> {
        let key = Caps::key(caller.user(), None);
        let call = self.caps.call_place(&key, cancel).await?;
        Ok(Admission {
            upstream: self,
            caller,
            workspace: None,
            key,
            kind: CallKind::Read,
            idempotency_key: None,
            _call: call,
            reservation: None,
        })
    }

    /// Reacts to a failed call: a credential Layer no longer accepts is dropped from the
    /// cache so the next HTTP request gets its 401.
    pub async fn observe_failure(&self, caller: &Caller, error: &ToolError) {
        if error.code == Code::Unauthenticated {
            self.authenticator
                .forget(caller.upstream_credential())
                .await;
        }
    }
}

/// Permission to call Layer for one tool call: holds the call place (freed when dropped)
/// and, for an execute, the reserved run place.
pub struct Admission<'a> {
    upstream: &'a Upstream,
    caller: &'a Caller,
    workspace: Option<WorkspaceId>,
    key: CapKey,
    kind: CallKind,
    idempotency_key: Option<IdempotencyKey>,
    _call: CallPermit,
    /// Dropped undecided (the call was abandoned mid-flight), the limiter keeps the place as
    /// a run whose start is unknown: the safe side.
    reservation: Option<Reservation>,
}

impl<'a> Admission<'a> {
    /// Uses this key for the mutating call (so a retried tool call reuses the run).
    pub fn with_idempotency_key(mut self, key: Option<IdempotencyKey>) -> Self {
        self.idempotency_key = key;
        self
    }

    /// The client for this call, with the caller's credential.
    pub fn client(&self) -> AuthedClient<'a> {
        let client = self
            .upstream
            .client
            .with_token(self.caller.upstream_credential());
        match &self.idempotency_key {
            Some(key) => client.with_idempotency_key(key.clone()),
            None => client,
        }
    }

    /// The workspace, for workspace-scoped admissions.
    pub fn workspace(&self) -> Option<WorkspaceId> {
        self.workspace
    }

    /// Reports how the call ended; the call place is freed when this returns.
    pub async fn settle(self, outcome: Outcome) {
        tracing::debug!(kind = ?self.kind, ?outcome, "upstream call settled");
        let caps = self.upstream.caps();
        match &outcome {
            Outcome::Done | Outcome::Failed => {}
            Outcome::RunSeen {
                run,
                terminal: true,
            }
            | Outcome::RunEnded(run) => caps.run_ended(&self.key, run).await,
            Outcome::RunSeen {
                run,
                terminal: false,
            } => caps.run_active(&self.key, run).await,
        }
    }

    /// Settles an execute with Layer's answer: accepted, the run place is the run's
    /// (`run` names it); refused by Layer (4xx), the place is freed; outcome unknown
    /// (timeout, lost connection, 5xx after retries), the place is kept for the run lease.
    /// Returns the answer with Layer's error mapped for the agent (Layer's own 429 listing
    /// the runs the gateway counts).
    pub async fn start_run<T>(
        mut self,
        result: Result<T, layer_api::Error>,
        run: impl FnOnce(&T) -> RunRef,
        subject: Subject,
    ) -> Result<T, ToolError> {
        let caps = self.upstream.caps();
        let reservation = self.reservation.take();
        match result {
            Ok(value) => {
                if let Some(reservation) = reservation {
                    caps.run_started(reservation, run(&value)).await;
                }
                Ok(value)
            }
            Err(error) => {
                if let Some(reservation) = reservation {
                    if nothing_started(&error) {
                        caps.run_refused(reservation).await;
                    } else {
                        tracing::warn!(error = %error, "execute outcome unknown: its place is kept for the run lease");
                        caps.run_unknown(reservation).await;
                    }
                }
                let mapped = ToolError::from_layer(&error, subject);
                if mapped.code == Code::RateLimited {
                    return Err(caps.explain_layer_refusal(&self.key, mapped).await);
                }
                Err(mapped)
            }
        }
    }
}

/// Whether a failed execute certainly started nothing: Layer answered with a 4xx (a
/// refusal), or the request was never sent. Anything else (timeout, lost connection, 5xx,
/// an unreadable answer) may hide a run that exists.
fn nothing_started(error: &layer_api::Error) -> bool {
    use layer_api::Error as E;
    match error {
        E::Api(api) => api.status().is_client_error(),
        E::InvalidRequest(_) | E::Build(_) => true,
        _ => false,
    }
}
