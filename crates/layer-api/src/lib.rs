//! Typed async client for Layer's v1 REST API.
//!
//! One [`LayerClient`] (one connection pool) serves every caller; each call carries its
//! caller's own credential:
//!
//! ```no_run
//! # async fn demo() -> layer_api::Result<()> {
//! use layer_api::{BearerToken, ClientConfig, LayerClient, ListWorkspacesQuery};
//!
//! let client = LayerClient::new(ClientConfig::default())?;
//! let token = BearerToken::new("a PAT or OAuth access token").expect("a valid token");
//! let page = client.with_token(&token).list_workspaces(&ListWorkspacesQuery::default()).await?;
//! for workspace in page.items {
//!     println!("{} has {} Creative Units", workspace.name, workspace.available_creative_units);
//! }
//! # Ok(()) }
//! ```
//!
//! - Errors: one [`Error`] type; Layer's problem+json and 422 answers become [`ApiError`]
//!   with the Layer [`ErrorCode`], status, message, validation items, request id and
//!   `Retry-After`.
//! - Retries: jittered exponential backoff, only for calls that cannot act twice (`GET`s,
//!   estimates, and `POST`s with an `Idempotency-Key`, which every mutating call carries and
//!   keeps across retries). See [`RetryPolicy`].
//! - Secrets: [`BearerToken`] and [`SignedUrl`] never show their value in `Debug`, errors or
//!   logs.

mod client;
mod config;
mod credentials;
mod enums;
mod error;
mod ids;
mod pagination;
mod transport;
pub mod types;
mod upload;
mod wire_enum;

pub use client::{AuthedClient, LayerClient, PollOptions};
pub use config::{ClientConfig, DEFAULT_BASE_URL, RetryPolicy};
pub use credentials::{BearerToken, IdempotencyKey, InvalidIdempotencyKey, InvalidToken};
pub use enums::*;
pub use error::{ApiError, Error, ErrorCode, LocSegment, Result, UploadStage, ValidationIssue};
pub use ids::{
    FileId, GuardrailId, InferenceId, InvalidId, ModelId, ObjectId, SessionId, WorkflowId,
    WorkflowRunId, WorkspaceId,
};
pub use pagination::{Cursor, InvalidPageLimit, Page, PageLimit, Pagination};
pub use types::files::{SignedUrl, UploadGrant, UploadUrlRequest};
pub use types::inferences::{
    AnnotationPoint, CompositionPlan, GuidanceFile, ImageAnnotation, ImageAnnotations,
    InferenceEstimate, InferenceOptions, InferenceRequest, InferenceRun, InferenceStarted, Mask,
    MusicSection, NormalizedParameters, RunAsset, VideoEffect,
};
pub use types::models::{ListModelsQuery, ModelCapabilities, ModelDetail, ModelSummary};
pub use types::workflows::{
    EstimateWorkflowRequest, ExecuteWorkflowRequest, ListWorkflowsQuery, OutputCount,
    RefusalGuardrail, RunRefusal, WebhookInput, WebhookStatus, WorkflowEstimate, WorkflowInput,
    WorkflowOutput, WorkflowRun, WorkflowRunAsset, WorkflowRunStarted, WorkflowRunStep,
    WorkflowSummary,
};
pub use types::workspaces::{ListWorkspacesQuery, WorkspaceInfo};
pub use types::{PriceEstimate, Timestamp};
pub use upload::UploadBody;
