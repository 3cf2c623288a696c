//! `--config FILE` (TOML) and `payrail config check`.
//!
//! The file holds what the flags hold. Its top-level keys are the global
//! flags (`data_dir`, `database_url`, `master_key_file`); its `[serve]` table
//! holds the flags of `payrail serve`. A key is a flag's long name, with
//! underscores or dashes (`trusted_proxy` or `trusted-proxy`).
//!
//! Nothing here lists the flags: each file value is checked against its
//! flag's own parser and installed as that flag's default before clap
//! parses, so a flag added to `Cli` or `ServeArgs` is a file key at once, and
//! clap's own order holds: command line, then environment, then the file,
//! then the built-in default. Secrets that are read from the environment only
//! (the master key, the admin token, the Paysprint keys) stay out of the file.

use std::any::TypeId;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory as _, FromArgMatches as _, Subcommand};

use super::serve::ServeArgs;
use super::Cli;

/// The subcommand whose flags the file's `[serve]` table holds.
const SERVE: &str = "serve";

/// The environment variable that names the file when `--config` is not given.
const CONFIG_ENV: &str = "PAYRAIL_CONFIG";

/// Settings read from the environment only: secrets, which a config file
/// (often world-readable, often in version control) must not hold.
const ENV_ONLY: &[(&str, &str)] = &[
    ("master_key", "PAYRAIL_MASTER_KEY"),
    ("admin_token", "PAYRAIL_ADMIN_TOKEN"),
    ("paysprint_jwt_key", "PAYRAIL_PAYSPRINT_JWT_KEY"),
    ("paysprint_authorised_key", "PAYRAIL_PAYSPRINT_AUTHORISED_KEY"),
];

/// `payrail config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file (--config FILE or PAYRAIL_CONFIG) and print the
    /// settings `payrail serve` would run with, each with where it came from
    /// (flag, env, file or default), secrets masked. Exits 2 on a file it
    /// cannot read or a key it does not take, 1 on a value serve would refuse.
    Check,
}

/// The command line's parser with a config file's values installed as defaults.
pub struct Loaded {
    /// `Cli::command()`, its defaults replaced by the file's values.
    pub command: Command,
    /// The file, if one was given.
    pub file: Option<FileSettings>,
}

/// What a config file set.
pub struct FileSettings {
    /// Where the file is.
    pub path: PathBuf,
    values: Vec<FileValue>,
}

/// One key of the file: the flag it sets and its values as command-line text.
struct FileValue {
    /// `None` for a global flag, `Some("serve")` for a `[serve]` one.
    scope: Option<&'static str>,
    id: clap::Id,
    values: Vec<String>,
}

impl FileSettings {
    fn sets(&self, scope: Option<&str>, id: &clap::Id) -> bool {
        self.values.iter().any(|v| v.scope == scope && &v.id == id)
    }
}

/// Parses the command line, with the config file's values as defaults.
/// Command-line errors exit as clap's do; a bad config file is an error
/// that names the file and the key.
pub fn parse(args: Vec<OsString>) -> anyhow::Result<Cli> {
    let loaded = load(&args)?;
    let matches = loaded.command.get_matches_from(args);
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// Reads the config file named in `args` (or by PAYRAIL_CONFIG), if any,
/// and installs its values in the command line's parser.
pub fn load(args: &[OsString]) -> anyhow::Result<Loaded> {
    let command = Cli::command();
    let Some(path) = config_path(args) else { return Ok(Loaded { command, file: None }) };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("Failed to read the config file {}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{}: not valid TOML: {e}", path.display()))?;
    let mut probe = command.clone();
    probe.build();
    let values = read_table(&probe, &table).map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?;
    let command = install(command, &values);
    Ok(Loaded { command, file: Some(FileSettings { path, values }) })
}

/// `--config FILE` or `--config=FILE` before any `--`, else PAYRAIL_CONFIG.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Every key of the file, checked: known, of the right type, valid for its flag.
fn read_table(probe: &Command, table: &toml::Table) -> Result<Vec<FileValue>, String> {
    let serve = probe.find_subcommand(SERVE).ok_or("no serve command")?;
    let mut values = Vec::new();
    for (key, value) in table {
        if key == SERVE {
            let toml::Value::Table(inner) = value else {
                return Err(format!("`{SERVE}` must be a table ([{SERVE}]), found {}", kind(value)));
            };
            for (key, value) in inner {
                let name = format!("{SERVE}.{key}");
                let arg =
                    settable(serve, key).filter(|a| !a.is_global_set()).ok_or_else(|| match settable(probe, key) {
                        Some(_) => format!(
                            "`{name}` is a global setting: put `{key}` at the top of the file, before [{SERVE}]"
                        ),
                        None => unknown(&name, key),
                    })?;
                values.push(FileValue {
                    scope: Some(SERVE),
                    id: arg.get_id().clone(),
                    values: convert(&name, arg, value)?,
                });
            }
            continue;
        }
        let arg = settable(probe, key).ok_or_else(|| match settable(serve, key) {
            Some(_) => format!("unknown key `{key}`: it is a serve setting, so it goes in the [{SERVE}] table"),
            None => unknown(key, key),
        })?;
        values.push(FileValue { scope: None, id: arg.get_id().clone(), values: convert(key, arg, value)? });
    }
    Ok(values)
}

fn unknown(name: &str, key: &str) -> String {
    let plain = key.replace('-', "_");
    if plain == "config" {
        return format!("`{name}`: a config file cannot name another config file");
    }
    if plain == "log" {
        return format!("unknown key `{name}`: the log filter is read from the environment only: set PAYRAIL_LOG");
    }
    match ENV_ONLY.iter().find(|(secret, _)| *secret == plain) {
        Some((_, env)) => format!(
            "`{name}` is a secret and is read from the environment only: set {env} (e.g. in the service's EnvironmentFile)"
        ),
        None => format!("unknown key `{name}`"),
    }
}

/// The flag a key names, if a file may set it.
fn settable<'a>(command: &'a Command, key: &str) -> Option<&'a Arg> {
    let long = key.replace('_', "-");
    command.get_arguments().find(|arg| arg.get_long() == Some(long.as_str()) && is_setting(arg))
}

/// A flag that holds a setting: not `--help`, `--version` or `--config` itself.
fn is_setting(arg: &Arg) -> bool {
    let meta =
        matches!(arg.get_action(), ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version);
    arg.get_long().is_some() && !meta && arg.get_id() != "config"
}

/// The TOML type a flag's value takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boolean,
    Integer,
    Number,
    Text,
}

impl Kind {
    fn of(arg: &Arg) -> Kind {
        if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            return Kind::Boolean;
        }
        let parsed = arg.get_value_parser().type_id();
        let integers = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i8>(),
            TypeId::of::<i16>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<isize>(),
        ];
        if integers.iter().any(|id| parsed == *id) {
            Kind::Integer
        } else if parsed == TypeId::of::<f64>() || parsed == TypeId::of::<f32>() {
            Kind::Number
        } else {
            Kind::Text
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Boolean => "true or false",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Text => "a string",
        }
    }
}

/// A flag that takes several values (repeated or comma-separated): an array in the file.
fn takes_many(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_value_delimiter().is_some()
        || arg.get_num_args().is_some_and(|range| range.max_values() > 1)
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// A file value as the flag's command-line text(s), checked by the flag's own parser.
fn convert(name: &str, arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let expected = Kind::of(arg);
    match value {
        toml::Value::Array(items) if takes_many(arg) => {
            items.iter().map(|item| scalar(name, arg, expected, item)).collect()
        }
        toml::Value::Array(_) => Err(format!("`{name}`: expected {}, found an array", expected.describe())),
        value => Ok(vec![scalar(name, arg, expected, value)?]),
    }
}

fn scalar(name: &str, arg: &Arg, expected: Kind, value: &toml::Value) -> Result<String, String> {
    let text = match (expected, value) {
        (Kind::Boolean, toml::Value::Boolean(b)) => return Ok(b.to_string()),
        (Kind::Integer | Kind::Number, toml::Value::Integer(i)) => i.to_string(),
        (Kind::Number, toml::Value::Float(f)) => f.to_string(),
        (Kind::Text, toml::Value::String(s)) => s.clone(),
        (_, other) => return Err(format!("`{name}`: expected {}, found {}", expected.describe(), kind(other))),
    };
    let check = Command::new("check")
        .no_binary_name(true)
        .arg(Arg::new("value").value_parser(arg.get_value_parser().clone()).allow_hyphen_values(true).required(true));
    match check.try_get_matches_from([text.as_str()]) {
        Ok(_) => Ok(text),
        Err(e) => Err(format!("`{name}`: {text:?} is not valid: {}", reason(&e))),
    }
}

/// Why clap refused a value, without its usage text.
fn reason(error: &clap::Error) -> String {
    use std::error::Error as _;
    if let Some(source) = error.source() {
        return source.to_string();
    }
    match error.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("expected one of {}", valid.join(", ")),
        _ => "not a value this setting takes".to_owned(),
    }
}

/// The command with each file value as its flag's default.
fn install(mut command: Command, values: &[FileValue]) -> Command {
    for value in values {
        let defaults = value.values.clone();
        // `--help` shows defaults: not a file's secret (a database password).
        let key = value.id.as_str().replace('-', "_");
        let secret = defaults.iter().any(|v| mask(&key, v) != *v);
        let set = move |arg: Arg| arg.default_values(defaults).hide_default_value(secret);
        command = match value.scope {
            None => command.mut_arg(&value.id, set),
            Some(scope) => command.mut_subcommand(scope, |sub| sub.mut_arg(&value.id, set)),
        };
    }
    command
}

/// Runs `payrail config check` on this process's own command line.
pub fn run(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check => {
            cli.store_location()?;
            print!("{}", check(&std::env::args_os().collect::<Vec<_>>())?);
            Ok(())
        }
    }
}

/// Checks the config file `args` name and describes the effective settings.
pub fn check(args: &[OsString]) -> anyhow::Result<String> {
    let loaded = load(args)?;
    let given = loaded.command.clone().try_get_matches_from(args)?;
    // The serve settings as `payrail serve` (with no flags) would have them.
    let serve = loaded.command.clone().try_get_matches_from(["payrail", SERVE])?;
    let serve = serve.subcommand_matches(SERVE).context("no serve settings")?;
    ServeArgs::from_arg_matches(serve)?.check()?;
    // The flags in their declared order (installing a default moves a flag to the end).
    let mut probe = Cli::command();
    probe.build();
    let file = loaded.file.as_ref();
    let mut out = match file {
        Some(file) => format!("# {}: valid\n", file.path.display()),
        None => format!("# no config file (give --config FILE or set {CONFIG_ENV})\n"),
    };
    out.push_str(
        "# The settings `payrail serve` would run with; each says where it came from\n\
         # (flag, env, file or default). Secrets are masked.\n",
    );
    describe(&mut out, &probe, &given, None, file);
    let serve_command = probe.find_subcommand(SERVE).context("no serve command")?;
    out.push_str(&format!("\n[{SERVE}]\n"));
    describe(&mut out, serve_command, serve, Some(SERVE), file);
    Ok(out)
}

/// One line per setting of `command`, `key = value  # source`.
fn describe(
    out: &mut String,
    command: &Command,
    matches: &ArgMatches,
    scope: Option<&str>,
    file: Option<&FileSettings>,
) {
    for arg in command.get_arguments().filter(|a| is_setting(a) && !a.is_hide_set()) {
        if scope.is_some() && arg.is_global_set() {
            continue;
        }
        let Some(long) = arg.get_long() else { continue };
        let key = long.replace('-', "_");
        let id = arg.get_id();
        let raw: Vec<String> = match matches.try_get_raw(id.as_str()) {
            Ok(Some(values)) => values.map(|v| v.to_string_lossy().into_owned()).collect(),
            _ => Vec::new(),
        };
        let source = match matches.value_source(id.as_str()) {
            Some(ValueSource::CommandLine) => format!("flag --{long}"),
            Some(ValueSource::EnvVariable) => {
                format!("env {}", arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default())
            }
            Some(ValueSource::DefaultValue) if file.is_some_and(|f| f.sets(scope, id)) => "file".to_owned(),
            Some(ValueSource::DefaultValue) => "default".to_owned(),
            _ => {
                out.push_str(&format!("# {key}: not set\n"));
                continue;
            }
        };
        out.push_str(&format!("{key} = {}  # {source}\n", render(&key, arg, &raw)));
    }
}

/// A value as TOML, secrets masked.
fn render(key: &str, arg: &Arg, raw: &[String]) -> String {
    let one = |text: &String| match Kind::of(arg) {
        Kind::Text => toml::Value::String(mask(key, text)).to_string(),
        _ => text.clone(),
    };
    match (takes_many(arg), raw) {
        (false, [value]) => one(value),
        (_, values) => format!("[{}]", values.iter().map(one).collect::<Vec<_>>().join(", ")),
    }
}

/// Hides a secret: the whole value of a key that names one, and the
/// password of a URL (`scheme://user:password@host`, `?password=`).
pub(crate) fn mask(key: &str, value: &str) -> String {
    let secret_key = ["password", "secret", "token"].iter().any(|word| key.contains(word)) && !key.ends_with("_file");
    if secret_key && !value.is_empty() {
        return "***".to_owned();
    }
    let mut masked = value.to_owned();
    if let Some(scheme_end) = masked.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = masked[authority_start..].find('/').map_or(masked.len(), |i| authority_start + i);
        if let Some(at) = masked[authority_start..authority_end].rfind('@').map(|i| authority_start + i) {
            if let Some(colon) = masked[authority_start..at].find(':').map(|i| authority_start + i) {
                masked.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(start) = masked.find("password=").map(|i| i + "password=".len()) {
        let end = masked[start..].find('&').map_or(masked.len(), |i| start + i);
        masked.replace_range(start..end, "***");
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn passwords_in_urls_and_secret_keys_are_masked() {
        assert_eq!(mask("database_url", "postgres://payrail:hunter2@db:5432/p"), "postgres://payrail:***@db:5432/p");
        assert_eq!(
            mask("database_url", "postgres://db/p?user=a&password=hunter2&x=1"),
            "postgres://db/p?user=a&password=***&x=1"
        );
        assert_eq!(mask("database_url", "postgres://payrail@db/p"), "postgres://payrail@db/p");
        assert_eq!(mask("sms_gateway_url", "https://u:p@sms.example/send"), "https://u:***@sms.example/send");
        assert_eq!(mask("admin_token", "abc"), "***");
        assert_eq!(mask("master_key_file", "/etc/payrail/master.key"), "/etc/payrail/master.key");
    }

    #[test]
    fn the_config_file_is_found_in_either_spelling_of_the_flag_and_not_after_a_double_dash() {
        assert_eq!(config_path(&args(&["payrail", "--config", "a.toml", "serve"])), Some("a.toml".into()));
        assert_eq!(config_path(&args(&["payrail", "serve", "--config=b.toml"])), Some("b.toml".into()));
        assert_eq!(
            config_path(&args(&["payrail", "import", "--", "--config", "c.toml"])),
            std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()).map(PathBuf::from)
        );
    }

    #[test]
    fn a_file_value_becomes_the_default_and_types_are_checked_against_each_flag() {
        let mut probe = Cli::command();
        probe.build();
        let table: toml::Table = "data_dir = \"/srv/p\"\n[serve]\nrate_limit = 7\ntrusted_proxy = [\"10.0.0.0/8\"]\nno_console = true\nheader_timeout = 2\n"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let values = read_table(&probe, &table).unwrap_or_else(|e| panic!("{e}"));
        let matches = install(Cli::command(), &values).get_matches_from(["payrail", "serve"]);
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.data_dir, PathBuf::from("/srv/p"));
        let super::super::Command::Serve(serve) = &cli.command else { panic!("not serve") };
        assert_eq!((serve.rate_limit, serve.console.no_console, serve.connections.header_timeout), (7, true, 2.0));
        assert_eq!(serve.trusted_proxies.len(), 1);

        for (file, named) in [
            ("[serve]\nrate_limit = \"fast\"", "`serve.rate_limit`: expected an integer, found a string"),
            ("[serve]\nrate_limit = -1", "`serve.rate_limit`: \"-1\" is not valid"),
            ("[serve]\nlisten = 8080", "`serve.listen`: expected a string, found an integer"),
            ("[serve]\nlisten = \"nowhere\"", "`serve.listen`: \"nowhere\" is not valid"),
            ("[serve]\nprovider = \"carrier-pigeon\"", "expected one of manual, sandbox, paysprint"),
            ("[serve]\nlisten = [\"127.0.0.1:1\"]", "`serve.listen`: expected a string, found an array"),
            ("data_dir = { path = \"x\" }", "`data_dir`: expected a string, found a table"),
            ("[serve]\nrate_limt = 5", "unknown key `serve.rate_limt`"),
            ("listen = \"127.0.0.1:1\"", "it is a serve setting"),
            ("[serve]\ndata_dir = \"x\"", "is a global setting"),
            ("admin_token = \"x\"", "set PAYRAIL_ADMIN_TOKEN"),
            ("master_key = \"00\"", "set PAYRAIL_MASTER_KEY"),
            ("config = \"other.toml\"", "cannot name another config file"),
            ("log = \"debug\"", "set PAYRAIL_LOG"),
            ("serve = 1", "`serve` must be a table"),
        ] {
            let table: toml::Table = file.parse().unwrap_or_else(|e| panic!("{file}: {e}"));
            let error = read_table(&probe, &table).err().unwrap_or_else(|| panic!("{file} was accepted"));
            assert!(error.contains(named), "{file}: {error}");
        }
    }

    /// The example in docs/ names every setting, so that it cannot go stale
    /// when a flag is added.
    #[test]
    fn the_example_config_names_every_flag() {
        let example = include_str!("../../../../docs/payrail.example.toml");
        let mut probe = Cli::command();
        probe.build();
        let serve = probe.find_subcommand(SERVE).unwrap_or_else(|| panic!("no serve"));
        let keys = probe.get_arguments().chain(serve.get_arguments().filter(|a| !a.is_global_set()));
        for arg in keys.filter(|a| is_setting(a) && !a.is_hide_set()) {
            let key = arg.get_long().unwrap_or_default().replace('-', "_");
            let listed = example.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.strip_prefix(key.as_str()).is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            assert!(listed, "docs/payrail.example.toml does not show `{key}`");
        }
    }

    #[test]
    fn check_without_a_file_reports_defaults() {
        if std::env::var_os(CONFIG_ENV).is_some() {
            return;
        }
        let out =
            check(&args(&["payrail", "--data-dir", "/tmp/x", "config", "check"])).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(out.contains("data_dir = \"/tmp/x\"  # flag --data-dir"), "{out}");
        assert!(out.starts_with("# no config file"), "{out}");
        assert!(out.contains("[serve]"), "{out}");
    }
}
