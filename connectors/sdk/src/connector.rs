//! The skeleton every connector shares: `configure` builds an instance, and `read`, `write`
//! and `lookup` use it. Implement [`Connector`] and export it with
//! [`export_connector!`](crate::export_connector); the macro writes the contract's glue (the
//! per-instance state, the config conversion, "configure was not called first").

use crate::{
    Config, ConnectorError, Found, Manifest, Page, Record, Result, Settings, TypedKey,
    WriteOptions, WriteOutcome,
};

/// A connector: its manifest, its `check`, and what one configured instance does.
///
/// Calls come one at a time (an instance is single-threaded), `configure` first: the host
/// calls it once per fresh instance with the connection's config, then `read`, `write` and
/// `lookup` as a flow needs them.
pub trait Connector {
    /// What `configure` builds from the config and every later call uses (the settings, a
    /// client, caches of reference data).
    type Instance;

    /// Who the connector is, its streams, its config keys (secrets marked) and the hosts it
    /// may reach (contract section 1).
    fn manifest() -> Manifest;

    /// Which config keys are tables, lists, numbers or booleans (contract 0.1.1), so users
    /// write them as plain TOML. Default: none beyond what their kinds imply.
    fn config_types() -> Vec<TypedKey> {
        Vec::new()
    }

    /// One cheap authenticated call: are the credentials accepted, is the system there
    /// (contract section 2). Runs without `configure`.
    fn check(config: Settings) -> Result<()>;

    /// Builds the instance from the connection's config; a wrong config is a `config` error
    /// naming the key.
    fn configure(config: Settings) -> Result<Self::Instance>;

    /// Up to `limit` records of `stream` after `state` (contract section 3).
    fn read(
        instance: &mut Self::Instance,
        stream: &str,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Page> {
        let _ = (instance, state, limit);
        Err(unsupported(stream, "read"))
    }

    /// Writes records, one outcome per record in order (contract section 4).
    fn write(
        instance: &mut Self::Instance,
        stream: &str,
        records: Vec<Record>,
        options: &WriteOptions,
    ) -> Result<Vec<WriteOutcome>> {
        let _ = (instance, records, options);
        Err(unsupported(stream, "written"))
    }

    /// Finds one record by key (contract section 5).
    fn lookup(instance: &mut Self::Instance, stream: &str, key: &str) -> Result<Option<Found>> {
        let _ = (instance, key);
        Err(unsupported(stream, "looked up"))
    }
}

/// The error for a stream this connector does not have, or cannot use that way.
pub fn unsupported(stream: &str, how: &str) -> ConnectorError {
    ConnectorError::unsupported(format!(
        "stream `{stream}` cannot be {how} by this connector"
    ))
}

/// What the generated glue calls before `configure`: the instance is not there yet.
pub fn not_configured() -> ConnectorError {
    ConnectorError::internal("configure was not called first")
}

/// The config as the SDK reads it.
pub fn settings(config: Config) -> Settings {
    Settings::from(config)
}

/// Exports a [`Connector`] as the component's connector, with the glue every connector
/// needs: `koppel_sdk::export_connector!(MyConnector);`.
///
/// The export exists only when building for `wasm32` (see [`export!`](crate::export)).
#[macro_export]
macro_rules! export_connector {
    ($connector:ident) => {
        const _: () = {
            use ::std::cell::RefCell;
            use $crate::connector::Connector as _;

            type Instance = <$connector as $crate::connector::Connector>::Instance;

            ::std::thread_local! {
                static INSTANCE: RefCell<Option<Instance>> = const { RefCell::new(None) };
            }

            fn with_instance<R>(
                f: impl FnOnce(&mut Instance) -> $crate::Result<R>,
            ) -> $crate::Result<R> {
                INSTANCE.with(|cell| match cell.borrow_mut().as_mut() {
                    Some(instance) => f(instance),
                    None => Err($crate::connector::not_configured()),
                })
            }

            impl $crate::Guest for $connector {
                fn manifest() -> $crate::Manifest {
                    <$connector as $crate::connector::Connector>::manifest()
                }

                fn check(config: $crate::Config) -> $crate::Result<()> {
                    <$connector as $crate::connector::Connector>::check(
                        $crate::connector::settings(config),
                    )
                }

                fn configure(config: $crate::Config) -> $crate::Result<()> {
                    let instance = <$connector as $crate::connector::Connector>::configure(
                        $crate::connector::settings(config),
                    )?;
                    INSTANCE.with(|cell| *cell.borrow_mut() = Some(instance));
                    Ok(())
                }

                fn read(
                    stream: ::std::string::String,
                    state: ::std::option::Option<::std::string::String>,
                    limit: u32,
                ) -> $crate::Result<$crate::Page> {
                    with_instance(|instance| {
                        <$connector as $crate::connector::Connector>::read(
                            instance,
                            &stream,
                            state.as_deref(),
                            limit,
                        )
                    })
                }

                fn write(
                    stream: ::std::string::String,
                    records: ::std::vec::Vec<$crate::Record>,
                    options: $crate::WriteOptions,
                ) -> $crate::Result<::std::vec::Vec<$crate::WriteOutcome>> {
                    with_instance(|instance| {
                        <$connector as $crate::connector::Connector>::write(
                            instance, &stream, records, &options,
                        )
                    })
                }

                fn lookup(
                    stream: ::std::string::String,
                    key: ::std::string::String,
                ) -> $crate::Result<::std::option::Option<$crate::Found>> {
                    with_instance(|instance| {
                        <$connector as $crate::connector::Connector>::lookup(
                            instance, &stream, &key,
                        )
                    })
                }
            }

            fn config_types() -> ::std::vec::Vec<$crate::TypedKey> {
                <$connector as $crate::connector::Connector>::config_types()
            }
            $crate::export!($connector, config_types = config_types);
        };
    };
}
