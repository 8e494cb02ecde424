//! What an agent is told when a cap stops it: in words it can act on, and in structured
//! content (`active_runs`, `retry_after_seconds`).

use std::time::Duration;

use limiter::{ActivePlace, Holder, LimiterUnavailable, QueueTimeout, Refusal, RunRef};

use crate::errors::{ActiveRun, Code, ToolError};

/// The kinds of run the gateway counts, as stored in the limiter's `RunRef`.
pub const FORGE: &str = "forge";
pub const WORKFLOW: &str = "workflow";

/// The longest a refused caller is told to wait before retrying.
pub const RECHECK_AFTER: Duration = Duration::from_secs(10);

/// How a run is shown to the agent, with the tool that polls it.
pub fn active_run(run: &RunRef) -> ActiveRun {
    let workflow = run.kind.as_str() == WORKFLOW;
    ActiveRun {
        kind: run.kind.to_string(),
        run_id: run.id.to_string(),
        workflow_id: run.parent.clone(),
        poll_with: if workflow {
            "get_workflow_run"
        } else {
            "get_forge_run"
        },
    }
}

pub fn describe(run: &ActiveRun) -> String {
    match &run.workflow_id {
        Some(workflow) => format!("workflow run {} (workflow {workflow})", run.run_id),
        None => format!("forge run {}", run.run_id),
    }
}

/// The refusal of an execute: every place is held. Lists the runs, says what to do, and
/// when to retry: `retry_after` when the caller knows better than the leases (Layer's poll
/// interval for runs it says are still running), else the earliest lease end, at most
/// [`RECHECK_AFTER`] (a retry asks Layer again, so it need not wait for a lease).
pub fn runs_full(refusal: &Refusal, retry_after: Option<Duration>) -> ToolError {
    let runs: Vec<ActiveRun> = refusal.runs().map(active_run).collect();
    let unnamed = refusal.active.len() - runs.len();
    let starting = refusal
        .active
        .iter()
        .filter(|p| p.holder == Holder::Starting)
        .count();
    let unknown = unnamed - starting;
    let mut text = format!(
        "You already have {} runs in progress in this workspace, the most allowed at once ({}), so no run was started.",
        refusal.active.len(),
        refusal.limit
    );
    if !runs.is_empty() {
        let listed: Vec<String> = runs.iter().map(describe).collect();
        text.push_str(&format!(" In progress: {}.", listed.join("; ")));
    }
    if starting > 0 {
        text.push_str(&format!(
            " {starting} more {} being started by another call right now.",
            if starting == 1 { "is" } else { "are" }
        ));
    }
    if unknown > 0 {
        text.push_str(&format!(
            " {unknown} more {} an execute whose outcome is unknown (Layer did not answer in time), which may have started a run: {} its place until {}.",
            if unknown == 1 { "comes from" } else { "come from" },
            if unknown == 1 { "it keeps" } else { "they keep" },
            expiry_text(&refusal.active)
        ));
    }
    let after = retry_secs(retry_after.unwrap_or(refusal.retry_after.min(RECHECK_AFTER)));
    text.push_str(&format!(
        " Poll the runs with get_forge_run / get_workflow_run until they finish (finished runs free their places), cancel one with cancel_workflow_run, or retry after {after} seconds."
    ));
    ToolError::new(Code::RateLimited, text)
        .with_retry_after(Duration::from_secs(after))
        .with_active_runs(runs)
}

fn expiry_text(active: &[ActivePlace]) -> String {
    let longest = active
        .iter()
        .filter(|p| p.holder == Holder::Unknown)
        .map(|p| p.expires_in)
        .max()
        .unwrap_or_default();
    format!(
        "its lease ends, in at most {} seconds",
        longest.as_secs().max(1)
    )
}

fn retry_secs(after: Duration) -> u64 {
    // Whole seconds, rounded up, at least one.
    after.as_millis().div_ceil(1000).max(1) as u64
}

/// A call waited its whole queue time for one of the caller's call places.
pub fn queue_full(timeout: &QueueTimeout) -> ToolError {
    ToolError::new(
        Code::RateLimited,
        format!(
            "You already have {} calls to Layer in flight in this workspace, the most allowed at once, and none finished within {} seconds. Wait for your other calls to finish (or make fewer at once), then retry.",
            timeout.limit,
            timeout.waited.as_secs().max(1)
        ),
    )
    .with_retry_after(Duration::from_secs(2))
}

/// The shared store of the counts cannot be reached: an execute fails closed.
pub fn unavailable(error: &LimiterUnavailable) -> ToolError {
    tracing::warn!(
        reason = error.reason(),
        "limiter unavailable: refusing to start a run"
    );
    ToolError::new(
        Code::UpstreamUnavailable,
        "The gateway cannot count your runs in progress right now (its shared limiter store is unreachable), so no run was started. Nothing was charged. Retry in a few seconds; reads still work.",
    )
    .with_retry_after(Duration::from_secs(5))
}

/// The client cancelled or disconnected while the call waited for a place. Nothing reached
/// Layer; the answer only reaches a client that resumes the stream.
pub fn abandoned() -> ToolError {
    ToolError::new(
        Code::RateLimited,
        "The call was cancelled while it waited for a place in your queue; nothing was sent to Layer. Call again if you still need it.",
    )
    .with_retry_after(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiter::PlaceId;

    fn place(holder: Holder, secs: u64) -> ActivePlace {
        ActivePlace {
            place: PlaceId::new(format!("p{secs}")),
            holder,
            expires_in: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_full_refusal_names_every_run_and_what_to_do() {
        let refusal = Refusal {
            limit: 5,
            active: vec![
                place(
                    Holder::Run {
                        run: RunRef::new(FORGE, "f1"),
                    },
                    100,
                ),
                place(
                    Holder::Run {
                        run: RunRef::new(WORKFLOW, "w1").with_parent("wf"),
                    },
                    50,
                ),
                place(Holder::Starting, 9),
                place(Holder::Unknown, 1700),
                place(
                    Holder::Run {
                        run: RunRef::new(FORGE, "f2"),
                    },
                    70,
                ),
            ],
            retry_after: Duration::from_millis(9_100),
        };
        let error = runs_full(&refusal, None);
        assert_eq!(error.code, Code::RateLimited);
        assert_eq!(error.retry_after, Some(Duration::from_secs(10)));
        for needle in [
            "forge run f1",
            "workflow run w1 (workflow wf)",
            "forge run f2",
            "1 more is being started",
            "1 more comes from an execute whose outcome is unknown",
            "1700 seconds",
            "retry after 10 seconds",
            "get_forge_run / get_workflow_run",
            "cancel_workflow_run",
        ] {
            assert!(
                error.message.contains(needle),
                "{needle}: {}",
                error.message
            );
        }
        let structured = error.to_structured();
        assert_eq!(structured["status"], 429);
        assert_eq!(structured["retry_after_seconds"], 10);
        let told = runs_full(&refusal, Some(Duration::from_secs(3)));
        assert!(
            told.message.contains("retry after 3 seconds"),
            "{}",
            told.message
        );
        let runs = structured["active_runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[1]["kind"], "workflow");
        assert_eq!(runs[1]["workflow_id"], "wf");
        assert_eq!(runs[1]["poll_with"], "get_workflow_run");
        assert_eq!(runs[0]["poll_with"], "get_forge_run");
        assert!(runs[0].get("workflow_id").is_none());
    }
}
