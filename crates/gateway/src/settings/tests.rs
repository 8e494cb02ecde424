use secrecy::ExposeSecret;
use std::time::Duration;

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::caps::LimiterStore;
use crate::config::ConfigError;
use crate::config::{DEFAULT_LAYER_API_URL, DEFAULT_LISTEN};
use clap::{Args as _, FromArgMatches as _};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The Host allow-list of a gateway with this public URL.
fn hosts_of(public_url: &str) -> Vec<String> {
    let flags = Flags::default().with("public_url", public_url);
    Config::load(None, &env(&[]), &flags)
        .unwrap()
        .allowed_hosts()
}

/// The error of loading these variables alone, which must be refused.
fn refused(pairs: &[(&str, &str)]) -> ConfigError {
    Config::load(None, &env(pairs), &Flags::default()).unwrap_err()
}

/// What `serve` would make of these flags.
fn flags(args: &[&str]) -> Flags {
    let command = Flags::augment_args(clap::Command::new("serve"));
    let matches = command
        .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))
        .unwrap();
    Flags::from_arg_matches(&matches).unwrap()
}

fn enabled_oauth() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LAYER_MCP_OAUTH_IDP_ISSUER", "https://login.example/"),
        ("LAYER_MCP_OAUTH_IDP_CLIENT_ID", "gw"),
        ("LAYER_MCP_OAUTH_IDP_CLIENT_SECRET", "client-s3cret"),
    ]
}

#[test]
fn the_reference_in_the_operations_guide_is_generated_from_the_definitions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let guide = std::fs::read_to_string(&path).unwrap();
    for component in components() {
        let (begin, end) = (begin_marker(component.name), end_marker(component.name));
        let start = guide
            .find(&begin)
            .unwrap_or_else(|| panic!("docs/operations.md lacks the marker {begin}"));
        let stop = guide[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("docs/operations.md lacks the marker {end}"));
        let found = &guide[start + begin.len()..start + stop];
        assert_eq!(
            found.trim(),
            markdown_table(component).trim(),
            "the `{}` table of docs/operations.md differs from the code: paste the output \
             of `cargo run -p layer-mcp-gateway -- settings --markdown` between its markers",
            component.name
        );
    }
}

#[test]
fn every_setting_has_a_description_and_unique_names() {
    let mut names = std::collections::BTreeSet::new();
    for s in all() {
        assert!(!s.description.is_empty(), "{} has no doc comment", s.key);
        for name in [Some(&s.key), Some(&s.env), s.flag.as_ref()]
            .into_iter()
            .flatten()
            .chain(&s.env_aliases)
            .chain(&s.flag_aliases)
        {
            assert!(names.insert(name.clone()), "{name} is used twice");
        }
    }
    let text = render();
    assert!(text.starts_with("-\t-\t--config\tplain\t-\n"), "{text}");
    assert!(
        text.contains("redis_url\tLAYER_MCP_REDIS_URL\t--redis-url\tsecret\t-\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "oauth_code_ttl_secs\tLAYER_MCP_OAUTH_CODE_TTL_SECS\t--oauth-code-ttl-secs\tplain\tLAYER_MCP_OAUTH_CODE_TTL,--oauth-code-ttl\n"
        ),
        "{text}"
    );
}

#[test]
fn oauth_settings_come_from_every_layer_and_their_old_names_still_work() {
    let file = std::env::temp_dir().join(format!("settings-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        "oauth_idp_client_id = \"from-file\"\noauth_code_ttl_secs = 90\ntrust_forwarded_for = true\n",
    )
    .unwrap();
    let config = load(Some(&file), &env(&[]), &Flags::default());
    let _ = std::fs::remove_file(&file);
    let err = config.unwrap_err();
    assert_eq!(err.setting(), Some("oauth_idp_issuer"), "{err}");

    let mut vars = enabled_oauth();
    vars.extend([
        ("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL", "120"),
        ("LAYER_MCP_OAUTH_REFRESH_TOKEN_TTL", "7200"),
        ("LAYER_MCP_OAUTH_REFRESH_GRACE", "5"),
        ("LAYER_MCP_OAUTH_CODE_TTL", "30"),
        ("LAYER_MCP_OAUTH_REGISTRATIONS_PER_MINUTE", "7"),
        ("LAYER_MCP_TRUST_FORWARDED_FOR", "true"),
        ("LAYER_MCP_STORE", "sqlite://auth.db"),
        ("LAYER_MCP_DATA_DIR", "/tmp/gw"),
    ]);
    let config = load(None, &env(&vars), &Flags::default()).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let oauth = &config.oauth;
    assert!(oauth.enabled());
    assert_eq!(
        (
            oauth.oauth_access_token_ttl_secs,
            oauth.oauth_refresh_token_ttl_secs,
            oauth.oauth_refresh_grace_secs,
            oauth.oauth_code_ttl_secs,
            oauth.oauth_registrations_per_minute,
        ),
        (120, 7200, 5, 30, 7)
    );
    assert!(oauth.trust_forwarded_for);
    assert_eq!(
        oauth.store.as_ref().map(|s| s.expose_secret()),
        Some("sqlite://auth.db")
    );
    assert_eq!(oauth.data_dir, Path::new("/tmp/gw"));
    assert_eq!(
        oauth
            .oauth_idp_client_secret
            .as_ref()
            .map(|s| s.expose_secret()),
        Some("client-s3cret")
    );

    // The current name wins over the old one; a flag (old or new name) over both.
    vars.push(("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL_SECS", "240"));
    let config = load(None, &env(&vars), &Flags::default()).unwrap();
    assert_eq!(config.oauth.oauth_access_token_ttl_secs, 240);
    let given = flags(&[
        "--oauth-access-token-ttl",
        "60",
        "--oauth-code-ttl-secs",
        "10",
    ]);
    let config = load(None, &env(&vars), &given).unwrap();
    assert_eq!(config.oauth.oauth_access_token_ttl_secs, 60);
    assert_eq!(config.oauth.oauth_code_ttl_secs, 10);

    // A bad value under an old name is reported under that name.
    let mut bad = enabled_oauth();
    bad.push(("LAYER_MCP_OAUTH_CODE_TTL", "0"));
    let err = load(None, &env(&bad), &Flags::default()).unwrap_err();
    assert_eq!(err.setting(), Some("oauth_code_ttl_secs"));
    assert!(
        err.to_string().contains("LAYER_MCP_OAUTH_CODE_TTL)"),
        "{err}"
    );
}

#[test]
fn flags_are_built_from_the_definitions() {
    let given = flags(&[
        "--listen",
        "127.0.0.1:4444",
        "--public-url",
        "https://mcp.example.com",
        "--layer-api-url",
        "http://127.0.0.1:9/api/v1",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--limiter",
        "memory",
        "--oauth-idp-issuer",
        "https://login.example/",
        "--oauth-idp-client-id",
        "gw",
        "--oauth-idp-client-secret",
        "s",
        "--oauth-idp-audience",
        "https://api.example/",
        "--oauth-encryption-key",
        &"ab".repeat(32),
        "--store",
        "sqlite://x.db",
        "--data-dir",
        "/tmp/x",
        "--oauth-refresh-token-ttl",
        "100",
        "--oauth-refresh-grace",
        "3",
        "--oauth-registrations-per-minute",
        "4",
        "--trust-forwarded-for",
    ]);
    let config = load(None, &env(&[]), &given).unwrap();
    assert_eq!(config.listen.port(), 4444);
    assert_eq!(config.mcp_url(), "https://mcp.example.com/mcp");
    assert_eq!(config.caps.store, LimiterStore::InProcess);
    assert!(config.redis_url.is_some());
    let oauth = &config.oauth;
    assert_eq!(
        oauth.oauth_idp_audience.as_deref(),
        Some("https://api.example/")
    );
    assert_eq!(
        (
            oauth.oauth_refresh_token_ttl_secs,
            oauth.oauth_refresh_grace_secs
        ),
        (100, 3)
    );
    assert_eq!(oauth.oauth_registrations_per_minute, 4);
    assert!(oauth.trust_forwarded_for);
    // Without the switch, the environment decides.
    let config = load(
        None,
        &env(&[("LAYER_MCP_TRUST_FORWARDED_FOR", "true")]),
        &flags(&[]),
    )
    .unwrap();
    assert!(config.oauth.trust_forwarded_for);
}

#[test]
fn bad_secret_values_are_named_but_never_shown() {
    // Each value hides "hunter2".
    let refused = |vars: &[(&str, &str)], setting: &str| {
        let err = load(None, &env(vars), &Flags::default()).unwrap_err();
        assert_eq!(err.setting(), Some(setting), "{err}");
        let text = err.to_string();
        let variable = format!("LAYER_MCP_{}", setting.to_ascii_uppercase());
        assert!(
            text.contains(&variable) && !text.contains("hunter2"),
            "{text}"
        );
    };
    refused(
        &[("LAYER_MCP_REDIS_URL", "http://user:hunter2@example.com")],
        "redis_url",
    );
    refused(&[("LAYER_MCP_LIMITER", "rediss//:hunter2@x")], "limiter");
    let mut vars = enabled_oauth();
    vars.push(("LAYER_MCP_OAUTH_ENCRYPTION_KEY", "not-a-key-hunter2"));
    refused(&vars, "oauth_encryption_key");
    // A value of the wrong type in the file: named, not shown.
    let file = std::env::temp_dir().join(format!("settings-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, "oauth_idp_client_secret = 31337\n").unwrap();
    let err = load(Some(&file), &env(&[]), &Flags::default()).unwrap_err();
    let _ = std::fs::remove_file(&file);
    assert_eq!(err.setting(), Some("oauth_idp_client_secret"));
    let text = err.to_string();
    assert!(
        text.contains("config file") && !text.contains("31337"),
        "{text}"
    );
    // Plain values are shown, to help.
    let err = load(
        None,
        &env(&[("LAYER_MCP_LISTEN", "nowhere")]),
        &Flags::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"nowhere\""), "{err}");
}

// Loading, as `Config::load` does it.

fn write(contents: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::with_contents(contents)
}

/// A file under the target's temp dir removed on drop, without a dependency for it.
mod tempfile_path {
    use std::path::{Path, PathBuf};
    pub struct TempPath(PathBuf);
    impl TempPath {
        pub fn with_contents(contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("gateway-config-{}.toml", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn defaults_point_at_real_layer_and_loopback() {
    let config = Config::load(None, &env(&[]), &Flags::default()).unwrap();
    assert_eq!(config.layer_api_url.as_str(), DEFAULT_LAYER_API_URL);
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.mcp_url(), "http://127.0.0.1:8080/mcp");
    assert_eq!(
        config.allowed_origins,
        vec!["http://127.0.0.1:8080".to_owned()]
    );
}

#[test]
fn flags_beat_env_beat_file() {
    let file = write(
        "listen = \"127.0.0.1:1111\"\npublic_url = \"https://file.example\"\nmax_sessions_per_user = 3\n",
    );
    let e = env(&[
        ("LAYER_MCP_PUBLIC_URL", "https://env.example"),
        ("LAYER_MCP_LISTEN", "127.0.0.1:2222"),
    ]);
    let flags = Flags::default().with("listen", "127.0.0.1:3333");
    let config = Config::load(Some(file.path()), &e, &flags).unwrap();
    assert_eq!(config.listen.port(), 3333);
    assert_eq!(config.public_url.as_str(), "https://env.example/");
    assert_eq!(config.max_sessions_per_user, 3);
    assert_eq!(config.mcp_url(), "https://env.example/mcp");
    assert_eq!(config.allowed_hosts(), vec!["env.example".to_owned()]);
    assert_eq!(
        config.allowed_origins,
        vec!["https://env.example".to_owned()]
    );
}

#[test]
fn lists_from_file_and_env() {
    let file = write("upload_allow_hosts = [\"127.0.0.1:9\", \"sim.local\"]\n");
    let config = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap();
    assert_eq!(config.upload_allow_hosts, vec!["127.0.0.1:9", "sim.local"]);
    let e = env(&[(
        "LAYER_MCP_ALLOWED_ORIGINS",
        "https://a.example, https://b.example:8443",
    )]);
    let config = Config::load(None, &e, &Flags::default()).unwrap();
    assert_eq!(
        config.allowed_origins,
        vec!["https://a.example", "https://b.example:8443"]
    );
}

#[test]
fn bad_values_name_the_setting_and_the_source() {
    let err = refused(&[("LAYER_MCP_PUBLIC_URL", "ftp://x")]);
    assert_eq!(err.setting(), Some("public_url"));
    let text = err.to_string();
    assert!(
        text.contains("LAYER_MCP_PUBLIC_URL") && text.contains("http or https"),
        "{text}"
    );

    let flags = Flags::default().with("listen", "not-an-address");
    let err = Config::load(None, &env(&[]), &flags).unwrap_err();
    assert_eq!(err.setting(), Some("listen"));
    assert!(err.to_string().contains("--listen"), "{err}");

    let flags = Flags::default().with("public_url", "https://mcp.example.com/mcp");
    let err = Config::load(None, &env(&[]), &flags).unwrap_err();
    assert!(err.to_string().contains("without a path"), "{err}");

    let file = write("max_sessions_per_user = 0\n");
    let err = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap_err();
    assert_eq!(err.setting(), Some("max_sessions_per_user"));
    assert!(err.to_string().contains("config file"), "{err}");

    let file = write("pat_cache_ttl_secs = \"soon\"\n");
    let err = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap_err();
    assert_eq!(err.setting(), Some("pat_cache_ttl_secs"));
}

#[test]
fn unknown_settings_are_refused_in_the_file_and_warned_about_in_the_environment() {
    let config = Config::load(None, &env(&[("LAYER_MCP_LISTNE", "x")]), &Flags::default()).unwrap();
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("LAYER_MCP_LISTNE")
            && config.warnings[0].contains("LAYER_MCP_LISTEN")
    );
    let file = write("lisen = \"x\"\n");
    let err = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap_err();
    assert_eq!(err.setting(), Some("lisen"));
    // Other variables are none of our business.
    assert!(Config::load(None, &env(&[("PATH", "/bin")]), &Flags::default()).is_ok());
}

#[test]
fn unreadable_or_malformed_file() {
    let err = Config::load(
        Some(Path::new("/nonexistent/gateway.toml")),
        &env(&[]),
        &Flags::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }));
    let file = write("listen = [\n");
    assert!(matches!(
        Config::load(Some(file.path()), &env(&[]), &Flags::default()),
        Err(ConfigError::File { .. })
    ));
}

#[test]
fn the_limiter_follows_redis_url_unless_told_otherwise() {
    let config = Config::load(None, &env(&[]), &Flags::default()).unwrap();
    assert_eq!(config.caps.store, LimiterStore::InProcess);
    assert_eq!(config.caps.max_active_runs, 5);
    assert_eq!(config.caps.max_calls_in_flight, 5);

    let shared = env(&[(
        "LAYER_MCP_REDIS_URL",
        "redis://:s3cret@redis.internal:6379/2",
    )]);
    let config = Config::load(None, &shared, &Flags::default()).unwrap();
    let LimiterStore::Redis(url) = &config.caps.store else {
        panic!("{:?}", config.caps.store)
    };
    assert_eq!(url.expose(), "redis://:s3cret@redis.internal:6379/2");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("s3cret") && shown.contains("***"),
        "{shown}"
    );

    let flags = Flags::default().with("limiter", "memory");
    let config = Config::load(None, &shared, &flags).unwrap();
    assert_eq!(config.caps.store, LimiterStore::InProcess);

    let own = env(&[("LAYER_MCP_LIMITER", "redis://127.0.0.1:7777")]);
    let config = Config::load(None, &own, &Flags::default()).unwrap();
    assert!(
        matches!(&config.caps.store, LimiterStore::Redis(u) if u.expose() == "redis://127.0.0.1:7777")
    );

    let err = refused(&[("LAYER_MCP_LIMITER", "redis")]);
    assert_eq!(err.setting(), Some("limiter"));
    assert!(err.to_string().contains("redis_url"), "{err}");
}

#[test]
fn cap_numbers_are_settings_checked_at_start() {
    let file = write(
        "max_active_runs = 2\nmax_calls_in_flight = 3\ncall_queue_wait_secs = 4\nrun_lease_secs = 600\nreservation_lease_secs = 5\ncall_lease_secs = 6\nrun_check_timeout_secs = 7\n",
    );
    let config = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap();
    let caps = &config.caps;
    assert_eq!((caps.max_active_runs, caps.max_calls_in_flight), (2, 3));
    assert_eq!(caps.call_queue_wait, Duration::from_secs(4));
    assert_eq!(caps.run_lease, Duration::from_secs(600));
    assert_eq!(caps.reservation_lease, Duration::from_secs(5));
    assert_eq!(caps.call_lease, Duration::from_secs(6));
    assert_eq!(caps.run_check_timeout, Duration::from_secs(7));

    let err = refused(&[("LAYER_MCP_MAX_ACTIVE_RUNS", "0")]);
    assert_eq!(err.setting(), Some("max_active_runs"));
    assert!(
        err.to_string().contains("LAYER_MCP_MAX_ACTIVE_RUNS"),
        "{err}"
    );

    let err = refused(&[("LAYER_MCP_CALL_LEASE_SECS", "0")]);
    assert_eq!(err.setting(), Some("call_lease_secs"));
}

#[test]
fn a_bad_redis_url_is_refused_without_repeating_it() {
    let flags = Flags::default().with("redis_url", "http://user:hunter2@example.com");
    let err = Config::load(None, &env(&[]), &flags).unwrap_err();
    assert_eq!(err.setting(), Some("redis_url"));
    let text = err.to_string();
    assert!(
        text.contains("--redis-url") && !text.contains("hunter2"),
        "{text}"
    );
    let err = refused(&[("LAYER_MCP_LIMITER", "rediss//:hunter2@x")]);
    assert_eq!(err.setting(), Some("limiter"));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn public_url_with_port_allows_both_host_forms() {
    assert_eq!(
        hosts_of("http://localhost:9000"),
        vec![
            "localhost",
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:9000"
        ]
    );
}

#[test]
fn a_non_loopback_public_url_gets_no_loopback_aliases() {
    assert_eq!(hosts_of("https://mcp.example.com"), vec!["mcp.example.com"]);
    assert_eq!(
        hosts_of("http://127.0.0.1:8080"),
        vec![
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080"
        ]
    );
}
