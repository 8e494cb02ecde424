//! `upload_file`'s downloader: the SSRF-guarded `safe-fetch` crate under the configured
//! limits and operator allow-list.

use std::sync::Arc;

use safe_fetch::{FetchPolicy, SafeFetcher};

use crate::config::Config;
use crate::tools::{FetchError, FetchedFile, FileFetcher};

/// A [`FileFetcher`] over [`SafeFetcher`].
pub struct GuardedFetcher(SafeFetcher);

/// The fetch policy the configuration describes.
pub fn policy_from_config(config: &Config) -> anyhow::Result<FetchPolicy> {
    let mut policy = FetchPolicy::default()
        .max_bytes(config.upload_max_bytes)
        .timeout(config.upload_timeout)
        .max_redirects(config.upload_max_redirects as usize)
        .user_agent(concat!("layer-mcp-gateway/", env!("CARGO_PKG_VERSION")));
    for host in &config.upload_allow_hosts {
        policy = policy
            .allow_host(host)
            .map_err(|e| anyhow::anyhow!("invalid setting `upload_allow_hosts`: {host:?}: {e}"))?;
    }
    Ok(policy)
}

pub fn fetcher_from_config(config: &Config) -> anyhow::Result<Arc<dyn FileFetcher>> {
    Ok(Arc::new(GuardedFetcher(SafeFetcher::new(
        policy_from_config(config)?,
    ))))
}

#[async_trait::async_trait]
impl FileFetcher for GuardedFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedFile, FetchError> {
        match self.0.fetch(url).await {
            Ok(fetched) => {
                let mut final_url = fetched.final_url.clone();
                final_url.set_query(None);
                final_url.set_fragment(None);
                Ok(FetchedFile {
                    sniffed: fetched.sniffed.mime(),
                    sniffed_description: match fetched.sniffed {
                        safe_fetch::SniffedType::Html => "an HTML page".to_owned(),
                        safe_fetch::SniffedType::Unknown => {
                            "a file of an unrecognised type".to_owned()
                        }
                        other => format!("a {other}"),
                    },
                    bytes: fetched.bytes,
                    final_url: final_url.to_string(),
                })
            }
            Err(error) => {
                tracing::info!(%error, "upload_file download refused or failed");
                Err(FetchError(format!("Could not import the URL: {error}.")))
            }
        }
    }
}
