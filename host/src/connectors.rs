//! Where connectors come from: the ones built into the binary (from `connectors/`), and
//! `.wasm` files in a connectors folder, which third parties drop in without touching the host.

use std::path::{Path, PathBuf};

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
