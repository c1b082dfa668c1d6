//! `koppel shopware app-manifest`: the `manifest.xml` with which a shop installs koppel as a
//! Shopware app for one connection (`[shopware_app.<connection>]`), in a folder named like
//! the app, ready to zip and upload.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::server::shopware_app::manifest::{ManifestInput, manifest_xml};

/// Writes the manifest; returns where.
pub(super) fn app_manifest(args: super::AppManifestArgs) -> anyhow::Result<()> {
    let config = Config::read(&args.config.config)?;
    let connection = match &args.connection {
        Some(name) => name.clone(),
        None => {
            let mut names = config.shopware_app.keys();
            match (names.next(), names.next()) {
                (Some(only), None) => only.clone(),
                (None, _) => bail!(
                    "{}: no [shopware_app.<connection>] section; add one for the Shopware connection, with a secret of at least 32 characters (docs/dashboard.md, \"Install the Shopware app\")",
                    config.path.display()
                ),
                (Some(_), Some(_)) => bail!(
                    "{} serves several connections as a Shopware app ({}); choose one with --connection",
                    config.path.display(),
                    config
                        .shopware_app
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let Some(app) = config.shopware_app.get(&connection) else {
        bail!(
            "{}: no [shopware_app.{connection}] section (there is one for: {})",
            config.path.display(),
            config
                .shopware_app
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let Some(base_url) = args
        .url
        .clone()
        .or_else(|| config.server.public_url.clone())
    else {
        bail!(
            "the shop needs koppel's public address: set [server] public_url in {} or pass --url https://koppel.example.com",
            config.path.display()
        );
    };
    let parsed = url::Url::parse(&base_url)
        .with_context(|| format!("--url / [server] public_url {base_url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        bail!("koppel's public address must start with https:// (got {base_url:?})");
    }
    if parsed.scheme() == "http"
        && !matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    {
        eprintln!(
            "Warning: {base_url} is plain HTTP; the shop sends its API credentials to it at installation. Put koppel behind HTTPS."
        );
    }
    let secret = app
        .app_secret()
        .map_err(|m| config.error(format!("shopware_app.{connection}.secret"), m))?;
    let events = app.events();
    let xml = manifest_xml(&ManifestInput {
        name: app.name(),
        version: env!("CARGO_PKG_VERSION"),
        base_url: &base_url,
        tenant: &config.tenant,
        connection: &connection,
        app_secret: &secret,
        events: &events,
    });
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(app.name()).join("manifest.xml"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    super::init::write_private(&out, &xml).with_context(|| format!("writing {}", out.display()))?;
    let folder = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| ".".to_owned(), |d| d.display().to_string());
    println!(
        "Wrote {} for connection `{connection}` of tenant `{}` (app {}, koppel at {base_url}).\n\
         It holds the app secret: keep it private.\n\n\
         Install it in the shop (docs/dashboard.md, \"Install the Shopware app\"):\n  \
         zip -r {name}.zip {folder}     # the folder must be named {name}\n  \
         Administration → Extensions → My extensions → Upload extension, then Install and Activate\n\
         or on the shop's server: copy the folder to custom/apps/{name} and run\n  \
         bin/console app:refresh && bin/console app:install --activate {name}",
        out.display(),
        config.tenant,
        app.name(),
        name = app.name(),
    );
    Ok(())
}
