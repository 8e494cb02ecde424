//! [`LayerClient`], the pooled client, and [`AuthedClient`], the same client acting for one
//! caller's credential.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::ClientConfig;
use crate::credentials::{BearerToken, IdempotencyKey};
use crate::error::{Error, Result};
use crate::ids::{InferenceId, ModelId, WorkflowId, WorkflowRunId, WorkspaceId};
use crate::pagination::{Cursor, Page, PageLimit, Pagination};
use crate::transport::{Call, DeprecationLog, Transport};
use crate::types::files::{UploadGrant, UploadUrlRequest};
use crate::types::inferences::{
    InferenceEstimate, InferenceRequest, InferenceRun, InferenceStarted,
};
use crate::types::models::{
    GetModelOutput, ListModelsOutput, ListModelsQuery, ModelDetail, ModelSummary,
};
use crate::types::workflows::{
    EstimateWorkflowRequest, ExecuteWorkflowRequest, ListWorkflowsOutput, ListWorkflowsQuery,
    WorkflowEstimate, WorkflowRun, WorkflowRunStarted, WorkflowSummary,
};
use crate::types::workspaces::{
    GetWorkspaceOutput, ListWorkspacesOutput, ListWorkspacesQuery, WorkspaceInfo,
};
use crate::upload::UploadBody;

/// Route templates: what errors, logs and deprecation notices name instead of URLs.
mod endpoint {
    pub const LIST_WORKSPACES: &str = "GET /workspaces";
    pub const GET_WORKSPACE: &str = "GET /workspaces/{workspace_id}";
    pub const LIST_MODELS: &str = "GET /workspaces/{workspace_id}/models";
    pub const GET_MODEL: &str = "GET /workspaces/{workspace_id}/models/{model_id}";
    pub const ESTIMATE_INFERENCE: &str = "POST /workspaces/{workspace_id}/inferences/estimate";
    pub const EXECUTE_INFERENCE: &str = "POST /workspaces/{workspace_id}/inferences";
    pub const GET_INFERENCE: &str = "GET /workspaces/{workspace_id}/inferences/{inference_id}";
    pub const CANCEL_INFERENCE: &str =
        "POST /workspaces/{workspace_id}/inferences/{inference_id}/cancel";
    pub const LIST_WORKFLOWS: &str = "GET /workspaces/{workspace_id}/workflows";
    pub const ESTIMATE_WORKFLOW: &str =
        "POST /workspaces/{workspace_id}/workflows/{workflow_id}/estimate";
    pub const EXECUTE_WORKFLOW: &str =
        "POST /workspaces/{workspace_id}/workflows/{workflow_id}/runs";
    pub const GET_WORKFLOW_RUN: &str =
        "GET /workspaces/{workspace_id}/workflows/{workflow_id}/runs/{run_id}";
    pub const CANCEL_WORKFLOW_RUN: &str =
        "POST /workspaces/{workspace_id}/workflows/{workflow_id}/runs/{run_id}/cancel";
    pub const UPLOAD_URL: &str = "POST /workspaces/{workspace_id}/files/upload-url";
}

/// A Layer v1 API client. Cheap to clone: clones share one connection pool, so one client
/// serves every caller; each call names its caller's credential through
/// [`LayerClient::with_token`].
#[derive(Clone)]
pub struct LayerClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    deprecations: DeprecationLog,
}

impl std::fmt::Debug for LayerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerClient")
            .field("base_url", &self.inner.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl LayerClient {
    /// Builds the client and its connection pool.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let base = &config.base_url;
        if !matches!(base.scheme(), "http" | "https")
            || base.cannot_be_a_base()
            || base.host().is_none()
        {
            return Err(Error::InvalidRequest(
                "the base URL must be an absolute http(s) URL".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            // Never follow redirects: a redirect to another host would carry the bearer
            // token along in some clients, and the API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Build(e.without_url()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                deprecations: DeprecationLog::default(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// This client acting for the holder of `token`.
    pub fn with_token<'a>(&'a self, token: &'a BearerToken) -> AuthedClient<'a> {
        AuthedClient {
            client: self,
            token,
            idempotency_key: None,
        }
    }

    /// Route templates for which the API has sent a `Deprecation` header so far.
    pub fn deprecated_endpoints(&self) -> Vec<&'static str> {
        self.inner.deprecations.seen()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    fn transport(&self) -> Transport<'_> {
        Transport {
            http: &self.inner.http,
            retry: &self.inner.config.retry,
            request_timeout: self.inner.config.request_timeout,
            deprecations: &self.inner.deprecations,
        }
    }

    /// `base_url` with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.config.base_url.clone();
        // `new` refused URLs that cannot be a base, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `/workspaces/{workspace}` followed by `rest`.
    fn workspace_url(&self, workspace: WorkspaceId, rest: &[&str]) -> Url {
        let workspace = workspace.to_string();
        let mut segments = vec!["workspaces", workspace.as_str()];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    /// `/workspaces/{workspace}/workflows/{workflow}` followed by `rest`.
    fn workflow_url(&self, workspace: WorkspaceId, workflow: WorkflowId, rest: &[&str]) -> Url {
        let workflow = workflow.to_string();
        let mut segments = vec!["workflows", workflow.as_str()];
        segments.extend_from_slice(rest);
        self.workspace_url(workspace, &segments)
    }
}

/// A [`LayerClient`] acting for one credential. Borrowing, cheap to make per call.
#[derive(Clone, Debug)]
pub struct AuthedClient<'a> {
    client: &'a LayerClient,
    token: &'a BearerToken,
    idempotency_key: Option<IdempotencyKey>,
}

/// How [`AuthedClient::wait_for_inference`] and [`AuthedClient::wait_for_workflow_run`] poll.
#[derive(Clone, Debug)]
pub struct PollOptions {
    /// Give up after this long (the run goes on upstream).
    pub timeout: Duration,
    /// Never wait longer than this between polls, whatever `poll_interval_seconds` says.
    pub max_interval: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            max_interval: Duration::from_secs(10),
        }
    }
}

impl<'a> AuthedClient<'a> {
    /// Uses `key` as the `Idempotency-Key` of the next mutating call made through the
    /// returned value, instead of a fresh random one. Meant for one call: the server answers
    /// a second call with the same key and another body with 409 `IDEMPOTENCY_KEY_REUSED`.
    pub fn with_idempotency_key(&self, key: IdempotencyKey) -> AuthedClient<'a> {
        AuthedClient {
            idempotency_key: Some(key),
            ..self.clone()
        }
    }

    fn mutation_key(&self) -> IdempotencyKey {
        self.idempotency_key
            .clone()
            .unwrap_or_else(IdempotencyKey::generate)
    }

    /// Sends one call as this caller and decodes its answer. Every call here is
    /// repeatable: reads and estimates act once however often they are sent, and mutations
    /// carry an idempotency key kept across retries.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &'static str,
        url: Url,
        body: Option<Bytes>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<T> {
        let call = Call {
            method,
            endpoint,
            url,
            body,
            idempotency_key,
            repeatable: true,
        };
        self.client
            .transport()
            .send(self.token, &call)
            .await?
            .decode(endpoint)
    }

    async fn get<T: DeserializeOwned>(&self, endpoint: &'static str, url: Url) -> Result<T> {
        self.send(Method::GET, endpoint, url, None, None).await
    }

    /// One page of a listing: `query`'s page size and cursor added to `url`, the items and
    /// the pagination taken out of the answer by `split`.
    async fn get_page<Q: PagedQuery, O: DeserializeOwned, T>(
        &self,
        endpoint: &'static str,
        mut url: Url,
        query: &Q,
        split: impl FnOnce(O) -> (Vec<T>, Pagination),
    ) -> Result<Page<T>> {
        let (limit, cursor) = query.limit_and_cursor();
        add_page_params(&mut url, limit, cursor);
        let (items, pagination) = split(self.get(endpoint, url).await?);
        Ok(Page { items, pagination })
    }

    /// A POST that changes something: carries an idempotency key, kept across retries.
    async fn mutate<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
        body: &B,
    ) -> Result<T> {
        let body = to_body(body)?;
        let key = self.mutation_key();
        self.send(Method::POST, endpoint, url, Some(body), Some(key))
            .await
    }

    /// A POST that only reads (an estimate): safe to repeat, so retried without a key.
    async fn query_post<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
        body: Bytes,
    ) -> Result<T> {
        self.send(Method::POST, endpoint, url, Some(body), None)
            .await
    }

    // ----- workspaces -----

    /// `GET /workspaces`: one page of the caller's workspaces, most recently active first.
    pub async fn list_workspaces(
        &self,
        query: &ListWorkspacesQuery,
    ) -> Result<Page<WorkspaceInfo>> {
        let url = self.client.url(&["workspaces"]);
        self.get_page(
            endpoint::LIST_WORKSPACES,
            url,
            query,
            |out: ListWorkspacesOutput| (out.workspaces, out.pagination),
        )
        .await
    }

    /// Every workspace of the caller, following the cursor to the end.
    pub async fn all_workspaces(&self) -> Result<Vec<WorkspaceInfo>> {
        let query = ListWorkspacesQuery::default();
        collect_pages(endpoint::LIST_WORKSPACES, &query, |query| async move {
            self.list_workspaces(&query).await
        })
        .await
    }

    /// `GET /workspaces/{workspace_id}`: one workspace and its balance.
    pub async fn get_workspace(&self, workspace: WorkspaceId) -> Result<WorkspaceInfo> {
        let url = self.client.workspace_url(workspace, &[]);
        let out: GetWorkspaceOutput = self.get(endpoint::GET_WORKSPACE, url).await?;
        Ok(out.into_inner())
    }

    // ----- models -----

    /// `GET /workspaces/{ws}/models`: one page of models, filtered.
    pub async fn list_models(
        &self,
        workspace: WorkspaceId,
        query: &ListModelsQuery,
    ) -> Result<Page<ModelSummary>> {
        let mut url = self.client.workspace_url(workspace, &["models"]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(modality) = &query.modality {
                pairs.append_pair("modality", modality.as_str());
            }
            for capability in &query.capabilities {
                pairs.append_pair("capability", capability);
            }
            if let Some(search) = &query.search {
                pairs.append_pair("search", search);
            }
        }
        self.get_page(
            endpoint::LIST_MODELS,
            url,
            query,
            |out: ListModelsOutput| (out.models, out.pagination),
        )
        .await
    }

    /// Every model matching `query`, following the cursor to the end (starting at
    /// `query.cursor` when set).
    pub async fn all_models(
        &self,
        workspace: WorkspaceId,
        query: &ListModelsQuery,
    ) -> Result<Vec<ModelSummary>> {
        collect_pages(endpoint::LIST_MODELS, query, |query| async move {
            self.list_models(workspace, &query).await
        })
        .await
    }

    /// `GET /workspaces/{ws}/models/{model_id}`: one model with its capabilities.
    pub async fn get_model(&self, workspace: WorkspaceId, model: ModelId) -> Result<ModelDetail> {
        let url = self
            .client
            .workspace_url(workspace, &["models", &model.to_string()]);
        let out: GetModelOutput = self.get(endpoint::GET_MODEL, url).await?;
        Ok(out.model)
    }

    // ----- inferences (forge) -----

    /// `POST /workspaces/{ws}/inferences/estimate`: what `request` would cost. `seed` and
    /// `session_name` are left out, as models.py's estimate body has neither.
    pub async fn estimate_inference(
        &self,
        workspace: WorkspaceId,
        request: &InferenceRequest,
    ) -> Result<InferenceEstimate> {
        let mut body = serde_json::to_value(request).map_err(encode_error)?;
        if let Some(map) = body.as_object_mut() {
            map.remove("seed");
            map.remove("session_name");
        }
        let url = self
            .client
            .workspace_url(workspace, &["inferences", "estimate"]);
        self.query_post(endpoint::ESTIMATE_INFERENCE, url, to_body(&body)?)
            .await
    }

    /// `POST /workspaces/{ws}/inferences`: starts a run, reserving its estimate. Sent with an
    /// `Idempotency-Key`, so a retry after a lost answer returns the same run.
    pub async fn execute_inference(
        &self,
        workspace: WorkspaceId,
        request: &InferenceRequest,
    ) -> Result<InferenceStarted> {
        let url = self.client.workspace_url(workspace, &["inferences"]);
        self.mutate(endpoint::EXECUTE_INFERENCE, url, request).await
    }

    /// `GET /workspaces/{ws}/inferences/{id}`: a run's status and, when complete, outputs.
    pub async fn get_inference(
        &self,
        workspace: WorkspaceId,
        inference: InferenceId,
    ) -> Result<InferenceRun> {
        let url = self
            .client
            .workspace_url(workspace, &["inferences", &inference.to_string()]);
        self.get(endpoint::GET_INFERENCE, url).await
    }

    /// `POST /workspaces/{ws}/inferences/{id}/cancel`: stops a run and releases its
    /// reservation; answers with the run as `GET` would.
    pub async fn cancel_inference(
        &self,
        workspace: WorkspaceId,
        inference: InferenceId,
    ) -> Result<InferenceRun> {
        let id = inference.to_string();
        let url = self
            .client
            .workspace_url(workspace, &["inferences", &id, "cancel"]);
        self.cancel(endpoint::CANCEL_INFERENCE, url).await
    }

    /// Polls a run until it is terminal, honouring `poll_interval_seconds` (capped by
    /// `options.max_interval`). When `options.timeout` passes first, returns
    /// [`Error::WaitTimedOut`]; the run goes on.
    pub async fn wait_for_inference(
        &self,
        workspace: WorkspaceId,
        inference: InferenceId,
        options: &PollOptions,
    ) -> Result<InferenceRun> {
        poll_until_terminal(
            endpoint::GET_INFERENCE,
            options,
            || self.get_inference(workspace, inference),
            |run: &InferenceRun| (run.status.is_terminal(), run.poll_interval_seconds),
        )
        .await
    }

    // ----- workflows -----

    /// `GET /workspaces/{ws}/workflows`: one page of workflows with their inputs and outputs.
    pub async fn list_workflows(
        &self,
        workspace: WorkspaceId,
        query: &ListWorkflowsQuery,
    ) -> Result<Page<WorkflowSummary>> {
        let mut url = self.client.workspace_url(workspace, &["workflows"]);
        if let Some(search) = &query.search {
            url.query_pairs_mut().append_pair("search", search);
        }
        self.get_page(
            endpoint::LIST_WORKFLOWS,
            url,
            query,
            |out: ListWorkflowsOutput| (out.workflows, out.pagination),
        )
        .await
    }

    /// Every workflow matching `query`, following the cursor to the end.
    pub async fn all_workflows(
        &self,
        workspace: WorkspaceId,
        query: &ListWorkflowsQuery,
    ) -> Result<Vec<WorkflowSummary>> {
        collect_pages(endpoint::LIST_WORKFLOWS, query, |query| async move {
            self.list_workflows(workspace, &query).await
        })
        .await
    }

    /// `POST /workspaces/{ws}/workflows/{wf}/estimate`: what a run with these inputs would
    /// cost and how many outputs it would make.
    pub async fn estimate_workflow(
        &self,
        workspace: WorkspaceId,
        workflow: WorkflowId,
        request: &EstimateWorkflowRequest,
    ) -> Result<WorkflowEstimate> {
        let url = self.client.workflow_url(workspace, workflow, &["estimate"]);
        self.query_post(endpoint::ESTIMATE_WORKFLOW, url, to_body(request)?)
            .await
    }

    /// `POST /workspaces/{ws}/workflows/{wf}/runs`: starts a workflow run, with an
    /// `Idempotency-Key`.
    pub async fn execute_workflow(
        &self,
        workspace: WorkspaceId,
        workflow: WorkflowId,
        request: &ExecuteWorkflowRequest,
    ) -> Result<WorkflowRunStarted> {
        let url = self.client.workflow_url(workspace, workflow, &["runs"]);
        self.mutate(endpoint::EXECUTE_WORKFLOW, url, request).await
    }

    /// `GET /workspaces/{ws}/workflows/{wf}/runs/{run_id}`: a run's steps, outputs, refusals.
    pub async fn get_workflow_run(
        &self,
        workspace: WorkspaceId,
        workflow: WorkflowId,
        run: WorkflowRunId,
    ) -> Result<WorkflowRun> {
        let run = run.to_string();
        let url = self
            .client
            .workflow_url(workspace, workflow, &["runs", &run]);
        self.get(endpoint::GET_WORKFLOW_RUN, url).await
    }

    /// `POST /workspaces/{ws}/workflows/{wf}/runs/{run_id}/cancel`: stops a run and releases
    /// its reservation; answers with the run as `GET` would.
    pub async fn cancel_workflow_run(
        &self,
        workspace: WorkspaceId,
        workflow: WorkflowId,
        run: WorkflowRunId,
    ) -> Result<WorkflowRun> {
        let run = run.to_string();
        let url = self
            .client
            .workflow_url(workspace, workflow, &["runs", &run, "cancel"]);
        self.cancel(endpoint::CANCEL_WORKFLOW_RUN, url).await
    }

    /// Polls a workflow run until it is terminal; see [`AuthedClient::wait_for_inference`].
    pub async fn wait_for_workflow_run(
        &self,
        workspace: WorkspaceId,
        workflow: WorkflowId,
        run: WorkflowRunId,
        options: &PollOptions,
    ) -> Result<WorkflowRun> {
        poll_until_terminal(
            endpoint::GET_WORKFLOW_RUN,
            options,
            || self.get_workflow_run(workspace, workflow, run),
            |current: &WorkflowRun| (current.status.is_terminal(), current.poll_interval_seconds),
        )
        .await
    }

    /// A cancel: an empty JSON body, sent with an idempotency key like every mutation.
    async fn cancel<T: DeserializeOwned>(&self, endpoint: &'static str, url: Url) -> Result<T> {
        self.mutate(endpoint, url, &serde_json::Map::new()).await
    }

    // ----- files -----

    /// `POST /workspaces/{ws}/files/upload-url`: a file id and a signed resumable-upload URL
    /// (valid 15 minutes) for a file of the given type and exact size.
    pub async fn request_upload_url(
        &self,
        workspace: WorkspaceId,
        request: &UploadUrlRequest,
    ) -> Result<UploadGrant> {
        if request.file_size_bytes == 0 {
            return Err(Error::InvalidRequest(
                "file_size_bytes must be greater than zero".to_owned(),
            ));
        }
        let url = self
            .client
            .workspace_url(workspace, &["files", "upload-url"]);
        self.mutate(endpoint::UPLOAD_URL, url, request).await
    }

    /// Requests an upload URL for `body` and uploads it: the whole dance. Returns the grant,
    /// whose `file_id` is usable as a guidance file. `request.file_size_bytes` must equal
    /// the body's length.
    pub async fn upload(
        &self,
        workspace: WorkspaceId,
        request: &UploadUrlRequest,
        body: UploadBody,
    ) -> Result<UploadGrant> {
        if request.file_size_bytes != body.len() {
            return Err(Error::InvalidRequest(format!(
                "file_size_bytes is {} but the body has {} bytes",
                request.file_size_bytes,
                body.len()
            )));
        }
        let grant = self.request_upload_url(workspace, request).await?;
        self.client
            .upload_bytes(&grant.upload_url, &grant.content_type, body)
            .await?;
        Ok(grant)
    }
}

fn encode_error(err: serde_json::Error) -> Error {
    Error::InvalidRequest(format!("the request body could not be encoded: {err}"))
}

fn to_body<B: Serialize + ?Sized>(body: &B) -> Result<Bytes> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(encode_error)
}

fn add_page_params(url: &mut Url, limit: Option<PageLimit>, cursor: Option<&Cursor>) {
    let mut pairs = url.query_pairs_mut();
    if let Some(limit) = limit {
        pairs.append_pair("limit", &limit.get().to_string());
    }
    if let Some(cursor) = cursor {
        pairs.append_pair("cursor", cursor.as_str());
    }
    drop(pairs);
    // `query_pairs_mut` leaves an empty `?` behind when nothing was added.
    if url.query() == Some("") {
        url.set_query(None);
    }
}

/// A listing query that can be continued from a cursor.
trait PagedQuery: Clone {
    fn limit_and_cursor(&self) -> (Option<PageLimit>, Option<&Cursor>);
    fn limit_and_cursor_mut(&mut self) -> (&mut Option<PageLimit>, &mut Option<Cursor>);
}

macro_rules! paged_query {
    ($($query:ty),+) => {$(
        impl PagedQuery for $query {
            fn limit_and_cursor(&self) -> (Option<PageLimit>, Option<&Cursor>) {
                (self.limit, self.cursor.as_ref())
            }
            fn limit_and_cursor_mut(&mut self) -> (&mut Option<PageLimit>, &mut Option<Cursor>) {
                (&mut self.limit, &mut self.cursor)
            }
        }
    )+};
}

paged_query!(ListWorkspacesQuery, ListModelsQuery, ListWorkflowsQuery);

/// Fetches pages of `query` (the largest page size unless it names one), from its cursor
/// until the last page. A server that hands out a cursor it handed out before would loop
/// forever; that is reported as an invalid response.
async fn collect_pages<Q, T, F, Fut>(
    endpoint: &'static str,
    query: &Q,
    mut fetch: F,
) -> Result<Vec<T>>
where
    Q: PagedQuery,
    F: FnMut(Q) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut query = query.clone();
    let (limit, _) = query.limit_and_cursor_mut();
    *limit = limit.or(Some(PageLimit::MAX));
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let page = fetch(query.clone()).await?;
        let next = page.next_cursor().cloned();
        items.extend(page.items);
        match next {
            None => return Ok(items),
            Some(next) => {
                if !seen.insert(next.clone()) {
                    return Err(Error::InvalidResponse {
                        endpoint,
                        status: StatusCode::OK,
                        request_id: None,
                        reason: "the server repeated a pagination cursor".to_owned(),
                    });
                }
                *query.limit_and_cursor_mut().1 = Some(next);
            }
        }
    }
}

/// Fetches a run until `state` says it is terminal; between polls, sleeps as long as the
/// run's `poll_interval_seconds` suggests (capped by `options.max_interval`).
async fn poll_until_terminal<T, F, Fut>(
    endpoint: &'static str,
    options: &PollOptions,
    mut fetch: F,
    state: impl Fn(&T) -> (bool, Option<u64>),
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + options.timeout;
    loop {
        let run = fetch().await?;
        let (terminal, poll_interval_seconds) = state(&run);
        if terminal {
            return Ok(run);
        }
        sleep_until_next_poll(poll_interval_seconds, options, deadline, endpoint).await?;
    }
}

async fn sleep_until_next_poll(
    poll_interval_seconds: Option<u64>,
    options: &PollOptions,
    deadline: Instant,
    endpoint: &'static str,
) -> Result<()> {
    let suggested = Duration::from_secs(poll_interval_seconds.unwrap_or(10).max(1));
    let wait = suggested.min(options.max_interval);
    let now = Instant::now();
    if now >= deadline {
        return Err(Error::WaitTimedOut { endpoint });
    }
    tokio::time::sleep(wait.min(deadline - now)).await;
    Ok(())
}
