//! Showing runs to a person: progress bars on a terminal, plain lines otherwise, and the
//! summary at the end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::flow::{Progress, RunSummary};
use crate::store::{Counts, RunStatus};

fn line(counts: &Counts) -> String {
    format!(
        "read {} · created {} · updated {} · unchanged {} · skipped {} · failed {}",
        counts.read,
        counts.created,
        counts.updated,
        counts.unchanged,
        counts.skipped,
        counts.failed
    )
}

/// Spinners with live counts, one per flow.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress for Bars {
    fn update(&self, flow: &str, counts: &Counts) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars.entry(flow.to_owned()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<14} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(flow.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(line(counts));
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Ok(bars) = self.bars.lock() {
            for bar in bars.values() {
                bar.finish_and_clear();
            }
        }
    }
}

/// A line every few seconds per flow while a run goes on (logs, pipes, services).
struct Lines {
    last: Mutex<HashMap<String, Instant>>,
}

impl Progress for Lines {
    fn update(&self, flow: &str, counts: &Counts) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        // The first line comes after 5 s: short runs print only their summary.
        let at = *last.entry(flow.to_owned()).or_insert(now);
        if now.duration_since(at) >= Duration::from_secs(5) {
            last.insert(flow.to_owned(), now);
            eprintln!("{flow}: {}", line(counts));
        }
    }
}

/// Progress for a command: none for `--json`, bars on a terminal, lines otherwise.
pub fn reporter(json: bool) -> Option<Arc<dyn Progress>> {
    if json {
        None
    } else if std::io::stderr().is_terminal() {
        Some(Arc::new(Bars {
            multi: MultiProgress::new(),
            bars: Mutex::default(),
        }))
    } else {
        Some(Arc::new(Lines {
            last: Mutex::default(),
        }))
    }
}

/// A run's summary for people.
pub fn summary_text(summary: &RunSummary) -> String {
    let status = match summary.status {
        RunStatus::Succeeded => "done",
        RunStatus::Partial => "done, with failures",
        RunStatus::Failed => "FAILED",
        RunStatus::Interrupted => "stopped",
        RunStatus::Running => "running",
    };
    let mut text = format!(
        "{:<13} {status} in {:.1} s: {}; {} request{} (run {})",
        summary.flow,
        summary.duration_ms as f64 / 1000.0,
        line(&summary.counts),
        summary.requests,
        if summary.requests == 1 { "" } else { "s" },
        summary.run_id
    );
    if let Some(error) = &summary.error {
        text.push_str(&format!("\n  why: {error}"));
    }
    let mut reasons: Vec<(&String, &u64)> = summary.skipped.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (reason, count) in reasons.iter().take(5) {
        text.push_str(&format!("\n  skipped {count}: {reason}"));
    }
    if reasons.len() > 5 {
        let rest: u64 = reasons[5..].iter().map(|(_, c)| **c).sum();
        text.push_str(&format!(
            "\n  skipped {rest} more, for {} other reasons",
            reasons.len() - 5
        ));
    }
    for (key, message) in &summary.failures {
        text.push_str(&format!("\n  failed {key}: {message}"));
    }
    if summary.counts.failed as usize > summary.failures.len() {
        text.push_str(&format!(
            "\n  … {} more failures; all are on the dashboard's Failed records page (/failed, served by `koppel run`; API: GET /api/v1/failed)",
            summary.counts.failed as usize - summary.failures.len()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_failures_than_shown_point_at_the_failed_records_page() {
        let summary = RunSummary {
            run_id: 7,
            flow: "orders".into(),
            status: RunStatus::Partial,
            counts: Counts {
                read: 12,
                failed: 12,
                ..Counts::default()
            },
            requests: 3,
            pages: 1,
            batches: 1,
            duration_ms: 1200,
            error: None,
            skipped: Default::default(),
            failures: vec![("1001".into(), "no delivery method".into())],
            stages: Default::default(),
        };
        let text = summary_text(&summary);
        assert!(text.contains("failed 1001: no delivery method"), "{text}");
        assert!(
            text.contains("11 more failures") && text.contains("/failed"),
            "{text}"
        );
        assert!(!text.contains("koppel failed"), "no such command: {text}");
    }
}
