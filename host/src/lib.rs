//! koppel keeps a shop's systems in step: a host for sandboxed WebAssembly connectors and
//! the flows between them.
//!
//! Start reading at `ARCHITECTURE.md` in the repository root. Modules:
//! - [`config`]: `koppel.toml`, read in one place; each module below receives its section;
//! - [`runtime`]: the component host (wasmtime), its host imports and limits;
//! - [`connectors`]: where connectors come from (built in, or `.wasm` files in a folder);
//! - [`app`]: one koppel wired (store, runtime, connectors; the schedule and the server);
//! - [`cli`]: the `koppel` command.

pub mod app;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod flow;
pub mod hosting;
pub mod mapping;
pub mod model;
pub mod notify;
pub mod runtime;
pub mod server;
pub mod signature;
pub mod store;
