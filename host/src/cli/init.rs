//! `koppel init`: a terminal wizard that asks which connector each connection of the shipped
//! flows uses (among the connectors at hand, those whose streams the flows need first), asks
//! for its config (the keys come from the connector's manifest), tests it with the
//! connector's `check`, asks which flows to enable and where alerts go, and writes
//! `koppel.toml`. Input and output are passed in, so it runs the same in a terminal and in
//! tests. It names no connector: what it offers comes from the manifests.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use crate::config::parse_duration;
use crate::flow::definition::{DEFAULT_FLOWS, FlowDef, default_flow};
use crate::runtime::bindings::{ConfigKind, StreamAccess, ValueType};
use crate::runtime::{ConnectionSpec, Connector};

/// Why the wizard stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("input/output: {0}")]
    Io(#[from] std::io::Error),
    #[error("the input ended before the setup was complete")]
    Eof,
    #[error("{0} exists; not overwritten")]
    Exists(String),
    #[error("cannot load connector `{connector}`: {message}")]
    Connector { connector: String, message: String },
    #[error("the written file does not load: {0}")]
    Invalid(String),
}

/// What a connection must offer: (stream, how it is used), from the flows that use it.
type Needs = Vec<(String, StreamAccess)>;

/// The connections the shipped flows use, in order of first use, each with the streams they
/// need of it.
fn connections_of(flows: &[FlowDef]) -> Vec<(String, Needs)> {
    let mut order: Vec<String> = Vec::new();
    let mut needs: BTreeMap<String, Needs> = BTreeMap::new();
    for flow in flows {
        for (endpoint, access) in [
            (&flow.source, StreamAccess::READ),
            (&flow.target, StreamAccess::WRITE),
        ] {
            if !order.contains(&endpoint.connection) {
                order.push(endpoint.connection.clone());
            }
            needs
                .entry(endpoint.connection.clone())
                .or_default()
                .push((endpoint.stream.clone(), access));
        }
    }
    order
        .into_iter()
        .map(|name| {
            let needed = needs.remove(&name).unwrap_or_default();
            (name, needed)
        })
        .collect()
}

/// Whether a connector offers every stream a connection needs, with the access needed.
fn covers(connector: &Connector, needs: &Needs) -> bool {
    needs.iter().all(|(stream, access)| {
        connector
            .manifest()
            .streams
            .iter()
            .any(|s| &s.name == stream && s.access.contains(*access))
    })
}

/// Asks which connector a connection uses: the ones that offer what its flows need first
/// (the first of them is the default), then the rest.
fn choose<R: BufRead, W: Write>(
    p: &mut Prompt<R, W>,
    name: &str,
    needs: &Needs,
    available: &[Arc<Connector>],
) -> Result<Arc<Connector>, SetupError> {
    let (mut fitting, others): (Vec<&Arc<Connector>>, Vec<&Arc<Connector>>) =
        available.iter().partition(|c| covers(c, needs));
    let streams: Vec<&str> = needs.iter().map(|(s, _)| s.as_str()).collect();
    if fitting.is_empty() {
        p.say(&format!(
            "  (no connector at hand offers every stream `{name}` needs: {})",
            streams.join(", ")
        ))?;
    }
    fitting.extend(others);
    let Some(first) = fitting.first() else {
        return Err(SetupError::Connector {
            connector: name.to_owned(),
            message: "no connector is available: build koppel with its connectors, or put .wasm files in the connectors folder".into(),
        });
    };
    for connector in &fitting {
        let manifest = connector.manifest();
        p.say(&format!("  {:<12} {}", manifest.id, manifest.name))?;
    }
    loop {
        let answer = p.ask(
            &format!(
                "Connector for `{name}` (its flows use {})",
                streams.join(", ")
            ),
            Some(first.id()),
        )?;
        match fitting.iter().find(|c| c.id() == answer) {
            Some(connector) => return Ok(Arc::clone(connector)),
            None => p.say(&format!("  `{answer}` is not one of the connectors above."))?,
        }
    }
}

struct Prompt<R, W> {
    input: R,
    output: W,
}

impl<R: BufRead, W: Write> Prompt<R, W> {
    fn say(&mut self, text: &str) -> Result<(), SetupError> {
        writeln!(self.output, "{text}")?;
        Ok(())
    }

    /// Asks; an empty answer takes `default`.
    fn ask(&mut self, question: &str, default: Option<&str>) -> Result<String, SetupError> {
        match default {
            Some(d) if !d.is_empty() => write!(self.output, "{question} [{d}]: ")?,
            _ => write!(self.output, "{question}: ")?,
        }
        self.output.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Err(SetupError::Eof);
        }
        let answer = line.trim();
        Ok(if answer.is_empty() {
            default.unwrap_or_default().to_owned()
        } else {
            answer.to_owned()
        })
    }

    fn yes(&mut self, question: &str, default: bool) -> Result<bool, SetupError> {
        let answer = self.ask(question, Some(if default { "Y/n" } else { "y/N" }))?;
        Ok(match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" | "j" | "ja" => true,
            "n" | "no" | "nee" => false,
            _ => default,
        })
    }
}

/// A connection as the wizard collected it: TOML for the file.
struct Collected {
    table: toml::Table,
}

async fn collect<R: BufRead, W: Write>(
    p: &mut Prompt<R, W>,
    tenant: &str,
    name: &str,
    connector: &Arc<Connector>,
) -> Result<Collected, SetupError> {
    let types = connector.config_types();
    loop {
        // `check` is `table` with the values of environment variables, for the test.
        let mut check = toml::Table::new();
        let mut table = toml::Table::new();
        for field in &connector.manifest().config {
            let ty = crate::runtime::config::value_type(field, types);
            let default = field
                .default
                .as_ref()
                .and_then(crate::runtime::config::value_text);
            let mut question = format!("  {} ({})", field.label, field.name);
            if !field.description.is_empty() {
                question = format!("  {}\n{question}", field.description);
            }
            if field.kind == ConfigKind::Choice && !field.choices.is_empty() {
                question.push_str(&format!(" {{{}}}", field.choices.join(", ")));
            }
            if field.kind == ConfigKind::Secret {
                question.push_str(" (secret; or env:VARIABLE to read it from the environment)");
            }
            if matches!(ty, Some(ValueType::List | ValueType::Table) | None) {
                let example = types
                    .iter()
                    .find(|t| t.name == field.name)
                    .map_or("{ key = \"value\" }", |t| t.example.as_str());
                question.push_str(&format!(
                    " (as TOML on one line, like {example}; empty: none)"
                ));
            }
            let answer = p.ask(&question, default.as_deref())?;
            if answer.is_empty() || Some(&answer) == default.as_ref() {
                continue;
            }
            if let Some(var) = answer.strip_prefix("env:") {
                let var = var.trim();
                let mut env = toml::Table::new();
                env.insert("env".into(), toml::Value::String(var.to_owned()));
                table.insert(field.name.clone(), toml::Value::Table(env));
                match std::env::var(var) {
                    Ok(value) => {
                        check.insert(field.name.clone(), toml::Value::String(value));
                    }
                    Err(_) => p.say(&format!(
                        "  (the environment variable {var} is not set now; set it before `koppel run`)"
                    ))?,
                }
                continue;
            }
            let value = match field.kind {
                ConfigKind::Integer => answer
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .unwrap_or_else(|_| toml::Value::String(answer.clone())),
                ConfigKind::Boolean => match answer.as_str() {
                    "true" | "yes" | "y" => toml::Value::Boolean(true),
                    "false" | "no" | "n" => toml::Value::Boolean(false),
                    _ => toml::Value::String(answer.clone()),
                },
                _ => match ty {
                    // A table, a list or a number as TOML; what does not parse stays text,
                    // and the check below names the type it should have.
                    Some(ValueType::List | ValueType::Table | ValueType::Number) | None => {
                        toml::from_str::<toml::Table>(&format!("value = {answer}"))
                            .ok()
                            .and_then(|mut t| t.remove("value"))
                            .unwrap_or_else(|| toml::Value::String(answer.clone()))
                    }
                    _ => toml::Value::String(answer.clone()),
                },
            };
            check.insert(field.name.clone(), value.clone());
            table.insert(field.name.clone(), value);
        }
        let outcome = match connector.config_from_toml(&check) {
            Err(error) => Err(error.to_string()),
            Ok(guest) => match connector.connect(ConnectionSpec::new(tenant, name, guest.values)) {
                Ok(connection) => {
                    p.say("  Testing the connection…")?;
                    connection
                        .check()
                        .await
                        .map_err(|e| connection.redact(&e.to_string()))
                }
                Err(error) => Err(error.to_string()),
            },
        };
        match outcome {
            Ok(()) => {
                p.say("  The connection works.")?;
                return Ok(Collected { table });
            }
            Err(error) => {
                p.say(&format!("  The connection test failed: {error}"))?;
                if !p.yes("  Enter the values again?", true)? {
                    p.say("  Kept as entered; fix it in koppel.toml later.")?;
                    return Ok(Collected { table });
                }
            }
        }
    }
}

/// Runs the wizard and writes `path`, offering the connectors in `available` (the CLI passes
/// the built-in ones and those of the connectors folder).
pub async fn init_wizard<R, W>(
    path: &Path,
    available: &[Arc<Connector>],
    input: R,
    output: W,
) -> Result<(), SetupError>
where
    R: BufRead,
    W: Write,
{
    let mut p = Prompt { input, output };
    p.say("koppel setup: connections, flows and alerts. Press Enter to take the [default].")?;
    if path.exists() && !p.yes(&format!("{} exists. Overwrite it?", path.display()), false)? {
        return Err(SetupError::Exists(path.display().to_string()));
    }
    let tenant = p.ask("Tenant (whose data this is)", Some("default"))?;
    let mut file = toml::Table::new();
    file.insert("tenant".into(), toml::Value::String(tenant.clone()));
    let shipped: Vec<FlowDef> = DEFAULT_FLOWS
        .iter()
        .filter_map(|(name, _)| default_flow(name)?.ok())
        .collect();
    let mut connections = toml::Table::new();
    for (name, needs) in connections_of(&shipped) {
        p.say(&format!("\nConnection `{name}`"))?;
        let connector = choose(&mut p, &name, &needs, available)?;
        let collected = collect(&mut p, &tenant, &name, &connector).await?;
        let mut connection = toml::Table::new();
        connection.insert(
            "connector".into(),
            toml::Value::String(connector.id().to_owned()),
        );
        connection.insert("config".into(), toml::Value::Table(collected.table));
        connections.insert(name, toml::Value::Table(connection));
    }
    file.insert("connections".into(), toml::Value::Table(connections));

    p.say("\nFlows")?;
    let mut flows = toml::Table::new();
    for (name, _) in DEFAULT_FLOWS {
        let Some(Ok(flow)) = default_flow(name) else {
            continue;
        };
        if !p.yes(&format!("Enable `{name}`: {}", flow.description), true)? {
            continue;
        }
        let mut table = toml::Table::new();
        loop {
            let shipped = flow.interval.to_string();
            let interval = p.ask("  How often", Some(&shipped))?;
            match parse_duration(&interval) {
                Ok(_) => {
                    if interval != shipped {
                        table.insert("interval".into(), toml::Value::String(interval));
                    }
                    break;
                }
                Err(message) => p.say(&format!("  {message}"))?,
            }
        }
        flows.insert((*name).to_owned(), toml::Value::Table(table));
    }
    file.insert("flows".into(), toml::Value::Table(flows));

    p.say("\nDashboard and alerts")?;
    let mut server = toml::Table::new();
    let listen = p.ask(
        "Dashboard address (0.0.0.0:8080 to reach it from other machines)",
        Some("127.0.0.1:8080"),
    )?;
    server.insert("listen".into(), toml::Value::String(listen));
    file.insert("server".into(), toml::Value::Table(server));
    let mut notify = toml::Table::new();
    let hook = p.ask("Alert webhook URL (empty: none)", None)?;
    if !hook.is_empty() {
        let secret = crate::server::generate_token();
        let mut table = toml::Table::new();
        table.insert("url".into(), toml::Value::String(hook));
        table.insert("secret".into(), toml::Value::String(secret));
        notify.insert("webhook".into(), toml::Value::Table(table));
        p.say("  Signed with the secret written under [notify.webhook]; give it to the receiver.")?;
    }
    let to = p.ask("Alert e-mail address (empty: none)", None)?;
    if !to.is_empty() {
        let mut table = toml::Table::new();
        table.insert(
            "host".into(),
            toml::Value::String(p.ask("  SMTP server", None)?),
        );
        let port = p.ask("  SMTP port", Some("587"))?;
        if let Ok(port) = port.parse::<i64>() {
            table.insert("port".into(), toml::Value::Integer(port));
        }
        let user = p.ask("  SMTP user name (empty: none)", None)?;
        if !user.is_empty() {
            table.insert("username".into(), toml::Value::String(user));
            let password = p.ask("  SMTP password (or env:VARIABLE)", None)?;
            let value = match password.strip_prefix("env:") {
                Some(var) => {
                    let mut env = toml::Table::new();
                    env.insert("env".into(), toml::Value::String(var.trim().to_owned()));
                    toml::Value::Table(env)
                }
                None => toml::Value::String(password),
            };
            table.insert("password".into(), value);
        }
        table.insert(
            "from".into(),
            toml::Value::String(p.ask("  Sender", Some("koppel <koppel@localhost>"))?),
        );
        table.insert(
            "to".into(),
            toml::Value::Array(vec![toml::Value::String(to)]),
        );
        notify.insert("email".into(), toml::Value::Table(table));
    }
    if !notify.is_empty() {
        file.insert("notify".into(), toml::Value::Table(notify));
    }

    let text = format!(
        "# Written by `koppel init`. Flows take overrides (filters, mappings, create_only):\n\
         # see docs/flows.md. The dashboard's API token is printed at the first `koppel run`.\n\n{}",
        toml::to_string_pretty(&file).map_err(|e| SetupError::Invalid(e.to_string()))?
    );
    write_private(path, &text)?;
    // Syntax and keys checked now; secrets read from the environment are checked at start.
    crate::config::parse(&text).map_err(SetupError::Invalid)?;
    p.say(&format!(
        "\nWrote {}. Start with `koppel run -c {}`.",
        path.display(),
        path.display()
    ))?;
    Ok(())
}

/// Writes a file only its owner can read (it may hold secrets).
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
