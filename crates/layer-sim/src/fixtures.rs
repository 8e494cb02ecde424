//! Users, workspaces, PATs and OAuth clients: from a file, or the deterministic defaults.

use std::collections::HashSet;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::SimError;

/// The API audience access tokens are issued for unless fixtures say otherwise.
pub const DEFAULT_API_AUDIENCE: &str = "https://api.layer.ai/";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fixtures {
    pub users: Vec<UserFixture>,
    pub workspaces: Vec<WorkspaceFixture>,
    #[serde(default)]
    pub oauth_clients: Vec<OAuthClientFixture>,
    #[serde(default = "default_audience")]
    pub api_audience: String,
}

fn default_audience() -> String {
    DEFAULT_API_AUDIENCE.to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserFixture {
    /// Login name typed into the IdP's form, and the name in printed lines.
    pub login: String,
    /// Stable subject id: the `sub` of every token issued for this user.
    pub subject: String,
    pub name: String,
    pub email: String,
    #[serde(serialize_with = "crate::secret::serialize")]
    pub password: SecretString,
    #[serde(default)]
    pub pats: Vec<PatFixture>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatFixture {
    #[serde(serialize_with = "crate::secret::serialize")]
    pub token: SecretString,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkspaceFixture {
    pub workspace_id: Uuid,
    pub slug: String,
    pub name: String,
    pub balance_creative_units: f64,
    /// Logins of the members.
    pub members: Vec<String>,
    /// Custom models (trained styles) only this workspace sees, by catalogue key.
    #[serde(default)]
    pub custom_models: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OAuthClientFixture {
    pub client_id: String,
    /// `None`: a public client (PKCE only, no client authentication).
    #[serde(default, serialize_with = "crate::secret::serialize_option")]
    pub client_secret: Option<SecretString>,
    pub name: String,
    /// Exact redirect URIs, except that a loopback URI (`127.0.0.1`, `[::1]`, `localhost`)
    /// matches on any port (RFC 8252 section 7.3).
    pub redirect_uris: Vec<String>,
}

impl Fixtures {
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ReadFixtures {
            path: path.to_owned(),
            source,
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let fixtures: Fixtures = if is_toml {
            toml::from_str(&text).map_err(|e| SimError::ParseFixtures {
                path: path.to_owned(),
                format: "TOML",
                message: e.to_string(),
            })?
        } else {
            serde_json::from_str(&text).map_err(|e| SimError::ParseFixtures {
                path: path.to_owned(),
                format: "JSON",
                message: e.to_string(),
            })?
        };
        fixtures.validate()?;
        Ok(fixtures)
    }

    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::InvalidFixtures(m));
        let mut logins = HashSet::new();
        let mut subjects = HashSet::new();
        let mut tokens = HashSet::new();
        for user in &self.users {
            if user.login.is_empty() || !logins.insert(user.login.as_str()) {
                return bad(format!("user login {:?} is empty or repeated", user.login));
            }
            if user.subject.is_empty() || !subjects.insert(user.subject.as_str()) {
                return bad(format!("subject of {} is empty or repeated", user.login));
            }
            for pat in &user.pats {
                if pat.token.expose_secret().is_empty() || !tokens.insert(pat.token.expose_secret())
                {
                    return bad(format!("a PAT of {} is empty or repeated", user.login));
                }
            }
        }
        let mut ids = HashSet::new();
        let mut slugs = HashSet::new();
        for ws in &self.workspaces {
            if !ids.insert(ws.workspace_id) || !slugs.insert(ws.slug.as_str()) {
                return bad(format!("workspace {} is repeated", ws.slug));
            }
            if !ws.balance_creative_units.is_finite() {
                return bad(format!("workspace {} has no finite balance", ws.slug));
            }
            for member in &ws.members {
                if !logins.contains(member.as_str()) {
                    return bad(format!(
                        "workspace {} names unknown member {member}",
                        ws.slug
                    ));
                }
            }
            for key in &ws.custom_models {
                if crate::catalogue::custom_model(key).is_none() {
                    return bad(format!(
                        "workspace {} names unknown custom model {key}",
                        ws.slug
                    ));
                }
            }
        }
        let mut clients = HashSet::new();
        for client in &self.oauth_clients {
            if !clients.insert(client.client_id.as_str()) {
                return bad(format!("OAuth client {} is repeated", client.client_id));
            }
        }
        Ok(())
    }

    pub fn user(&self, login: &str) -> Option<&UserFixture> {
        self.users.iter().find(|u| u.login == login)
    }

    /// The first PAT of `login` that is not revoked.
    pub fn active_pat(&self, login: &str) -> Option<&SecretString> {
        self.user(login)?
            .pats
            .iter()
            .find(|p| !p.revoked)
            .map(|p| &p.token)
    }

    /// The first revoked PAT of `login`.
    pub fn revoked_pat(&self, login: &str) -> Option<&SecretString> {
        self.user(login)?
            .pats
            .iter()
            .find(|p| p.revoked)
            .map(|p| &p.token)
    }

    pub fn workspace(&self, slug: &str) -> Option<&WorkspaceFixture> {
        self.workspaces.iter().find(|w| w.slug == slug)
    }

    pub fn workspace_id(&self, slug: &str) -> Option<Uuid> {
        self.workspace(slug).map(|w| w.workspace_id)
    }

    pub fn oauth_client(&self, client_id: &str) -> Option<&OAuthClientFixture> {
        self.oauth_clients.iter().find(|c| c.client_id == client_id)
    }

    /// The deterministic defaults (documented in the crate README).
    pub fn builtin() -> Self {
        let user =
            |login: &str, subject: &str, name: &str, password: &str, pats: &[(&str, bool)]| {
                UserFixture {
                    login: login.into(),
                    subject: subject.into(),
                    name: name.into(),
                    email: format!("{login}@example.com"),
                    password: SecretString::from(password),
                    pats: pats
                        .iter()
                        .map(|(t, revoked)| PatFixture {
                            token: SecretString::from(*t),
                            revoked: *revoked,
                        })
                        .collect(),
                }
            };
        let loopback = |path: &str| {
            vec![
                format!("http://127.0.0.1{path}"),
                format!("http://localhost{path}"),
                format!("http://[::1]{path}"),
            ]
        };
        let mut gateway_uris = loopback("/oauth/layer/callback");
        gateway_uris.extend(loopback("/callback"));
        Self {
            users: vec![
                user(
                    "alice",
                    "auth0|6650a1ce0000000000000001",
                    "Alice Archer",
                    "alice-sim-password",
                    &[
                        ("layer_pat_sim_alice_4f9c2a7e81d3b605", false),
                        ("layer_pat_sim_alice_revoked_0b7d13e2", true),
                    ],
                ),
                user(
                    "bob",
                    "auth0|6650a1ce0000000000000002",
                    "Bob Builder",
                    "bob-sim-password",
                    &[("layer_pat_sim_bob_9e41c07b2f5a8d36", false)],
                ),
                user(
                    "carol",
                    "auth0|6650a1ce0000000000000003",
                    "Carol Curator",
                    "carol-sim-password",
                    &[("layer_pat_sim_carol_d2a8f6310c7e94b5", false)],
                ),
            ],
            workspaces: vec![
                WorkspaceFixture {
                    workspace_id: uuid_lit(0xa000_0000_0000_4000_8000_0000_0000_0001),
                    slug: "acme-studio".into(),
                    name: "Acme Studio".into(),
                    balance_creative_units: 1000.0,
                    members: vec!["alice".into(), "bob".into()],
                    custom_models: vec!["acme-product-style".into()],
                },
                WorkspaceFixture {
                    workspace_id: uuid_lit(0xa000_0000_0000_4000_8000_0000_0000_0002),
                    slug: "alice-personal".into(),
                    name: "Alice's Workspace".into(),
                    balance_creative_units: 250.0,
                    members: vec!["alice".into()],
                    custom_models: vec![],
                },
                WorkspaceFixture {
                    workspace_id: uuid_lit(0xa000_0000_0000_4000_8000_0000_0000_0003),
                    slug: "bob-sandbox".into(),
                    name: "Bob's Sandbox".into(),
                    balance_creative_units: 3.0,
                    members: vec!["bob".into()],
                    custom_models: vec![],
                },
            ],
            oauth_clients: vec![
                OAuthClientFixture {
                    client_id: "layer-mcp-gateway".into(),
                    client_secret: Some(SecretString::from("sim-gateway-client-secret")),
                    name: "Layer MCP Gateway".into(),
                    redirect_uris: gateway_uris,
                },
                OAuthClientFixture {
                    client_id: "layer-cli".into(),
                    client_secret: None,
                    name: "Layer CLI".into(),
                    redirect_uris: loopback("/callback"),
                },
            ],
            api_audience: default_audience(),
        }
    }
}

const fn uuid_lit(v: u128) -> Uuid {
    Uuid::from_u128(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_valid_and_round_trips_through_json_and_toml() {
        let f = Fixtures::builtin();
        f.validate().unwrap();
        let json = serde_json::to_string(&f).unwrap();
        let back: Fixtures = serde_json::from_str(&json).unwrap();
        assert_eq!(back.users.len(), 3);
        let toml_text = toml::to_string(&f).unwrap();
        let back: Fixtures = toml::from_str(&toml_text).unwrap();
        assert_eq!(back.workspaces[2].balance_creative_units, 3.0);
        assert!(f.revoked_pat("alice").is_some());
    }

    #[test]
    fn unknown_member_is_refused() {
        let mut f = Fixtures::builtin();
        f.workspaces[0].members.push("mallory".into());
        assert!(f.validate().is_err());
    }
}
