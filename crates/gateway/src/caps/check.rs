//! Before refusing an execute, ask Layer about the runs the limiter believes active (with
//! the caller's own credential): an agent that never polled must not be locked out by its
//! own finished runs.

use std::time::Duration;

use layer_api::{AuthedClient, InferenceId, WorkflowId, WorkflowRunId, WorkspaceId};
use limiter::{ActivePlace, RunId, RunRef};

use super::refusal::{FORGE, WORKFLOW};

/// What Layer said about the runs it was asked about.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Runs that are over (a terminal status, or unknown to Layer).
    pub finished: Vec<RunId>,
    /// The shortest `poll_interval_seconds` among the runs still running: when it is worth
    /// asking again.
    pub next_poll: Option<Duration>,
}

enum Answer {
    Finished,
    Running(Option<u64>),
    /// No answer in time, a failure, or a run that cannot be asked about: it keeps its place.
    Unknown,
}

/// Asks Layer about every run among `places` at once, each within `timeout`. Places whose
/// run id is unknown cannot be asked about (they wait for their lease).
pub async fn check_runs(
    client: &AuthedClient<'_>,
    workspace: WorkspaceId,
    places: &[ActivePlace],
    timeout: Duration,
) -> CheckReport {
    let runs: Vec<&RunRef> = places.iter().filter_map(|p| p.holder.run()).collect();
    let asks = runs.iter().map(|run| async move {
        let answer = tokio::time::timeout(timeout, ask(client, workspace, run))
            .await
            .unwrap_or(Answer::Unknown);
        (*run, answer)
    });
    let mut report = CheckReport::default();
    for (run, answer) in futures::future::join_all(asks).await {
        match answer {
            Answer::Finished => report.finished.push(run.id.clone()),
            Answer::Running(poll) => {
                let poll = Duration::from_secs(poll.unwrap_or(10).max(1));
                report.next_poll = Some(report.next_poll.map_or(poll, |p| p.min(poll)));
            }
            Answer::Unknown => {}
        }
    }
    report
}

async fn ask(client: &AuthedClient<'_>, workspace: WorkspaceId, run: &RunRef) -> Answer {
    let result = match run.kind.as_str() {
        FORGE => {
            let Ok(id) = run.id.as_str().parse::<InferenceId>() else {
                return Answer::Unknown;
            };
            client
                .get_inference(workspace, id)
                .await
                .map(|r| (r.status.is_terminal(), r.poll_interval_seconds))
        }
        WORKFLOW => {
            let (Ok(id), Some(Ok(workflow))) = (
                run.id.as_str().parse::<WorkflowRunId>(),
                run.parent.as_deref().map(str::parse::<WorkflowId>),
            ) else {
                return Answer::Unknown;
            };
            client
                .get_workflow_run(workspace, workflow, id)
                .await
                .map(|r| (r.status.is_terminal(), r.poll_interval_seconds))
        }
        _ => return Answer::Unknown,
    };
    match result {
        Ok((true, _)) => Answer::Finished,
        Ok((false, poll)) => Answer::Running(poll),
        // Layer does not know the run (any more): it cannot be running for this caller.
        Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => Answer::Finished,
        Err(e) => {
            tracing::debug!(error = %e, run = %run.id, "could not check an active run");
            Answer::Unknown
        }
    }
}
