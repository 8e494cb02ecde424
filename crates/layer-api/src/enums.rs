//! The enums of models.py, tolerant of values added later (see `wire_enum`).
//!
//! Generated from `layer/_api/models.py` (layer CLI 1.0.77); the status enums add behaviour below.

use crate::wire_enum::wire_enum;

wire_enum! {
    /// Status of a forge run (inference).
    InferenceStatus {
        InProgress = "in_progress",
        Complete = "complete",
        Failed = "failed",
        Cancelled = "cancelled",
        Deleted = "deleted",
    }
}

wire_enum! {
    /// Status of a workflow run or of one of its steps (`BlueprintRunStatus`).
    WorkflowRunStatus {
        Pending = "pending",
        Running = "running",
        Success = "success",
        Failure = "failure",
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// What a model or workflow produces.
    Modality {
        Text = "text",
        Image = "image",
        Audio = "audio",
        Video = "video",
        ThreeD = "three_d",
        Playable = "playable",
        World = "world",
    }
}

wire_enum! {
    /// What a guidance file is, and the slot it fills.
    GuidanceFileType {
        InitImage = "init_image",
        ReferenceImage = "reference_image",
        Scribble = "scribble",
        ColorSketch = "color_sketch",
        Pose = "pose",
        Depth = "depth",
        Canny = "canny",
        SoftedgeHed = "softedge_hed",
        Segmentation = "segmentation",
        Lineart = "lineart",
        Face = "face",
        IpAdapter = "ip_adapter",
        FirstFrame = "first_frame",
        LastFrame = "last_frame",
        InitVideo = "init_video",
        ReferenceVideo = "reference_video",
        DraftVideo = "draft_video",
        InitMesh = "init_mesh",
        TextureImage = "texture_image",
        DraftMesh = "draft_mesh",
        ElementFrontalImage = "element_frontal_image",
        ElementReferenceImage = "element_reference_image",
        ElementVideo = "element_video",
        DraftWorld = "draft_world",
        InitAudio = "init_audio",
        ReferenceAudio = "reference_audio",
    }
}

wire_enum! {
    /// Where an uploaded file comes from (`source_type`).
    FileSourceType {
        Pose = "pose",
        Reference = "reference",
        Mask = "mask",
        Composite = "composite",
        GoogleDrive = "google_drive",
        Miro = "miro",
        TransformedReference = "transformed_reference",
        SkillResource = "skill_resource",
        SkillBundle = "skill_bundle",
    }
}

wire_enum! {
    /// Kind of library object a workflow output is.
    LibraryObjectType {
        Directory = "directory",
        File = "file",
        Asset = "asset",
        Style = "style",
        Blueprint = "blueprint",
        Skill = "skill",
    }
}

wire_enum! {
    /// Why a generation was refused.
    RefusalCode {
        InputGuardrailViolation = "INPUT_GUARDRAIL_VIOLATION",
        ContentPolicyViolation = "CONTENT_POLICY_VIOLATION",
        PromptIntellectualProperty = "PROMPT_INTELLECTUAL_PROPERTY",
        NoMediaGenerated = "NO_MEDIA_GENERATED",
    }
}

wire_enum! {
    /// What kind of guardrail refused a generation.
    GuardrailCategory {
        CopyrightInfringement = "copyright_infringement",
        IpTrademarkInfringement = "ip_trademark_infringement",
        ArtistStyleMimicry = "artist_style_mimicry",
        Custom = "custom",
    }
}

wire_enum! {
    /// Quality level.
    Quality {
        Low = "low",
        Medium = "medium",
        High = "high",
    }
}

wire_enum! {
    /// Container of a delivered audio file.
    AudioOutputFormat {
        Mp3 = "mp3",
        Wav = "wav",
        Aac = "aac",
        Flac = "flac",
    }
}

wire_enum! {
    /// Rest pose of a character mesh.
    PoseMode {
        APose = "A_POSE",
        TPose = "T_POSE",
    }
}

wire_enum! {
    /// Edge length of a mesh's base colour texture.
    TextureResolution {
        Res2k = "RES_2K",
        Res4k = "RES_4K",
        Res8k = "RES_8K",
    }
}

wire_enum! {
    /// Adaptive face count of a mesh.
    MeshDensity {
        Ultra = "ULTRA",
        High = "HIGH",
        Medium = "MEDIUM",
        Low = "LOW",
    }
}

wire_enum! {
    /// What a mesh is split along.
    SegmentBy {
        Auto = "AUTO",
        Parts = "PARTS",
    }
}

wire_enum! {
    /// What a mesh split treats the mesh as.
    SegmentTarget {
        Character = "CHARACTER",
        General = "GENERAL",
    }
}

wire_enum! {
    /// How finely a general mesh split cuts.
    SegmentLevel {
        Low = "LOW",
        Medium = "MEDIUM",
        High = "HIGH",
    }
}

wire_enum! {
    /// Where captions sit vertically.
    SubtitleAlignment {
        Top = "top",
        Center = "center",
        Bottom = "bottom",
    }
}

wire_enum! {
    /// The view a source image shows, for multi-view 3D models.
    MultiViewSlot {
        Front = "FRONT",
        Left = "LEFT",
        Back = "BACK",
        Right = "RIGHT",
    }
}

wire_enum! {
    /// A video effect (camera move, action…); support varies per model.
    VideoEffectType {
        General = "general",
        Orbit360 = "orbit_360",
        ActionRun = "action_run",
        AgentReveal = "agent_reveal",
        Arc = "arc",
        ArcLeft = "arc_left",
        BaseballKick = "baseball_kick",
        BasketballDunks = "basketball_dunks",
        Boxing = "boxing",
        BuckleUp = "buckle_up",
        BuildingExplosion = "building_explosion",
        BulletTime = "bullet_time",
        CarChasing = "car_chasing",
        CarExplosion = "car_explosion",
        CarGrip = "car_grip",
        Catch = "catch",
        Catwalk = "catwalk",
        CraneDown = "crane_down",
        CraneOverTheHead = "crane_over_the_head",
        CraneUp = "crane_up",
        CrashZoomIn = "crash_zoom_in",
        CrashZoomOut = "crash_zoom_out",
        DirtyLens = "dirty_lens",
        Disintegration = "disintegration",
        DollyIn = "dolly_in",
        DollyLeft = "dolly_left",
        DollyOut = "dolly_out",
        DollyRight = "dolly_right",
        DollyZoomIn = "dolly_zoom_in",
        DollyZoomOut = "dolly_zoom_out",
        DoubleDolly = "double_dolly",
        DownhillPov = "downhill_pov",
        DutchAngle = "dutch_angle",
        EyesIn = "eyes_in",
        FacePunch = "face_punch",
        Fisheye = "fisheye",
        Flying = "flying",
        FocusChange = "focus_change",
        FpvDrone = "fpv_drone",
        Glam = "glam",
        Handheld = "handheld",
        HeadTracking = "head_tracking",
        Hyperlapse = "hyperlapse",
        Invisible = "invisible",
        JibDown = "jib_down",
        JibUp = "jib_up",
        Kiss = "kiss",
        LazySusan = "lazy_susan",
        LensCrack = "lens_crack",
        LensFlare = "lens_flare",
        Levitation = "levitation",
        LowShutter = "low_shutter",
        Melting = "melting",
        MoonwalkLeft = "moonwalk_left",
        MoonwalkRight = "moonwalk_right",
        MouthIn = "mouth_in",
        ObjectPov = "object_pov",
        Overhead = "overhead",
        PushToGlass = "push_to_glass",
        RapFlex = "rap_flex",
        RoboArm = "robo_arm",
        SetOnFire = "set_on_fire",
        SkateboardGlide = "skateboard_glide",
        Skateboarding = "skateboarding",
        SkateboardKickflip = "skateboard_kickflip",
        SkateboardOllie = "skateboard_ollie",
        SkateCruise = "skate_cruise",
        SkiCarving = "ski_carving",
        SkiPowder = "ski_powder",
        Snorricam = "snorricam",
        SnowboardCarving = "snowboard_carving",
        SnowboardPowder = "snowboard_powder",
        SoulJump = "soul_jump",
        Static = "static",
        SuperDollyIn = "super_dolly_in",
        SuperDollyOut = "super_dolly_out",
        Tentacles = "tentacles",
        ThroughObjectIn = "through_object_in",
        ThroughObjectOut = "through_object_out",
        ThunderGod = "thunder_god",
        TiltDown = "tilt_down",
        TiltUp = "tilt_up",
        TimelapseHuman = "timelapse_human",
        TimelapseLandscape = "timelapse_landscape",
        TurningMetal = "turning_metal",
        WhipPan = "whip_pan",
        Wiggle = "wiggle",
        WindToFace = "wind_to_face",
        YoyoZoom = "yoyo_zoom",
        ZoomIn = "zoom_in",
        ZoomOut = "zoom_out",
    }
}

wire_enum! {
    /// A terminal event the API can deliver to a webhook.
    WebhookEventType {
        InferenceCompleted = "inference.completed",
        InferenceFailed = "inference.failed",
        InferenceCancelled = "inference.cancelled",
        TrainingSucceeded = "training.succeeded",
        TrainingFailed = "training.failed",
        ScoringRunCompleted = "scoring_run.completed",
        ScoringRunFailed = "scoring_run.failed",
        WorkflowRunSucceeded = "workflow_run.succeeded",
        WorkflowRunFailed = "workflow_run.failed",
        WorkflowRunCancelled = "workflow_run.cancelled",
    }
}

wire_enum! {
    /// How a webhook delivery went.
    WebhookDeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
    }
}

wire_enum! {
    /// Shape of an image annotation.
    ImageAnnotationKind {
        Box = "BOX",
        Ellipse = "ELLIPSE",
        Arrow = "ARROW",
        Freehand = "FREEHAND",
        Pin = "PIN",
    }
}

wire_enum! {
    /// What an image annotation asks for.
    ImageAnnotationIntent {
        Edit = "EDIT",
        Remove = "REMOVE",
        Move = "MOVE",
    }
}

impl InferenceStatus {
    /// Whether the run has stopped changing: `complete`, `failed`, `cancelled` or `deleted`.
    ///
    /// An unknown status counts as not terminal: a poller keeps asking (bounded by its own
    /// deadline) rather than reporting a run as finished when it may not be.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Complete | Self::Failed | Self::Cancelled | Self::Deleted
        )
    }

    /// Whether the run finished with outputs.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Complete)
    }
}

impl WorkflowRunStatus {
    /// Whether the run has stopped changing: `success`, `failure` or `cancelled`.
    ///
    /// An unknown status counts as not terminal, as for [`InferenceStatus::is_terminal`].
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Cancelled)
    }

    /// Whether the run finished with outputs.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_case_insensitively() {
        let upper: InferenceStatus = serde_json::from_str("\"IN_PROGRESS\"").unwrap();
        assert_eq!(upper, InferenceStatus::InProgress);
        assert!(!upper.is_terminal());
        let done: InferenceStatus = "Complete".parse().unwrap();
        assert!(done.is_terminal() && done.is_success());
        assert_eq!(serde_json::to_string(&done).unwrap(), "\"complete\"");
        let run: WorkflowRunStatus = serde_json::from_str("\"FAILURE\"").unwrap();
        assert!(run.is_terminal() && !run.is_success());
    }

    #[test]
    fn unknown_values_are_kept_not_refused() {
        let queued: InferenceStatus = serde_json::from_str("\"queued\"").unwrap();
        assert_eq!(queued, InferenceStatus::Unknown("queued".into()));
        assert!(!queued.is_terminal());
        assert_eq!(serde_json::to_string(&queued).unwrap(), "\"queued\"");
        let modality: Modality = serde_json::from_str("\"hologram\"").unwrap();
        assert!(!modality.is_known());
        assert_eq!(Modality::parse_lenient("THREE_D"), Modality::ThreeD);
        assert_eq!(
            TextureResolution::parse_lenient("res_8k"),
            TextureResolution::Res8k
        );
        assert_eq!(TextureResolution::Res8k.as_str(), "RES_8K");
    }
}
