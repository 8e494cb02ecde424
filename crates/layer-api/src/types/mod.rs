//! Request and response bodies, following models.py field by field. Unknown fields in
//! responses are ignored; optional fields are `Option`.

pub mod files;
pub mod inferences;
pub mod models;
pub mod workflows;
pub mod workspaces;

use serde::{Deserialize, Deserializer};

/// Reads `null` or a missing value as the type's default (models.py's `list | None = []`).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A timestamp with its offset, as the API sends them (`AwareDatetime`), normalised to UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The estimate fields shared by forge and workflow estimates.
#[derive(Clone, PartialEq, Debug, serde::Serialize, Deserialize)]
pub struct PriceEstimate {
    /// Total estimated Creative Units for the run.
    pub estimated_price_creative_units: f64,
    /// Usable balance: total minus what in-progress runs have reserved.
    pub workspace_balance_creative_units: f64,
    /// Usable balance after the estimate. Can be negative.
    pub estimated_remaining_balance_creative_units: f64,
    /// Whether the usable balance covers the estimate.
    pub has_sufficient_creative_units: bool,
}
