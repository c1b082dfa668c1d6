//! Components are compiled once: the machine code is kept on disk, keyed by the component's
//! content hash and the engine's compatibility hash, so a restart loads it in microseconds
//! instead of compiling again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How components were obtained, since the runtime started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Compiled from WebAssembly (slow).
    pub compiled: u64,
    /// Loaded precompiled from the cache (fast).
    pub loaded: u64,
}

pub(crate) struct CompileCache {
    dir: Option<PathBuf>,
    /// Changes whenever the wasmtime version or an engine setting that affects code changes.
    engine_key: String,
    compiled: AtomicU64,
    loaded: AtomicU64,
}

/// The hex SHA-256 of a component's bytes: its identity.
pub fn content_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl CompileCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        if let Some(dir) = &dir
            && let Err(error) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), %error, "Cannot create the compile cache; components will be compiled at every start.");
        }
        CompileCache {
            dir,
            engine_key,
            compiled: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
        }
    }

    fn path(&self, hash: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(format!("{hash}-{}.cwasm", self.engine_key)),
        )
    }

    /// The component for `wasm`, from the cache when it is there.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        hash: &str,
    ) -> wasmtime::Result<Component> {
        if let Some(path) = self.path(hash)
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration (the name carries the engine's compatibility hash) into koppel's own
            // cache directory; wasmtime checks the header and version again on load.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    self.loaded.fetch_add(1, Ordering::Relaxed);
                    return Ok(component);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "Ignoring an unusable cached component.");
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = self.path(hash) {
            match component.serialize() {
                Ok(bytes) => write_atomically(&path, &bytes),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "Cannot serialise a compiled component.")
                }
            }
        }
        Ok(component)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), %error, "Cannot write to the compile cache.");
    }
}
