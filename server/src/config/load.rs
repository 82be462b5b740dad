//! Loading: the command line (Go-style single-dash flags included), `ETCD_*` variables and
//! the config file, merged with the precedence flags > environment > file > defaults.
//!
//! Every source is turned into `--flag=value` arguments for one clap parse, so a value
//! from the environment or the file goes through the same parser, and gets the same
//! errors, as one typed on the command line.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

use super::Config;
use super::error::ConfigError;
use super::file::yaml_to_flag_values;

/// Where `ETCD_*` variables come from: the process environment, or an injected lookup.
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

impl Default for Config {
    /// etcd's defaults, ignoring the process environment (derived defaults such
    /// as the data dir are filled by [`Config::validate`]).
    fn default() -> Self {
        let no_env: EnvLookup<'_> = &|_: &str| -> Option<OsString> { None };
        Config::load_unvalidated(["oxcd"], Some(no_env)).expect("default configuration parses")
    }
}

impl Config {
    /// Parse `args` (including the program name, as from `std::env::args_os()`),
    /// taking `ETCD_*` variables from the process environment, merge the
    /// `--config-file` (flags > env > file), fill derived defaults and validate.
    pub fn load<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut cfg = Config::load_unvalidated(args, None)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Like [`Config::load`], but reads `ETCD_*` variables through `env`
    /// instead of the process environment (deterministic for tests/embedding).
    pub fn load_with_env<I, T, F>(args: I, env: F) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
        F: Fn(&str) -> Option<OsString>,
    {
        let env: EnvLookup<'_> = &env;
        let mut cfg = Config::load_unvalidated(args, Some(env))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn load_unvalidated<I, T>(args: I, env: Option<EnvLookup<'_>>) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let base = Config::command();
        let flags = FlagTable::of(&base);
        let mut args = normalize_go_flags(args.into_iter().map(Into::into).collect(), &flags);
        let cmd = with_env_source(base, env.is_some());
        let mut matches = cmd.clone().try_get_matches_from(&args)?;

        if let Some(env) = env
            && append_env_values(&mut args, &matches, &flags, env)
        {
            matches = cmd.clone().try_get_matches_from(&args)?;
        }

        // Flags set on the command line or via the environment, before the file.
        let listen_client_explicit = is_explicit(&matches, "listen_client_urls");
        let mut advertise_client_explicit = is_explicit(&matches, "advertise_client_urls");

        if let Some(path) = matches.get_one::<PathBuf>("config_file").cloned() {
            let from_file = append_file_values(&mut args, &matches, &flags, &path)?;
            advertise_client_explicit |= from_file.contains("advertise-client-urls");
            if !from_file.is_empty() {
                matches = cmd.clone().try_get_matches_from(&args).map_err(|e| {
                    ConfigError::ParseFile {
                        path: path.clone(),
                        message: e.render().to_string().trim().to_owned(),
                    }
                })?;
            }
        }

        let mut cfg = Config::from_arg_matches(&matches)?;
        cfg.advertise_client_urls_missing = listen_client_explicit && !advertise_client_explicit;
        Ok(cfg)
    }
}

/// What loading needs to know about the flags, read once from the clap command.
pub(super) struct FlagTable {
    /// Long flag name (`listen-client-urls`) to clap arg id (`listen_client_urls`).
    pub(super) long_to_id: HashMap<String, String>,
    /// Long names of the boolean flags: those that may be given without a value.
    pub(super) bool_flags: HashSet<String>,
    /// `(arg id, ETCD_* variable)` for every flag that has one.
    env_names: Vec<(String, String)>,
}

impl FlagTable {
    fn of(cmd: &Command) -> FlagTable {
        let mut table = FlagTable {
            long_to_id: HashMap::new(),
            bool_flags: HashSet::new(),
            env_names: Vec::new(),
        };
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                table
                    .long_to_id
                    .insert(long.to_owned(), arg.get_id().to_string());
                if arg.get_num_args().is_some_and(|r| r.min_values() == 0) {
                    table.bool_flags.insert(long.to_owned());
                }
            }
            if let Some(name) = arg.get_env() {
                table.env_names.push((
                    arg.get_id().to_string(),
                    name.to_string_lossy().into_owned(),
                ));
            }
        }
        table
    }

    fn long_of(&self, id: &str) -> &str {
        self.long_to_id
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.as_str())
            .expect("every env-backed arg has a long name")
    }
}

/// The command with the environment source it should read: none when the environment is
/// injected (its values arrive as arguments instead), else the process environment with
/// empty variables counting as unset, like etcd.
fn with_env_source(cmd: Command, injected: bool) -> Command {
    if injected {
        return cmd.mut_args(|a| a.env(None::<&'static str>));
    }
    cmd.mut_args(|a| {
        let empty = a
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.is_empty());
        if empty {
            a.env(None::<&'static str>)
        } else {
            a
        }
    })
}

/// Append `--flag=value` for each non-empty injected `ETCD_*` variable whose flag is not on
/// the command line; true if any was appended.
fn append_env_values(
    args: &mut Vec<OsString>,
    matches: &ArgMatches,
    flags: &FlagTable,
    env: EnvLookup<'_>,
) -> bool {
    let mut added = false;
    for (id, var) in &flags.env_names {
        if is_explicit(matches, id) {
            continue;
        }
        if let Some(val) = env(var).filter(|v| !v.is_empty()) {
            let mut a = OsString::from(format!("--{}=", flags.long_of(id)));
            a.push(val);
            args.push(a);
            added = true;
        }
    }
    added
}

/// Append `--flag=value` for each value in the config file at `path` whose flag was set
/// neither on the command line nor in the environment; returns the long names appended.
fn append_file_values(
    args: &mut Vec<OsString>,
    matches: &ArgMatches,
    flags: &FlagTable,
    path: &Path,
) -> Result<HashSet<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let mut appended = HashSet::new();
    for (long, value) in yaml_to_flag_values(path, &text, flags)? {
        if is_explicit(matches, &flags.long_to_id[&long]) {
            continue;
        }
        args.push(OsString::from(format!("--{long}={value}")));
        appended.insert(long);
    }
    Ok(appended)
}

fn is_explicit(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Rewrite Go-style single-dash long flags (`-name x`, `-name=x`) to `--name`.
fn normalize_go_flags(args: Vec<OsString>, flags: &FlagTable) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut done = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || done {
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        if s == "--" {
            done = true;
            out.push(a);
            continue;
        }
        if let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            let name = rest.split_once('=').map_or(rest, |(n, _)| n);
            if flags.long_to_id.contains_key(name) || name == "help" || name == "version" {
                out.push(OsString::from(format!("-{s}")));
                continue;
            }
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{load, load_env};
    use crate::config::{ConfigError, LogLevel};

    #[test]
    fn a_flag_given_twice_takes_its_last_value() {
        let c = load(&["--name", "a", "--name", "b"]).unwrap();
        assert_eq!(c.member.name, "b");
        let c = load(&["--snapshot-count", "5", "--snapshot-count=7"]).unwrap();
        assert_eq!(c.member.snapshot_count, 7);
        let c = load(&["--enable-v2=false", "--enable-v2"]).unwrap();
        assert!(c.clustering.enable_v2);
    }

    #[test]
    fn flags_override_env() {
        let env = [
            ("ETCD_NAME", "from-env"),
            ("ETCD_DATA_DIR", "/env/dir"),
            ("ETCD_SNAPSHOT_COUNT", "42"),
            ("ETCD_ENABLE_V2", "true"),
            ("ETCD_LOG_LEVEL", "debug"),
            ("ETCD_WAL_DIR", ""), // empty: ignored, like etcd
        ];
        let c = load_env(&["--name=from-flag", "--log-level", "warn"], &env).unwrap();
        assert_eq!(c.member.name, "from-flag");
        assert_eq!(c.member.data_dir, "/env/dir");
        assert_eq!(c.member.snapshot_count, 42);
        assert!(c.clustering.enable_v2);
        assert_eq!(c.logging.log_level, LogLevel::Warn);
        assert_eq!(c.member.wal_dir, "");
        // from-flag name with default initial cluster → derived.
        assert_eq!(
            c.clustering.initial_cluster,
            "from-flag=http://localhost:2380"
        );

        let e = load_env(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]).unwrap_err();
        assert!(matches!(e, ConfigError::Args(_)), "{e}");
    }

    #[test]
    fn go_style_single_dash_flags() {
        let c = load(&["-name", "x", "-data-dir=/tmp/x", "-enable-v2"]).unwrap();
        assert_eq!(c.member.name, "x");
        assert_eq!(c.member.data_dir, "/tmp/x");
        assert!(c.clustering.enable_v2);
        assert!(load(&["-bogus-flag"]).is_err());
        assert!(load(&["--bogus-flag=1"]).is_err());
    }
}
