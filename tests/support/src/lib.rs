//! What koppel's tests and benches share, once: a reqwest client builder, and (feature
//! `host`) a connector runtime on the test component cache, an environment of two fixture
//! connections, and record builders.

/// A reqwest client builder. In this workspace reqwest's TLS comes without a crypto provider
/// (the host installs ring's), so whoever builds a client first installs it.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

#[cfg(feature = "host")]
mod host;
#[cfg(feature = "host")]
pub use host::{fixture, fixture_environment, runtime, stock_level, whole};
#[cfg(feature = "host")]
pub mod hosting;
