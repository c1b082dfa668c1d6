//! What the engine needs of one side of a flow: read, write and look up on a stream, and how
//! many HTTP exchanges that took. In production a connector's connection
//! ([`ConnectorSide`]: a session, renewed after a failure kills the old one); in the engine's
//! unit tests an in-memory fake, so the engine is tested without WebAssembly.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::model::Record;
use crate::runtime::bindings::{Found, Page, WriteOptions, WriteOutcome};
use crate::runtime::{CallError, Connection, Session};
use crate::store::RunSink;

/// One side of a flow, for the length of a run.
pub trait Side: Send {
    /// Makes sure the side can be used (a connector: a configured session), so that a
    /// connection that cannot start stops the run rather than failing records one by one.
    fn ready(&mut self) -> BoxFuture<'_, Result<(), CallError>>;

    /// Up to `limit` records of `stream` after `state`.
    fn read<'a>(
        &'a mut self,
        stream: &'a str,
        state: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, CallError>>;

    /// Writes `records`; one outcome per record, in order.
    fn write<'a>(
        &'a mut self,
        stream: &'a str,
        records: &'a [Record],
        options: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Vec<WriteOutcome>, CallError>>;

    /// Finds one record by the key the target knows it under.
    fn lookup<'a>(
        &'a mut self,
        stream: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, CallError>>;

    /// Another side of the same connection, with a session of its own, for a write that runs
    /// beside this side's calls. Forks share the connection's exchange count.
    fn fork(&self) -> Box<dyn Side>;

    /// HTTP exchanges with the system so far (the connection's, forks included).
    fn exchanges(&self) -> u64;
}

/// A connector's connection for one run, with a live session.
pub struct ConnectorSide {
    connection: Arc<Connection>,
    sink: Arc<RunSink>,
    session: Option<Session>,
}

impl ConnectorSide {
    pub fn new(connection: Connection, sink: Arc<RunSink>) -> ConnectorSide {
        ConnectorSide {
            connection: Arc::new(connection),
            sink,
            session: None,
        }
    }

    /// The live session, or a fresh one when there is none or the last one died.
    async fn session(&mut self) -> Result<&mut Session, CallError> {
        if self.session.as_ref().is_none_or(|s| !s.is_alive()) {
            self.session = Some(self.connection.session().await?);
        }
        Ok(self.session.as_mut().expect("just set"))
    }
}

impl Side for ConnectorSide {
    fn ready(&mut self) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move { self.session().await.map(|_| ()) })
    }

    fn read<'a>(
        &'a mut self,
        stream: &'a str,
        state: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, CallError>> {
        Box::pin(async move { self.session().await?.read(stream, state, limit).await })
    }

    fn write<'a>(
        &'a mut self,
        stream: &'a str,
        records: &'a [Record],
        options: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Vec<WriteOutcome>, CallError>> {
        Box::pin(async move { self.session().await?.write(stream, records, options).await })
    }

    fn lookup<'a>(
        &'a mut self,
        stream: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, CallError>> {
        Box::pin(async move { self.session().await?.lookup(stream, key).await })
    }

    fn fork(&self) -> Box<dyn Side> {
        Box::new(ConnectorSide {
            connection: Arc::clone(&self.connection),
            sink: Arc::clone(&self.sink),
            session: None,
        })
    }

    fn exchanges(&self) -> u64 {
        self.sink.exchanges()
    }
}
