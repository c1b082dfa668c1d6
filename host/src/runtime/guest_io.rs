//! Guest stdout and stderr: never inherited, forwarded line by line to the host log
//! (redacted, capped), with the last lines of stderr kept to explain a crash.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::host::CallContext;

/// Most bytes of output one instance may produce before the rest is dropped.
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Lines of stderr kept for crash reports.
const TAIL_LINES: usize = 8;

#[derive(Default)]
struct State {
    partial: Vec<u8>,
    written: usize,
    tail: VecDeque<String>,
    dropped: bool,
}

/// One of a guest's output streams.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    name: &'static str,
    ctx: Arc<CallContext>,
    state: Arc<Mutex<State>>,
}

impl GuestOutput {
    pub(crate) fn new(name: &'static str, ctx: Arc<CallContext>) -> Self {
        GuestOutput {
            name,
            ctx,
            state: Arc::default(),
        }
    }

    /// The last lines written, oldest first (including an unfinished one).
    pub(crate) fn tail(&self) -> Vec<String> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut lines: Vec<String> = state.tail.iter().cloned().collect();
        if !state.partial.is_empty() {
            lines.push(
                self.ctx
                    .redactor
                    .text(&String::from_utf8_lossy(&state.partial)),
            );
        }
        lines
    }

    fn emit(&self, line: &str) {
        let line = self.ctx.redactor.text(line);
        tracing::info!(
            target: "koppel::guest",
            tenant = %self.ctx.tenant, connection = %self.ctx.connection, stream = self.name,
            "{line}"
        );
        if let Ok(mut state) = self.state.lock() {
            if state.tail.len() == TAIL_LINES {
                state.tail.pop_front();
            }
            state.tail.push_back(line);
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut lines = Vec::new();
        {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if state.written >= MAX_OUTPUT_BYTES {
                if !state.dropped {
                    state.dropped = true;
                    tracing::warn!(connection = %self.ctx.connection, stream = self.name, "Guest output over 1 MiB; the rest is dropped.");
                }
                return;
            }
            state.written += bytes.len();
            state.partial.extend_from_slice(bytes);
            while let Some(end) = state.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = state.partial.drain(..=end).collect();
                lines.push(
                    String::from_utf8_lossy(&line[..line.len() - 1])
                        .trim_end_matches('\r')
                        .to_owned(),
                );
            }
        }
        for line in lines {
            self.emit(&line);
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    /// The stream itself, not wasmtime-wasi's worker adapter, whose debug log would print
    /// the guest's bytes before redaction.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
