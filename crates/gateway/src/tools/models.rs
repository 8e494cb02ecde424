//! `get_model_recommendations`, `list_models`, `get_model`.

use layer_api::{ListModelsQuery, Modality, ModelId, ModelSummary, PageLimit, WorkspaceId};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use super::schema::{
    array, enumeration, integer, nullable, object, open_object, pagination_properties, string,
    string_max, uuid,
};
use super::workspaces::{cursor, page_limit};
use super::{Args, Behaviour, ToolContext, ToolSpec, success, to_json};
use crate::errors::{Subject, ToolError};
use crate::upstream::{CallKind, Outcome};

/// The modalities agents filter by (Layer's enum has more, which no generation model uses).
pub const MODALITIES: [Modality; 4] = [
    Modality::Image,
    Modality::Video,
    Modality::ThreeD,
    Modality::Audio,
];

fn modality_names() -> Vec<&'static str> {
    vec!["image", "video", "three_d", "audio"]
}

fn model_summary_schema() -> Value {
    open_object(
        vec![
            (
                "model_id",
                uuid("Pass as model_id to get_model, estimate_forge_price and execute_forge."),
            ),
            ("name", string("Display name.")),
            ("modality", string("image, video, three_d or audio.")),
            (
                "base_model_id",
                nullable(string("Underlying base model, e.g. flux_2_pro.")),
            ),
            (
                "description",
                nullable(string("What the model is good at.")),
            ),
            (
                "inference_timing",
                string("Typical generation time, e.g. '5-15s'."),
            ),
        ],
        &["model_id", "name", "modality"],
    )
}

/// One curated category.
struct Category {
    modality: Modality,
    use_case: &'static str,
    description: &'static str,
    /// The `capability` filter that defines it, if any.
    capability: Option<&'static str>,
}

const CATEGORIES: &[Category] = &[
    Category {
        modality: Modality::Image,
        use_case: "text_to_image",
        description: "Generate images from a prompt.",
        capability: None,
    },
    Category {
        modality: Modality::Image,
        use_case: "inpainting",
        description: "Edit part of an image through a mask.",
        capability: Some("inpainting"),
    },
    Category {
        modality: Modality::Image,
        use_case: "style_reference",
        description: "Generate in the style of a reference image.",
        capability: Some("style_reference"),
    },
    Category {
        modality: Modality::Video,
        use_case: "text_to_video",
        description: "Generate video clips from a prompt or a first frame.",
        capability: None,
    },
    Category {
        modality: Modality::Video,
        use_case: "lipsync",
        description: "Make a face speak an audio track.",
        capability: Some("lipsync"),
    },
    Category {
        modality: Modality::ThreeD,
        use_case: "text_to_3d",
        description: "Generate 3D models (GLB) from a prompt.",
        capability: Some("text_to_3d"),
    },
    Category {
        modality: Modality::Audio,
        use_case: "audio",
        description: "Generate speech, sound effects or music.",
        capability: None,
    },
];

pub fn specs() -> Vec<ToolSpec> {
    let mut list_props = vec![(
        "models",
        array("The models on this page.", model_summary_schema(), None),
    )];
    list_props.extend(pagination_properties());
    let pick = nullable(model_summary_schema());
    let category = open_object(
        vec![
            ("modality", string("image, video, three_d or audio.")),
            (
                "use_case",
                string("What the pick is for, e.g. text_to_image, inpainting, lipsync."),
            ),
            ("description", string("The use case in words.")),
            ("recommended", pick),
            (
                "alternatives",
                array("Other suitable models.", model_summary_schema(), None),
            ),
        ],
        &[
            "modality",
            "use_case",
            "description",
            "recommended",
            "alternatives",
        ],
    );
    vec![
        ToolSpec {
            name: "get_model_recommendations",
            title: "Recommend models",
            description: "Curated model picks for the common jobs, built from the models this workspace can use: per modality and use case (text to image, inpainting, style reference, text to video, lipsync, text to 3D, audio) one recommended model and a few alternatives. The quickest way to choose a model_id; use list_models to browse everything. A category with no suitable model has recommended null.".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace, from list_workspaces.")),
                    ("modality", enumeration("Only this modality's categories.", modality_names())),
                ],
                &["workspace_id"],
            ),
            output: open_object(
                vec![
                    ("workspace_id", uuid("The workspace.")),
                    ("categories", array("One entry per use case.", category, None)),
                ],
                &["workspace_id", "categories"],
            ),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "list_models",
            title: "List models",
            description: "Lists the models (and trained styles) a workspace can run, with modality, description and typical generation time. Filter by modality, by capabilities (every one must match; e.g. inpainting, style_reference, text_to_3d, lipsync) and by text. Call get_model for a model's capabilities and prompt format before running it. Paginated: pass next_cursor back as cursor.".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace, from list_workspaces.")),
                    ("modality", enumeration("Only models of this modality.", modality_names())),
                    (
                        "capabilities",
                        array(
                            "Only models with all these capabilities, e.g. [\"inpainting\"], [\"style_reference\"], [\"text_to_3d\"], [\"lipsync\"].",
                            string("A capability name."),
                            Some(10),
                        ),
                    ),
                    ("search", string_max("Text to match in names and descriptions.", 200)),
                    ("limit", integer("Models per page.", 1, Some(100), Some(20))),
                    ("cursor", string("next_cursor from the previous page.")),
                ],
                &["workspace_id"],
            ),
            output: open_object(list_props, &["models", "has_more_results"]),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "get_model",
            title: "Get a model",
            description: "Returns one model with everything needed to run it: capabilities (which guidance file types it takes, inpainting, supported durations, whether a prompt is required, max prompt length, audio and 3D features) and prompt_format (how to write prompts for it).".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace, from list_workspaces.")),
                    ("model_id", uuid("The model, from list_models or get_model_recommendations.")),
                ],
                &["workspace_id", "model_id"],
            ),
            output: open_object(
                vec![
                    ("model_id", uuid("The model.")),
                    ("name", string("Display name.")),
                    ("modality", string("image, video, three_d or audio.")),
                    ("base_model_id", nullable(string("Underlying base model."))),
                    ("base_model_name", nullable(string("Its name."))),
                    ("description", nullable(string("What it is good at."))),
                    ("inference_timing", string("Typical generation time.")),
                    ("capabilities", json!({"type": "object", "description": "What the model supports; see get_forge_instructions."})),
                    ("prompt_format", nullable(string("How to write prompts for this model."))),
                ],
                &["model_id", "name", "modality", "capabilities"],
            ),
            behaviour: Behaviour::ReadOnly,
        },
    ]
}

fn parse_modality(args: &Args) -> Result<Option<Modality>, ToolError> {
    args.opt_enum("modality", &MODALITIES, Modality::as_str)
}

pub async fn list_models(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let query = ListModelsQuery {
        modality: parse_modality(&args)?,
        capabilities: args.opt_strings("capabilities", 10)?.unwrap_or_default(),
        search: args.opt_string("search", 200)?,
        limit: page_limit(&args)?,
        cursor: cursor(&args)?,
    };
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let result = admission.client().list_models(workspace, &query).await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let page = result.map_err(|e| ToolError::from_layer(&e, Subject::Workspace))?;
    let structured = json!({
        "models": to_json(&page.items)?,
        "next_cursor": page.next_cursor().map(|c| c.as_str().to_owned()),
        "has_more_results": page.pagination.has_more_results,
        "total_count": page.pagination.total_count,
    });
    Ok(success(structured, vec![]))
}

pub async fn get_model(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let model: ModelId = args.id("model_id")?;
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let result = admission.client().get_model(workspace, model).await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let detail = result.map_err(|e| ToolError::from_layer(&e, Subject::Model))?;
    Ok(success(to_json(&detail)?, vec![]))
}

pub async fn get_model_recommendations(
    ctx: &ToolContext,
    args: Args,
) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let only = parse_modality(&args)?;
    let categories: Vec<&Category> = CATEGORIES
        .iter()
        .filter(|c| only.as_ref().is_none_or(|m| *m == c.modality))
        .collect();
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let client = admission.client();
    // One small listing per category, concurrently: Layer's capability filter does the
    // matching, and its order (featured first) is the ranking.
    let lookups = categories.iter().map(|category| {
        let query = ListModelsQuery {
            modality: Some(category.modality.clone()),
            capabilities: category
                .capability
                .map(|c| vec![c.to_owned()])
                .unwrap_or_default(),
            search: None,
            limit: PageLimit::new(4).ok(),
            cursor: None,
        };
        let client = client.clone();
        async move { client.list_models(workspace, &query).await }
    });
    let results = futures::future::join_all(lookups).await;
    let mut out = Vec::new();
    let mut failure = None;
    for (category, result) in categories.iter().zip(results) {
        match result {
            Ok(page) => out.push(category_entry(category, &page.items)?),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failure {
        admission.settle(Outcome::Failed);
        return Err(ToolError::from_layer(&e, Subject::Workspace));
    }
    admission.settle(Outcome::Done);
    Ok(success(
        json!({"workspace_id": workspace.to_string(), "categories": out}),
        vec![],
    ))
}

fn category_entry(category: &Category, models: &[ModelSummary]) -> Result<Value, ToolError> {
    let recommended = models.first().map(to_json).transpose()?;
    let alternatives = models
        .iter()
        .skip(1)
        .map(to_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "modality": category.modality.as_str(),
        "use_case": category.use_case,
        "description": category.description,
        "recommended": recommended,
        "alternatives": alternatives,
    }))
}

/// For tests: the categories' names.
pub fn category_names() -> Vec<&'static str> {
    CATEGORIES.iter().map(|c| c.use_case).collect()
}
