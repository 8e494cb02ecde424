//! The lists printed from the definitions: `settings` (read by the deployment tests) and
//! `settings --markdown` (the reference tables of `docs/operations.md`).

use std::fmt::Write as _;

use super::{Component, all, components};

/// The `--config` flag, which is no setting but names the file they are read from.
const CONFIG_FLAG: &str = "--config";

/// One line per setting (after `--config`): TOML key, variable, flag, `secret` or `plain`,
/// then the older names that still work (comma-separated), tab-separated, `-` where there is
/// none. The deployment tests read it.
pub fn render() -> String {
    let mut out = format!("-\t-\t{CONFIG_FLAG}\tplain\t-\n");
    for s in all() {
        let aliases: Vec<&str> = s
            .env_aliases
            .iter()
            .chain(&s.flag_aliases)
            .map(String::as_str)
            .collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            s.key,
            s.env,
            s.flag.as_deref().unwrap_or("-"),
            if s.secret { "secret" } else { "plain" },
            if aliases.is_empty() {
                "-".to_owned()
            } else {
                aliases.join(",")
            }
        );
    }
    out
}

/// The reference table of one component, as `docs/operations.md` has it between
/// `<!-- settings:NAME -->` and `<!-- /settings:NAME -->`.
pub fn markdown_table(component: &Component) -> String {
    let code = |name: &str| format!("`{name}`");
    let with_aliases = |name: Option<String>, aliases: &[String]| match name {
        None => "—".to_owned(),
        Some(name) if aliases.is_empty() => name,
        Some(name) => {
            let old: Vec<String> = aliases.iter().map(|a| code(a)).collect();
            format!("{name} (also {})", old.join(", "))
        }
    };
    let mut out = String::from(
        "| TOML key | environment variable | flag | default | meaning |\n|---|---|---|---|---|\n",
    );
    if component.name == "gateway" {
        let _ = writeln!(
            out,
            "| — | — | {} | none | the TOML file with any of the keys of these tables |",
            code(CONFIG_FLAG)
        );
    }
    for s in &component.settings {
        let secret = if s.secret { "**secret**. " } else { "" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {secret}{} |",
            code(&s.key),
            with_aliases(Some(code(&s.env)), &s.env_aliases),
            with_aliases(s.flag.as_deref().map(code), &s.flag_aliases),
            s.default.replace('|', "\\|"),
            s.description.replace('|', "\\|"),
        );
    }
    out
}

/// Every component's table between its markers, as `settings --markdown` prints them.
pub fn markdown() -> String {
    let mut out = String::new();
    for component in components() {
        let _ = write!(
            out,
            "{}\n{}{}\n\n",
            begin_marker(component.name),
            markdown_table(component),
            end_marker(component.name)
        );
    }
    out
}

pub fn begin_marker(name: &str) -> String {
    format!("<!-- settings:{name} (generated: layer-mcp-gateway settings --markdown) -->")
}

pub fn end_marker(name: &str) -> String {
    format!("<!-- /settings:{name} -->")
}
