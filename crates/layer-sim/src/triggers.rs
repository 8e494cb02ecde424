//! Words in a prompt that make a run fail the documented ways, or stay unfinished.

use crate::state::Failure;

/// Keeps a run unfinished until `/_sim/runs/{id}/finish` or a cancel ends it.
pub const HOLD: &str = "SIM_HOLD";

/// Inference failure codes a prompt can trigger: (code, message, refusal?, fails at progress).
pub const INFERENCE_TRIGGERS: &[(&str, &str, bool, f64)] = &[
    (
        "INPUT_GUARDRAIL_VIOLATION",
        "A guardrail of this workspace blocked the request before it reached the provider.",
        true,
        0.1,
    ),
    (
        "CONTENT_POLICY_VIOLATION",
        "The provider refused the request under its content policy.",
        true,
        1.0,
    ),
    (
        "PROMPT_INTELLECTUAL_PROPERTY",
        "The provider refused a prompt naming protected intellectual property.",
        true,
        1.0,
    ),
    (
        "NO_MEDIA_GENERATED",
        "The provider returned no output and no reason.",
        true,
        1.0,
    ),
    (
        "INSUFFICIENT_BALANCE",
        "The workspace ran out of Creative Units. Top up and resubmit.",
        false,
        1.0,
    ),
    (
        "BALANCE_UNAVAILABLE",
        "The balance could not be verified. Retry later.",
        false,
        0.1,
    ),
    (
        "USAGE_LIMIT_EXCEEDED",
        "You are past your usage limit in this workspace: ask a workspace admin for more, or wait for it to reset.",
        false,
        0.1,
    ),
];

/// The first failure trigger in `text`, and where in the run it strikes.
pub fn inference_failure(text: &str) -> Option<(Failure, f64)> {
    INFERENCE_TRIGGERS
        .iter()
        .find(|(code, ..)| text.contains(code))
        .map(|(code, message, refusal, at)| {
            (
                Failure {
                    code: (*code).to_owned(),
                    message: (*message).to_owned(),
                    refusal: refusal.then(|| (*code).to_owned()),
                },
                *at,
            )
        })
}

/// The workflow failure the same triggers cause: a refusal stops the run with
/// `BlueprintInvalidRuntimeValueError`; balance problems have their own Blueprint codes.
pub fn workflow_failure(text: &str, step: &str) -> Option<(Failure, f64)> {
    let (inner, at) = inference_failure(text)?;
    let failure = match inner.code.as_str() {
        "INSUFFICIENT_BALANCE" => Failure {
            code: "BlueprintInsufficientBalanceError".into(),
            message: inner.message,
            refusal: None,
        },
        "BALANCE_UNAVAILABLE" => Failure {
            code: "BlueprintBalanceUnavailableError".into(),
            message: inner.message,
            refusal: None,
        },
        "USAGE_LIMIT_EXCEEDED" => Failure {
            code: "BlueprintUsageLimitExceededError".into(),
            message: inner.message,
            refusal: None,
        },
        code => Failure {
            code: "BlueprintInvalidRuntimeValueError".into(),
            message: format!("Step '{step}' stopped: its generation was refused ({code})."),
            refusal: Some(code.to_owned()),
        },
    };
    Some((failure, at.max(0.4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_map_to_codes() {
        let (f, _) = inference_failure("a cat CONTENT_POLICY_VIOLATION").unwrap();
        assert_eq!(f.code, "CONTENT_POLICY_VIOLATION");
        assert!(inference_failure("a cat").is_none());
        let (f, _) = workflow_failure("NO_MEDIA_GENERATED", "Generate").unwrap();
        assert_eq!(f.code, "BlueprintInvalidRuntimeValueError");
        assert_eq!(f.refusal.as_deref(), Some("NO_MEDIA_GENERATED"));
    }
}
