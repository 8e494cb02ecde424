//! The way to Layer. One pooled [`LayerClient`] serves every caller; each call carries the
//! caller's own credential.
//!
//! **The choke point**: every tool call that touches a workspace gets its client from
//! [`Upstream::admit`], naming the caller, the workspace and what kind of call it is. Issue 5
//! puts the per-(user, workspace) limiter here: `admit` waits for (or refuses) a place, and
//! [`Admission::settle`] tells it how the call ended (a run started, a run seen finished…).

use layer_api::{AuthedClient, IdempotencyKey, LayerClient, WorkspaceId};

use crate::auth::{Caller, SharedAuthenticator};
use crate::errors::{Code, ToolError};

/// What a workspace call does, for the limiter (issue 5) and the logs.
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

/// How an admitted call ended, for the limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing the limiter needs to know beyond "done".
    Done,
    /// A run was accepted upstream (its id).
    RunStarted(String),
    /// A run is known to be over (terminal status seen, or cancelled).
    RunEnded(String),
    /// The call failed.
    Failed,
}

/// Shared handle to Layer.
#[derive(Clone)]
pub struct Upstream {
    client: LayerClient,
    authenticator: SharedAuthenticator,
}

impl Upstream {
    pub fn new(client: LayerClient, authenticator: SharedAuthenticator) -> Self {
        Self {
            client,
            authenticator,
        }
    }

    pub fn client(&self) -> &LayerClient {
        &self.client
    }

    /// The choke point for workspace-scoped calls (see the module docs).
    pub async fn admit<'a>(
        &'a self,
        caller: &'a Caller,
        workspace: WorkspaceId,
        kind: CallKind,
    ) -> Result<Admission<'a>, ToolError> {
        tracing::debug!(user = %caller.user(), %workspace, ?kind, "upstream call admitted");
        Ok(Admission {
            upstream: self,
            caller,
            workspace,
            kind,
            idempotency_key: None,
        })
    }

    /// A call that names no workspace (listing the caller's workspaces).
    pub fn unscoped<'a>(&'a self, caller: &'a Caller) -> AuthedClient<'a> {
        self.client.with_token(caller.upstream_credential())
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

/// Permission to call Layer for one tool call in one workspace.
pub struct Admission<'a> {
    upstream: &'a Upstream,
    caller: &'a Caller,
    workspace: WorkspaceId,
    kind: CallKind,
    idempotency_key: Option<IdempotencyKey>,
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

    pub fn workspace(&self) -> WorkspaceId {
        self.workspace
    }

    /// Reports how the call ended (the limiter of issue 5 acts on it).
    pub fn settle(self, outcome: Outcome) {
        tracing::debug!(workspace = %self.workspace, kind = ?self.kind, ?outcome, "upstream call settled");
    }
}
