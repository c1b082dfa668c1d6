//! Where connectors come from: the ones built into the binary (from `connectors/`), and
//! `.wasm` files in a connectors folder, which third parties drop in without touching the host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::runtime::{Connector, Runtime, RuntimeError};

/// A connector compiled into the binary.
#[derive(Debug)]
pub struct Builtin {
    pub id: &'static str,
    pub package: &'static str,
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The connectors built into this binary.
pub fn builtin() -> &'static [Builtin] {
    BUILTIN
}

pub fn builtin_by_id(id: &str) -> Option<&'static Builtin> {
    BUILTIN.iter().find(|b| b.id == id)
}

/// The folder third-party connectors are read from: `$KOPPEL_CONNECTORS_DIR`, else the user's
/// data directory (`~/.local/share/koppel/connectors`).
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("KOPPEL_CONNECTORS_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("koppel").join("connectors")))
}

/// The `.wasm` files in `dir`, sorted; none when it does not exist.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    files
}

/// The path of a test-only connector built from `tests/connectors/<id>` (for tests).
pub fn test_guest(id: &str) -> Option<&'static Path> {
    TEST_GUESTS
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, path)| Path::new(*path))
}

/// Every connector at hand: the built-in ones, then the `.wasm` files of the connectors
/// folder that load; with why each file that does not load was skipped.
pub async fn available(runtime: &Runtime) -> (Vec<Arc<Connector>>, Vec<String>) {
    let mut connectors = Vec::new();
    let mut problems = Vec::new();
    for builtin in builtin() {
        match runtime.load(builtin.id, builtin.wasm).await {
            Ok(connector) => connectors.push(connector),
            Err(error) => problems.push(error.to_string()),
        }
    }
    if let Some(dir) = default_dir() {
        for file in files_in(&dir) {
            match runtime.load_file(&file).await {
                Ok(connector) => connectors.push(connector),
                Err(error) => problems.push(error.to_string()),
            }
        }
    }
    (connectors, problems)
}

/// A connector that could not be found or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindError {
    #[error(transparent)]
    Load(#[from] RuntimeError),
    #[error(
        "no connector `{name}`: give a .wasm file, one of the built-in ids ({builtin}), or the id of a .wasm in {dir}"
    )]
    NotFound {
        name: String,
        builtin: String,
        dir: String,
    },
}

/// Loads a connector named by path, built-in id, or the id of a `.wasm` in the connectors
/// folder ([`default_dir`]).
pub async fn load(runtime: &Runtime, name: &str) -> Result<Arc<Connector>, FindError> {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "wasm") || path.exists() {
        return Ok(runtime.load_file(path).await?);
    }
    if let Some(builtin) = builtin_by_id(name) {
        return Ok(runtime.load(builtin.id, builtin.wasm).await?);
    }
    let dir = default_dir();
    if let Some(dir) = &dir {
        // By file name first (`acme.wasm`, `koppel_connector_acme.wasm`), then by manifest id.
        let files = files_in(dir);
        let stem = format!("koppel_connector_{}", name.replace('-', "_"));
        let by_name = files.iter().find(|f| {
            f.file_stem()
                .is_some_and(|s| s == name || s.to_string_lossy() == stem)
        });
        if let Some(file) = by_name {
            let connector = runtime.load_file(file).await?;
            if connector.id() == name {
                return Ok(connector);
            }
        }
        for file in &files {
            if let Ok(connector) = runtime.load_file(file).await
                && connector.id() == name
            {
                return Ok(connector);
            }
        }
    }
    Err(FindError::NotFound {
        name: name.to_owned(),
        builtin: builtin()
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>()
            .join(", "),
        dir: dir.map_or_else(
            || "the connectors folder".to_owned(),
            |d| d.display().to_string(),
        ),
    })
}
