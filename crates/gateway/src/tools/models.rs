//! `get_model_recommendations`, `list_models`, `get_model`.

use layer_api::{ListModelsQuery, Modality, ModelId, ModelSummary, PageLimit, WorkspaceId};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{self, cursor, integer, non_blank, page_limit};
use super::schema::{array, nullable, open_object, pagination_properties, string, uuid};
use super::{Behaviour, Tool, ToolContext, ToolResult, page, success, to_json};
use crate::errors::{Subject, ToolError};
use crate::upstream::CallKind;

/// The modalities agents filter by (Layer's enum has more, which no generation model uses).
pub const MODALITIES: [Modality; 4] = [
    Modality::Image,
    Modality::Video,
    Modality::ThreeD,
    Modality::Audio,
];

fn modality(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = MODALITIES.iter().map(Modality::as_str).collect();
    json_schema!({"type": "string", "enum": names})
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

fn category_schema() -> Value {
    open_object(
        vec![
            ("modality", string("image, video, three_d or audio.")),
            (
                "use_case",
                string("What the pick is for, e.g. text_to_image, inpainting, lipsync."),
            ),
            ("description", string("The use case in words.")),
            ("recommended", nullable(model_summary_schema())),
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
    )
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetModelRecommendations {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// Only this modality's categories.
    #[serde(default)]
    #[schemars(schema_with = "modality")]
    modality: Option<Modality>,
}

impl Tool for GetModelRecommendations {
    const NAME: &'static str = "get_model_recommendations";
    const TITLE: &'static str = "Recommend models";
    const DESCRIPTION: &'static str = "Curated model picks for the common jobs, built from the models this workspace can use: per modality and use case (text to image, inpainting, style reference, text to video, lipsync, text to 3D, audio) one recommended model and a few alternatives. The quickest way to choose a model_id; use list_models to browse everything. A category with no suitable model has recommended null.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        open_object(
            vec![
                ("workspace_id", uuid("The workspace.")),
                (
                    "categories",
                    array("One entry per use case.", category_schema(), None),
                ),
            ],
            &["workspace_id", "categories"],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.workspace_id;
        let only = self.modality;
        let categories: Vec<&Category> = CATEGORIES
            .iter()
            .filter(|c| only.as_ref().is_none_or(|m| *m == c.modality))
            .collect();
        // One small listing per category, concurrently: Layer's capability filter does the
        // matching, and its order (featured first) is the ranking.
        let pages = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Workspace,
                |layer| {
                    let lookups: Vec<_> = categories
                        .iter()
                        .map(|category| {
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
                            let layer = layer.clone();
                            async move { layer.list_models(workspace, &query).await }
                        })
                        .collect();
                    async move {
                        futures::future::join_all(lookups)
                            .await
                            .into_iter()
                            .collect::<Result<Vec<_>, _>>()
                    }
                },
            )
            .await?;
        let out = categories
            .iter()
            .zip(pages)
            .map(|(category, page)| category_entry(category, &page.items))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(success(
            json!({"workspace_id": workspace.to_string(), "categories": out}),
            vec![],
        ))
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListModels {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// Only models of this modality.
    #[serde(default)]
    #[schemars(schema_with = "modality")]
    modality: Option<Modality>,
    /// Only models with all these capabilities, e.g. ["inpainting"], ["style_reference"], ["text_to_3d"], ["lipsync"].
    #[serde(default)]
    #[schemars(length(max = 10), extend("items" = {"type": "string", "description": "A capability name."}))]
    capabilities: Option<Vec<String>>,
    /// Text to match in names and descriptions.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 200))]
    search: Option<String>,
    /// Models per page.
    #[serde(default, deserialize_with = "integer")]
    #[schemars(range(min = 1, max = 100), extend("default" = 20))]
    limit: Option<i64>,
    /// next_cursor from the previous page.
    #[serde(default, deserialize_with = "non_blank")]
    cursor: Option<String>,
}

impl Tool for ListModels {
    const NAME: &'static str = "list_models";
    const TITLE: &'static str = "List models";
    const DESCRIPTION: &'static str = "Lists the models (and trained styles) a workspace can run, with modality, description and typical generation time. Filter by modality, by capabilities (every one must match; e.g. inpainting, style_reference, text_to_3d, lipsync) and by text. Call get_model for a model's capabilities and prompt format before running it. Paginated: pass next_cursor back as cursor.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        let mut props = vec![(
            "models",
            array("The models on this page.", model_summary_schema(), None),
        )];
        props.extend(pagination_properties());
        open_object(props, &["models", "has_more_results"])
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.workspace_id;
        let query = ListModelsQuery {
            modality: self.modality,
            capabilities: self.capabilities.unwrap_or_default(),
            search: self.search,
            limit: page_limit(self.limit)?,
            cursor: cursor(self.cursor)?,
        };
        let listed = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Workspace,
                |layer| async move { layer.list_models(workspace, &query).await },
            )
            .await?;
        Ok(success(page("models", &listed)?, vec![]))
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetModel {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// The model, from list_models or get_model_recommendations.
    #[schemars(schema_with = "args::uuid")]
    model_id: ModelId,
}

impl Tool for GetModel {
    const NAME: &'static str = "get_model";
    const TITLE: &'static str = "Get a model";
    const DESCRIPTION: &'static str = "Returns one model with everything needed to run it: capabilities (which guidance file types it takes, inpainting, supported durations, whether a prompt is required, max prompt length, audio and 3D features) and prompt_format (how to write prompts for it).";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        open_object(
            vec![
                ("model_id", uuid("The model.")),
                ("name", string("Display name.")),
                ("modality", string("image, video, three_d or audio.")),
                ("base_model_id", nullable(string("Underlying base model."))),
                ("base_model_name", nullable(string("Its name."))),
                ("description", nullable(string("What it is good at."))),
                ("inference_timing", string("Typical generation time.")),
                (
                    "capabilities",
                    json!({"type": "object", "description": "What the model supports; see get_forge_instructions."}),
                ),
                (
                    "prompt_format",
                    nullable(string("How to write prompts for this model.")),
                ),
            ],
            &["model_id", "name", "modality", "capabilities"],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let (workspace, model) = (self.workspace_id, self.model_id);
        let detail = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Model,
                |layer| async move { layer.get_model(workspace, model).await },
            )
            .await?;
        Ok(success(to_json(&detail)?, vec![]))
    }
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
