//! The `serve` flags, built into clap from the definitions.

use std::fmt;

use super::all;

/// The `serve` flags of the settings that have one (`x-flag`), as given on the command line:
/// `(TOML key, value)` pairs. Built into clap from the definitions, so a new flag is one
/// `x-flag`.
#[derive(Clone, Default)]
pub struct Flags(pub(super) Vec<(String, String)>);

impl fmt::Debug for Flags {
    /// The flags given, without their values (some are credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Flags {
    /// Adds a flag's value (tests; `key` is the setting's TOML key).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.push((key.to_owned(), value.to_owned()));
        self
    }
}

impl clap::FromArgMatches for Flags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Flags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for s in all().filter(|s| s.flag.is_some()) {
            if s.switch {
                if matches.get_flag(&s.key) {
                    self.0.push((s.key.clone(), "true".to_owned()));
                }
            } else if let Some(value) = matches.get_one::<String>(&s.key) {
                self.0.push((s.key.clone(), value.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for Flags {
    fn augment_args(mut command: clap::Command) -> clap::Command {
        for s in all() {
            let Some(flag) = &s.flag else { continue };
            let long = |f: &String| f.trim_start_matches('-').to_owned();
            let mut arg = clap::Arg::new(s.key.clone())
                .long(long(flag))
                .help(format!("{} [variable: {}]", s.description, s.env))
                .visible_aliases(s.flag_aliases.iter().map(long));
            arg = if s.switch {
                arg.action(clap::ArgAction::SetTrue)
            } else {
                arg.value_name(s.key.to_ascii_uppercase())
            };
            command = command.arg(arg);
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}
