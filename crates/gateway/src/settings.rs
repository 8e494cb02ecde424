//! Every setting `serve` knows, as data: the TOML keys and `LAYER_MCP_*` variables of
//! [`crate::config`], the OAuth flags of `auth-server` (read by clap with their own
//! variables), and the flags. `layer-mcp-gateway settings` prints them, so the deployment
//! tests can check the manifests and `docs/operations.md` against the code instead of a copy.

use std::fmt::Write as _;

use crate::config::{ENV_PREFIX, KEYS, SECRET_KEYS};

/// One setting and the names it goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its key in the TOML file, when the file accepts it.
    pub toml_key: Option<String>,
    /// Its environment variable, when it has one.
    pub env: Option<String>,
    /// Its `serve` flag (`--name`), when it has one.
    pub flag: Option<String>,
    /// Whether its value may be a credential (it belongs in a Secret, never in a ConfigMap).
    pub secret: bool,
}

/// Every setting of `serve`, whose clap command is `serve`: first the keys of the gateway's
/// own loader (file and environment; a flag where `serve` has one of the same name), then
/// every other flag of `serve`.
pub fn list(serve: &clap::Command) -> Vec<Setting> {
    let flag_of = |name: &str| {
        serve
            .get_arguments()
            .find(|arg| arg.get_long() == Some(name))
            .map(|arg| format!("--{}", arg.get_long().unwrap_or(name)))
    };
    let mut settings: Vec<Setting> = KEYS
        .iter()
        .map(|key| Setting {
            toml_key: Some((*key).to_owned()),
            env: Some(format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())),
            flag: flag_of(&key.replace('_', "-")),
            secret: SECRET_KEYS.contains(key),
        })
        .collect();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") || KEYS.contains(&long.replace('-', "_").as_str()) {
            continue;
        }
        settings.push(Setting {
            toml_key: None,
            env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            flag: Some(format!("--{long}")),
            secret: arg.is_hide_env_values_set(),
        });
    }
    settings
}

/// One line per setting: TOML key, variable, flag, `secret` or `plain`, tab-separated, `-`
/// where a setting has no such name.
pub fn render(settings: &[Setting]) -> String {
    let mut out = String::new();
    for s in settings {
        let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}",
            name(&s.toml_key),
            name(&s.env),
            name(&s.flag),
            if s.secret { "secret" } else { "plain" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    #[test]
    fn keys_get_their_variable_and_same_named_flag_and_other_flags_follow() {
        let serve = Command::new("serve")
            .arg(Arg::new("listen").long("listen"))
            .arg(Arg::new("config").long("config"))
            .arg(
                Arg::new("secret")
                    .long("oauth-idp-client-secret")
                    .env("LAYER_MCP_OAUTH_IDP_CLIENT_SECRET")
                    .hide_env_values(true),
            )
            .arg(Arg::new("flag").long("trust").action(ArgAction::SetTrue));
        let settings = list(&serve);
        assert_eq!(settings.len(), KEYS.len() + 3);
        let listen = &settings[0];
        assert_eq!(listen.toml_key.as_deref(), Some("listen"));
        assert_eq!(listen.env.as_deref(), Some("LAYER_MCP_LISTEN"));
        assert_eq!(listen.flag.as_deref(), Some("--listen"));
        let redis = settings
            .iter()
            .find(|s| s.toml_key.as_deref() == Some("redis_url"))
            .unwrap();
        assert!(redis.secret && redis.flag.is_none());
        let text = render(&settings);
        assert!(text.contains("-\t-\t--config\tplain\n"), "{text}");
        assert!(
            text.contains(
                "-\tLAYER_MCP_OAUTH_IDP_CLIENT_SECRET\t--oauth-idp-client-secret\tsecret\n"
            ),
            "{text}"
        );
    }
}
