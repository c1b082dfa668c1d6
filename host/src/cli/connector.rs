//! `koppel connectors list`, `koppel connector inspect|check|test`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

use super::conformance;
use super::example_api::ExampleApi;
use super::{CheckArgs, InspectArgs, ListArgs, TestArgs};
use crate::connectors::{self, load};
use crate::runtime::bindings::{ConfigKind, StreamAccess};
use crate::runtime::{ConnectionSpec, Connector, Manifest, Runtime, RuntimeOptions};

pub(super) fn runtime() -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeOptions::default())?)
}

/// The runtime a configuration runs in: its `[hosting]` network guard.
pub(super) fn runtime_for(config: &crate::config::Config) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeOptions {
        network: (&config.hosting).into(),
        ..RuntimeOptions::default()
    })?)
}

#[derive(serde::Serialize)]
struct Listed {
    id: String,
    name: String,
    version: String,
    source: String,
    streams: Vec<String>,
    bytes: usize,
}

fn stream_summary(manifest: &Manifest) -> Vec<String> {
    manifest
        .streams
        .iter()
        .map(|s| {
            let mut access = Vec::new();
            if s.access.contains(StreamAccess::READ) {
                access.push("read");
            }
            if s.access.contains(StreamAccess::WRITE) {
                access.push("write");
            }
            if s.access.contains(StreamAccess::LOOKUP) {
                access.push("lookup");
            }
            format!("{} ({})", s.name, access.join("/"))
        })
        .collect()
}

pub(super) async fn list(args: ListArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let mut listed = Vec::new();
    let mut problems = Vec::new();
    for builtin in connectors::builtin() {
        let connector = runtime.load(builtin.id, builtin.wasm).await?;
        listed.push(listing(&connector, "built in".to_owned()));
    }
    let dir = args.dir.or_else(connectors::default_dir);
    if let Some(dir) = &dir {
        for file in connectors::files_in(dir) {
            match runtime.load_file(&file).await {
                Ok(connector) => listed.push(listing(&connector, file.display().to_string())),
                Err(error) => problems.push(error.to_string()),
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else {
        if listed.is_empty() {
            println!("No connectors found.");
        }
        for item in &listed {
            println!(
                "{:<12} {:<24} {:<8} {:>8} KB  {}",
                item.id,
                item.name,
                item.version,
                item.bytes / 1024,
                item.source
            );
            println!("{:<12} streams: {}", "", item.streams.join(", "));
        }
        if let Some(dir) = &dir {
            println!("\nThird-party connectors are read from {}", dir.display());
        }
    }
    for problem in &problems {
        eprintln!("skipped: {problem}");
    }
    Ok(())
}

fn listing(connector: &Connector, source: String) -> Listed {
    let manifest = connector.manifest();
    Listed {
        id: manifest.id.clone(),
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        source,
        streams: stream_summary(manifest),
        bytes: connector.size(),
    }
}

pub(super) async fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let connector = load(&runtime, &args.connector).await?;
    let manifest = connector.manifest();
    let types = connector.config_types();
    if args.json {
        // The manifest as the connector gives it, and each key's type beside it.
        let mut shown = serde_json::to_value(manifest)?;
        if let Some(fields) = shown.get_mut("config").and_then(|c| c.as_array_mut()) {
            for (field, shown) in manifest.config.iter().zip(fields) {
                shown["type"] = crate::runtime::config::type_name(field, types).into();
                if let Some(typed) = types.iter().find(|t| t.name == field.name) {
                    shown["example"] = format!("{} = {}", field.name, typed.example).into();
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!("{} {} ({})", manifest.name, manifest.version, manifest.id);
    if !manifest.description.is_empty() {
        println!("{}", manifest.description);
    }
    println!(
        "component: {} bytes, sha256 {}",
        connector.size(),
        connector.hash()
    );
    println!("\nstreams:");
    for (stream, summary) in manifest.streams.iter().zip(stream_summary(manifest)) {
        println!(
            "  {summary:<32} {} records. {}",
            stream.kind.name(),
            stream.description
        );
    }
    println!("\nconfig:");
    for field in &manifest.config {
        let mut notes = Vec::new();
        notes.push(crate::runtime::config::type_name(field, types).to_owned());
        // A declared type stands for the kind; a kind that means more (secret) is kept.
        if types.iter().any(|t| t.name == field.name)
            && !matches!(
                field.kind,
                ConfigKind::Text | ConfigKind::Json | ConfigKind::Integer | ConfigKind::Boolean
            )
        {
            notes.push(field.kind.name().to_owned());
        }
        if field.required {
            notes.push("required".into());
        }
        if let Some(default) = field
            .default
            .as_ref()
            .and_then(crate::runtime::config::value_text)
        {
            notes.push(format!("default {default}"));
        }
        if field.kind == ConfigKind::Choice {
            notes.push(format!("one of {}", field.choices.join("|")));
        }
        println!(
            "  {:<24} {} [{}]",
            field.name,
            field.label,
            notes.join(", ")
        );
        if !field.description.is_empty() {
            println!("  {:<24} {}", "", field.description);
        }
        if let Some(typed) = types.iter().find(|t| t.name == field.name) {
            println!("  {:<24} e.g. {} = {}", "", field.name, typed.example);
        }
    }
    println!("\nmay connect to: {}", manifest.outbound_hosts.join(", "));
    Ok(())
}

/// Reads a flat TOML config file; `{ env = "NAME" }` takes the value from the environment.
pub fn read_config_file(path: &Path) -> anyhow::Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    crate::config::resolve_table(&table)
        .map_err(|(key, m)| anyhow::anyhow!("{}: `{key}` {m}", path.display()))
}

/// A config file's values as `connector` receives them; a value in its old form is read
/// with a warning on stderr naming the TOML form.
fn guest_config(
    connector: &Connector,
    path: &Path,
    table: &toml::Table,
) -> anyhow::Result<BTreeMap<String, String>> {
    let guest = connector
        .config_from_toml(table)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for warning in &guest.warnings {
        eprintln!(
            "warning: {}: `{}`: {}",
            path.display(),
            warning.key,
            warning.message
        );
    }
    Ok(guest.values)
}

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let connector = load(&runtime, &args.connector).await?;
    let table = read_config_file(&args.config)?;
    let config = guest_config(&connector, &args.config, &table)?;
    let connection = connector.connect(ConnectionSpec::new("cli", "check", config))?;
    let hosts: Vec<String> = connection
        .allow_list()
        .origins()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "{}: may connect to {}",
        connector.id(),
        if hosts.is_empty() {
            "nothing".into()
        } else {
            hosts.join(", ")
        }
    );
    connection
        .check()
        .await
        .with_context(|| format!("check of `{}` failed", connector.id()))?;
    println!("{}: the connection works.", connector.id());
    Ok(())
}

/// Reads `--records`: `{"stream": [record, ...]}` in the canonical JSON form.
fn read_records(
    path: &Path,
) -> anyhow::Result<BTreeMap<String, Vec<crate::runtime::bindings::Record>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"<stream>\": [<record>, ...]}} with records as koppel stores them (`{{\"Product\": {{\"key\": ...}}}}`)",
            path.display()
        )
    })
}

pub(super) async fn test(args: TestArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let connector = load(&runtime, &args.connector).await?;
    // The file's `[suite]` table is the suite's settings; the rest is the connection's config.
    let mut settings = None;
    let mut config = match &args.config {
        Some(path) => {
            let mut table = read_config_file(path)?;
            if let Some(suite) = table.remove("suite") {
                settings = Some(
                    conformance::Settings::from_value(suite)
                        .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?,
                );
            }
            guest_config(&connector, path, &table)?
        }
        None => BTreeMap::new(),
    };
    // Kept alive until the suite is done.
    let mut _example = None;
    if args.example_api {
        let keys: Vec<&str> = connector
            .manifest()
            .config
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if !(keys.contains(&"base_url") && keys.contains(&"api_key")) {
            bail!(
                "--example-api fills in `base_url` and `api_key`, which `{}` does not take: use --config",
                connector.id()
            );
        }
        let api = ExampleApi::start(60)
            .await
            .context("cannot start the example API")?;
        config.insert("base_url".into(), api.url());
        config.insert("api_key".into(), api.key().to_owned());
        if !args.json {
            println!("The example API listens on {} (60 items).", api.url());
        }
        _example = Some(api);
    }
    let options = conformance::Options {
        page_size: args.page_size.max(1),
        max_records: args.max_records,
        streams: args.streams.clone(),
        records: match &args.records {
            Some(path) => read_records(path)?,
            None => BTreeMap::new(),
        },
        write: !args.no_write,
        ..conformance::Options::default()
    };
    let report = conformance::run(connector, config, options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if !report.passed() {
        let mut rules: Vec<&str> = report.failed().iter().map(|c| c.rule).collect();
        rules.dedup();
        bail!(
            "`{}` broke the connector contract: rules {} (docs/connector-contract.md)",
            report.connector,
            rules.join(", ")
        );
    }
    if let Some(settings) = &settings {
        let problems = report.problems(settings);
        if !problems.is_empty() {
            bail!(
                "`{}` did not exercise what its settings promise:\n  {}",
                report.connector,
                problems.join("\n  ")
            );
        }
    }
    Ok(())
}
