//! The simulator's memory: the Creative Unit ledger, runs and their progress, files, sessions,
//! idempotency records and counters. One mutex guards it all, so a reservation, a rate-limit
//! check and the run they admit happen as one step.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::catalogue::OutputMedia;
use crate::config::SimConfig;
use crate::faults::Faults;
use crate::fixtures::Fixtures;
use crate::idp::IdpState;
use crate::idp::jwt::Keys;
use crate::ids::{FileId, IdGen, ModelId, RunId, SessionId, WorkflowId, WorkspaceId};
use crate::outputs::{Generated, preview_size};

/// Index of a fixture user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserIdx(pub usize);

/// Everything the handlers share.
pub struct Sim {
    pub config: SimConfig,
    pub fixtures: Arc<Fixtures>,
    /// Public origin without a trailing slash, e.g. `http://127.0.0.1:8090`.
    pub public: String,
    pub ids: IdGen,
    pub keys: Keys,
    /// PAT value to (user, revoked).
    pub pats: HashMap<String, (UserIdx, bool)>,
    pub faults: Faults,
    pub shutdown: CancellationToken,
    inner: Mutex<Inner>,
}

impl Sim {
    pub fn new(config: SimConfig, fixtures: Fixtures, public: String) -> Self {
        let mut pats = HashMap::new();
        for (i, user) in fixtures.users.iter().enumerate() {
            for pat in &user.pats {
                pats.insert(
                    pat.token.expose_secret().to_owned(),
                    (UserIdx(i), pat.revoked),
                );
            }
        }
        let workspaces = fixtures
            .workspaces
            .iter()
            .map(|w| WorkspaceState {
                id: WorkspaceId(w.workspace_id),
                slug: w.slug.clone(),
                name: w.name.clone(),
                balance: w.balance_creative_units,
                reserved: 0.0,
                members: w
                    .members
                    .iter()
                    .filter_map(|m| fixtures.users.iter().position(|u| &u.login == m))
                    .map(UserIdx)
                    .collect(),
                custom_models: w.custom_models.clone(),
            })
            .collect();
        let seed = config.seed;
        Self {
            ids: IdGen::new(seed),
            keys: Keys::from_seed(seed),
            pats,
            faults: Faults::default(),
            shutdown: CancellationToken::new(),
            fixtures: Arc::new(fixtures),
            public,
            config,
            inner: Mutex::new(Inner {
                workspaces,
                last_active: HashMap::new(),
                runs: HashMap::new(),
                run_order: Vec::new(),
                files: HashMap::new(),
                upload_sessions: HashMap::new(),
                sessions: HashMap::new(),
                idempotency: HashMap::new(),
                max_concurrency: HashMap::new(),
                counters: Counters::default(),
                idp: IdpState::default(),
            }),
        }
    }

    /// The state, with every run that is due settled first. A poisoned lock is still usable:
    /// every mutation leaves the ledger consistent before it can panic.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        guard.settle(self, Instant::now());
        guard
    }

    pub fn login(&self, user: UserIdx) -> &str {
        self.fixtures
            .users
            .get(user.0)
            .map_or("unknown", |u| u.login.as_str())
    }

    pub fn issuer(&self) -> String {
        format!("{}/", self.public)
    }

    pub fn file_url(&self, id: FileId, name: &str) -> String {
        format!("{}/cdn/{id}/{name}", self.public)
    }

    pub fn poll_interval(&self) -> u64 {
        self.config.poll_interval()
    }
}

pub struct WorkspaceState {
    pub id: WorkspaceId,
    pub slug: String,
    pub name: String,
    pub balance: f64,
    pub reserved: f64,
    pub members: Vec<UserIdx>,
    pub custom_models: Vec<String>,
}

impl WorkspaceState {
    pub fn available(&self) -> f64 {
        round_cu(self.balance - self.reserved)
    }
}

pub fn round_cu(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Active,
    Complete,
    Failed,
    Cancelled,
}

#[derive(Clone, Debug)]
pub enum RunKind {
    Inference {
        model_id: ModelId,
        normalized: Value,
    },
    Workflow {
        workflow_id: WorkflowId,
        steps: &'static [&'static str],
        /// Index of the step a planned failure happens in.
        failing_step: usize,
    },
}

/// A failure decided when the run was created (prompt triggers), or by an admin call.
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// A provider or guardrail refusal: workflow runs list it under `refusals`.
    pub refusal: Option<String>,
}

/// One file a run will produce.
#[derive(Clone, Debug)]
pub struct PlannedOutput {
    pub media: Generated,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Run {
    pub id: RunId,
    pub kind: RunKind,
    pub owner: UserIdx,
    pub workspace: WorkspaceId,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub started: Instant,
    pub duration: Duration,
    /// Kept unfinished until an admin call or a cancel ends it.
    pub held: bool,
    pub planned_failure: Option<(Failure, f64)>,
    pub failure: Option<Failure>,
    pub estimate: f64,
    pub actual: Option<f64>,
    pub reserved: f64,
    pub planned_outputs: Vec<PlannedOutput>,
    pub outputs: Vec<FileId>,
    pub session_id: Option<SessionId>,
    /// Id of the generation a refusal names (workflow runs).
    pub refused_inference: Option<RunId>,
}

impl Run {
    pub fn is_active(&self) -> bool {
        self.state == RunState::Active
    }

    /// 0.0 at creation, 1.0 when due; a held run stops just short of the end.
    pub fn progress(&self, now: Instant) -> f64 {
        if !self.is_active() {
            return 1.0;
        }
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let total = self.duration.as_secs_f64().max(1e-9);
        let p = elapsed / total;
        if self.held { p.min(0.99) } else { p }
    }

    /// When the run is expected to finish (for `Retry-After`).
    pub fn expected_end(&self) -> Instant {
        self.started + self.duration
    }

    pub fn is_workflow(&self) -> bool {
        matches!(self.kind, RunKind::Workflow { .. })
    }

    pub fn wire_status(&self, now: Instant) -> &'static str {
        match (&self.kind, self.state) {
            (RunKind::Inference { .. }, RunState::Active) => "in_progress",
            (RunKind::Inference { .. }, RunState::Complete) => "complete",
            (RunKind::Inference { .. }, RunState::Failed) => "failed",
            (RunKind::Inference { .. }, RunState::Cancelled) => "cancelled",
            (RunKind::Workflow { .. }, RunState::Active) => {
                if self.progress(now) < 0.1 {
                    "pending"
                } else {
                    "running"
                }
            }
            (RunKind::Workflow { .. }, RunState::Complete) => "success",
            (RunKind::Workflow { .. }, RunState::Failed) => "failure",
            (RunKind::Workflow { .. }, RunState::Cancelled) => "cancelled",
        }
    }
}

/// Where a file's bytes come from.
#[derive(Clone, Debug)]
pub enum FileContent {
    Upload {
        declared_size: u64,
        file_name: Option<String>,
        source_type: Option<String>,
        received: Vec<u8>,
    },
    Output {
        media: Generated,
        preview: Option<Generated>,
        width: Option<u32>,
        height: Option<u32>,
        duration_seconds: Option<f64>,
        run: RunId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Upload URL issued, no bytes yet.
    AwaitingUpload,
    /// Some chunks received.
    Uploading,
    Ready,
    /// A wrong-sized upload: the file can never be used.
    Failed,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::AwaitingUpload => "awaiting_upload",
            FileStatus::Uploading => "uploading",
            FileStatus::Ready => "ready",
            FileStatus::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FileRec {
    pub id: FileId,
    pub workspace: WorkspaceId,
    pub content_type: String,
    pub status: FileStatus,
    pub content: FileContent,
}

impl FileRec {
    pub fn size(&self) -> u64 {
        match &self.content {
            FileContent::Upload { received, .. } => received.len() as u64,
            FileContent::Output { media, .. } => media.size(),
        }
    }

    /// The file's bytes, when it has any.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match (&self.content, self.status) {
            (FileContent::Upload { received, .. }, FileStatus::Ready) => Some(received.clone()),
            (FileContent::Output { media, .. }, _) => Some(media.render()),
            _ => None,
        }
    }
}

/// A stored answer to a POST that carried an `Idempotency-Key`.
#[derive(Clone, Debug)]
pub struct IdemRecord {
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: Value,
    pub stored_at: Instant,
}

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub inferences_created: u64,
    pub workflow_runs_created: u64,
    pub upload_urls_created: u64,
    pub rate_limited: u64,
    pub insufficient_balance: u64,
    pub idempotent_replays: u64,
    pub idempotency_conflicts: u64,
    pub faults_applied: u64,
    pub requests: BTreeMap<String, u64>,
    pub token_refreshes: BTreeMap<String, u64>,
    pub tokens_issued: BTreeMap<String, u64>,
    pub refresh_reuse_detected: u64,
}

pub struct Inner {
    pub workspaces: Vec<WorkspaceState>,
    pub last_active: HashMap<(UserIdx, WorkspaceId), DateTime<Utc>>,
    pub runs: HashMap<RunId, Run>,
    pub run_order: Vec<RunId>,
    pub files: HashMap<FileId, FileRec>,
    /// Upload session id (the `upload_id` of the session URI) to file.
    pub upload_sessions: HashMap<String, FileId>,
    pub sessions: HashMap<(WorkspaceId, String), SessionId>,
    pub idempotency: HashMap<(UserIdx, String), IdemRecord>,
    pub max_concurrency: HashMap<(UserIdx, WorkspaceId), usize>,
    pub counters: Counters,
    pub idp: IdpState,
}

impl Inner {
    pub fn workspace(&self, id: WorkspaceId) -> Option<&WorkspaceState> {
        self.workspaces.iter().find(|w| w.id == id)
    }

    pub fn workspace_mut(&mut self, id: WorkspaceId) -> Option<&mut WorkspaceState> {
        self.workspaces.iter_mut().find(|w| w.id == id)
    }

    pub fn touch(&mut self, user: UserIdx, ws: WorkspaceId) {
        self.last_active.insert((user, ws), Utc::now());
    }

    /// Unfinished runs of one user in one workspace.
    pub fn unfinished(&self, user: UserIdx, ws: WorkspaceId) -> Vec<&Run> {
        self.runs
            .values()
            .filter(|r| r.owner == user && r.workspace == ws && r.is_active())
            .collect()
    }

    pub fn session_for(&mut self, ids: &IdGen, ws: WorkspaceId, name: &str) -> SessionId {
        *self
            .sessions
            .entry((ws, name.to_owned()))
            .or_insert_with(|| SessionId(ids.next("session")))
    }

    /// Adds a run, reserving its estimate, and notes the concurrency it reaches.
    pub fn insert_run(&mut self, run: Run) {
        let (owner, ws) = (run.owner, run.workspace);
        if let Some(w) = self.workspace_mut(ws) {
            w.reserved = round_cu(w.reserved + run.reserved);
        }
        if run.is_workflow() {
            self.counters.workflow_runs_created += 1;
        } else {
            self.counters.inferences_created += 1;
        }
        self.run_order.push(run.id);
        self.runs.insert(run.id, run);
        let now_unfinished = self.unfinished(owner, ws).len();
        let max = self.max_concurrency.entry((owner, ws)).or_insert(0);
        *max = (*max).max(now_unfinished);
    }

    /// Finishes every run that is due.
    fn settle(&mut self, sim: &Sim, now: Instant) {
        let due: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| r.is_active() && !r.held)
            .filter(|r| match &r.planned_failure {
                Some((_, at)) => r.progress(now) >= *at,
                None => r.progress(now) >= 1.0,
            })
            .map(|r| r.id)
            .collect();
        for id in due {
            let failure = self
                .runs
                .get(&id)
                .and_then(|r| r.planned_failure.as_ref().map(|(f, _)| f.clone()));
            match failure {
                Some(f) => self.fail_run(sim, id, f),
                None => self.complete_run(sim, id),
            }
        }
    }

    /// Ends a run successfully: outputs appear, the actual price is charged, the reservation goes.
    pub fn complete_run(&mut self, sim: &Sim, id: RunId) {
        let Some(run) = self.runs.get(&id) else {
            return;
        };
        if !run.is_active() {
            return;
        }
        let (ws, reserved, estimate, planned) = (
            run.workspace,
            run.reserved,
            run.estimate,
            run.planned_outputs.clone(),
        );
        let actual = match &run.kind {
            RunKind::Inference { model_id, .. } => crate::catalogue::models()
                .iter()
                .find(|m| m.id == *model_id)
                .map_or(estimate, |m| crate::pricing::actual_inference(m, estimate)),
            RunKind::Workflow { .. } => crate::pricing::actual_workflow(estimate),
        };
        let mut outputs = Vec::with_capacity(planned.len());
        for p in planned {
            let file_id = FileId(sim.ids.next("output"));
            let preview = match (&p.media, p.width, p.height) {
                (Generated::Png { seed, .. }, Some(w), Some(h))
                | (Generated::Mp4 { seed, .. }, Some(w), Some(h)) => {
                    let (pw, ph) = preview_size(w, h);
                    Some(Generated::Png {
                        width: pw,
                        height: ph,
                        seed: *seed,
                    })
                }
                (Generated::Glb { seed }, _, _) => Some(Generated::Png {
                    width: 256,
                    height: 256,
                    seed: *seed,
                }),
                _ => None,
            };
            self.files.insert(
                file_id,
                FileRec {
                    id: file_id,
                    workspace: ws,
                    content_type: p.media.content_type().to_owned(),
                    status: FileStatus::Ready,
                    content: FileContent::Output {
                        media: p.media,
                        preview,
                        width: p.width,
                        height: p.height,
                        duration_seconds: p.duration_seconds,
                        run: id,
                    },
                },
            );
            outputs.push(file_id);
        }
        if let Some(w) = self.workspace_mut(ws) {
            w.reserved = round_cu((w.reserved - reserved).max(0.0));
            w.balance = round_cu(w.balance - actual);
        }
        if let Some(run) = self.runs.get_mut(&id) {
            run.state = RunState::Complete;
            run.completed_at = Some(Utc::now());
            run.actual = Some(actual);
            run.reserved = 0.0;
            run.outputs = outputs;
        }
    }

    /// Ends a run as failed: nothing is charged, the reservation goes.
    pub fn fail_run(&mut self, sim: &Sim, id: RunId, failure: Failure) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        if !run.is_active() {
            return;
        }
        if run.is_workflow() && failure.refusal.is_some() {
            run.refused_inference = Some(RunId(sim.ids.next("refused-inference")));
        }
        run.state = RunState::Failed;
        run.completed_at = Some(Utc::now());
        run.failure = Some(failure);
        let (ws, reserved) = (run.workspace, run.reserved);
        run.reserved = 0.0;
        if let Some(w) = self.workspace_mut(ws) {
            w.reserved = round_cu((w.reserved - reserved).max(0.0));
        }
    }

    /// Cancels an unfinished run, releasing its reservation without charge.
    pub fn cancel_run(&mut self, id: RunId) {
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        if !run.is_active() {
            return;
        }
        run.state = RunState::Cancelled;
        run.completed_at = Some(Utc::now());
        let (ws, reserved) = (run.workspace, run.reserved);
        run.reserved = 0.0;
        if let Some(w) = self.workspace_mut(ws) {
            w.reserved = round_cu((w.reserved - reserved).max(0.0));
        }
    }

    /// `ForgeRunAsset` / `WorkflowRunAsset` for one output file.
    pub fn asset_json(&self, sim: &Sim, id: FileId, workflow: bool) -> Value {
        let Some(file) = self.files.get(&id) else {
            return Value::Null;
        };
        let (ext, width, height, duration, has_preview) = match &file.content {
            FileContent::Output {
                media,
                preview,
                width,
                height,
                duration_seconds,
                ..
            } => (
                media.extension(),
                *width,
                *height,
                *duration_seconds,
                preview.is_some(),
            ),
            FileContent::Upload { .. } => ("bin", None, None, None, false),
        };
        let mut asset = json!({
            "file_id": id,
            "url": sim.file_url(id, &format!("output.{ext}")),
            "content_type": file.content_type,
            "preview_url": has_preview.then(|| sim.file_url(id, "preview.png")),
            "width": width,
            "height": height,
            "duration_seconds": duration,
            "file_size_bytes": file.size(),
            "metadata": Value::Null,
        });
        if workflow && let Some(map) = asset.as_object_mut() {
            map.insert("object_id".into(), json!(id));
            map.insert("object_type".into(), json!("file"));
        }
        asset
    }

    /// `GetForgeRunOutput`.
    pub fn inference_json(&self, sim: &Sim, run: &Run, now: Instant) -> Value {
        let complete = run.state == RunState::Complete;
        let failed = run.state == RunState::Failed;
        json!({
            "inference_id": run.id,
            "status": run.wire_status(now),
            "poll_interval_seconds": run.is_active().then(|| sim.poll_interval()),
            "completed_at": if complete { run.completed_at.map(rfc3339) } else { None },
            "outputs": complete.then(|| run.outputs.iter().map(|f| self.asset_json(sim, *f, false)).collect::<Vec<_>>()),
            "actual_price_creative_units": if complete { run.actual } else { None },
            "error": if failed { run.failure.as_ref().map(|f| f.message.clone()) } else { None },
            "error_code": if failed { run.failure.as_ref().map(|f| f.code.clone()) } else { None },
        })
    }

    /// `GetWorkflowRunOutput`.
    pub fn workflow_run_json(&self, sim: &Sim, run: &Run, now: Instant) -> Value {
        let RunKind::Workflow {
            steps,
            failing_step,
            ..
        } = &run.kind
        else {
            return Value::Null;
        };
        let n = steps.len().max(1) as f64;
        let progress = run.progress(now);
        let step_json: Vec<Value> = steps
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (status, error, code) = match run.state {
                    RunState::Complete => ("success", None, None),
                    RunState::Failed => {
                        let f = run.failure.as_ref();
                        match i.cmp(failing_step) {
                            std::cmp::Ordering::Less => ("success", None, None),
                            std::cmp::Ordering::Equal => (
                                "failure",
                                f.map(|f| f.message.clone()),
                                f.map(|f| f.code.clone()),
                            ),
                            std::cmp::Ordering::Greater => ("cancelled", None, None),
                        }
                    }
                    RunState::Active | RunState::Cancelled => {
                        let start = 0.1 + 0.9 * (i as f64) / n;
                        let end = 0.1 + 0.9 * ((i + 1) as f64) / n;
                        let live = if progress >= end {
                            "success"
                        } else if progress >= start {
                            "running"
                        } else {
                            "pending"
                        };
                        if run.state == RunState::Cancelled && live != "success" {
                            ("cancelled", None, None)
                        } else {
                            (live, None, None)
                        }
                    }
                };
                json!({"name": name, "status": status, "error": error, "error_code": code})
            })
            .collect();
        let complete = run.state == RunState::Complete;
        let failed = run.state == RunState::Failed;
        let refusals: Vec<Value> = match (&run.failure, run.refused_inference) {
            (
                Some(Failure {
                    refusal: Some(code),
                    ..
                }),
                Some(inference_id),
            ) if failed => {
                let guardrails = if code == "INPUT_GUARDRAIL_VIOLATION" {
                    json!([{
                        "guardrail_id": crate::ids::derive_uuid(&[b"guardrail", run.workspace.0.as_bytes()]),
                        "name": "No third-party trademarks",
                        "category": "ip_trademark_infringement",
                        "reason": "The request names a trademarked brand.",
                    }])
                } else {
                    json!([])
                };
                vec![json!({"inference_id": inference_id, "code": code, "guardrails": guardrails})]
            }
            _ => vec![],
        };
        json!({
            "run_id": run.id,
            "status": run.wire_status(now),
            "poll_interval_seconds": run.is_active().then(|| sim.poll_interval()),
            "steps": step_json,
            "estimated_price_creative_units": run.estimate,
            "completed_at": if complete { run.completed_at.map(rfc3339) } else { None },
            "actual_price_creative_units": if complete { run.actual } else { None },
            "outputs": complete.then(|| run.outputs.iter().map(|f| self.asset_json(sim, *f, true)).collect::<Vec<_>>()),
            "error": if failed { run.failure.as_ref().map(|f| f.message.clone()) } else { None },
            "error_code": if failed { run.failure.as_ref().map(|f| f.code.clone()) } else { None },
            "refusals": refusals,
            "webhook": Value::Null,
        })
    }
}

/// Media of a workflow output, sized for this run.
pub fn workflow_output_media(
    media: OutputMedia,
    seed: u64,
    image: (u32, u32),
    duration: Option<f64>,
) -> PlannedOutput {
    let ms = |d: Option<f64>| (d.unwrap_or(5.0) * 1000.0) as u32;
    match media {
        OutputMedia::Png => PlannedOutput {
            media: Generated::Png {
                width: image.0.max(1),
                height: image.1.max(1),
                seed,
            },
            width: Some(image.0.max(1)),
            height: Some(image.1.max(1)),
            duration_seconds: None,
        },
        OutputMedia::Mp4 => PlannedOutput {
            media: Generated::Mp4 {
                duration_ms: ms(duration),
                seed,
            },
            width: Some(image.0.max(1)),
            height: Some(image.1.max(1)),
            duration_seconds: duration.or(Some(5.0)),
        },
        OutputMedia::Wav => PlannedOutput {
            media: Generated::Wav {
                duration_ms: ms(duration),
                seed,
            },
            width: None,
            height: None,
            duration_seconds: duration.or(Some(5.0)),
        },
        OutputMedia::Glb => PlannedOutput {
            media: Generated::Glb { seed },
            width: None,
            height: None,
            duration_seconds: None,
        },
    }
}
