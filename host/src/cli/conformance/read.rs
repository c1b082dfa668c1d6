//! Section 3 of the contract: `read` and state — every stream to its end, resuming from
//! its states, a stream that does not exist.

use super::*;

impl Suite {
    pub(super) fn selected(&self, stream: &str) -> bool {
        self.options.streams.is_empty() || self.options.streams.iter().any(|s| s == stream)
    }

    /// Reads `stream` from `state` to its end (or `max_records`).
    async fn read_all(
        &mut self,
        stream: &str,
        state: Option<String>,
        label: &str,
    ) -> Result<ReadResult, String> {
        let Some(mut session) = self.session(label).await else {
            return Err("no session".into());
        };
        let mut result = ReadResult::default();
        let mut state = state;
        let mut stuck = 0;
        loop {
            let page = {
                let call = session.read(stream, state.as_deref(), self.options.page_size);
                let started = Instant::now();
                let outcome = call.await;
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.report.calls += 1;
                self.report.longest_call_ms = self.report.longest_call_ms.max(ms);
                self.report.peak_memory_bytes =
                    self.report.peak_memory_bytes.max(session.peak_memory());
                outcome
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    let rule = match &error {
                        CallError::Timeout { .. } => "7.5",
                        CallError::Memory { .. } => "7.4",
                        CallError::Trap { .. } => "6.2",
                        _ => "3.2",
                    };
                    self.add(
                        rule,
                        format!("{label}: every page reads"),
                        Status::Fail,
                        format!("after {} records: {error}", result.len()),
                    );
                    return Err(error.to_string());
                }
            };
            if let Some(s) = &page.state {
                self.said.push(s.clone());
            }
            let progressed = page.state != state || !page.records.is_empty();
            result.pages.push((page.records, page.state.clone()));
            if !page.has_more {
                result.finished = true;
                break;
            }
            if page.state.is_none() {
                self.add(
                    "3.2",
                    format!("{label}: a page with more to come carries a state"),
                    Status::Fail,
                    format!(
                        "page {} has has-more but no state, so the host cannot go on",
                        result.pages.len()
                    ),
                );
                break;
            }
            stuck = if progressed { 0 } else { stuck + 1 };
            if stuck >= 3 {
                self.add(
                    "3.2",
                    format!("{label}: paging makes progress"),
                    Status::Fail,
                    "three empty pages with the same state and has-more",
                );
                break;
            }
            state = page.state;
            if result.len() >= self.options.max_records {
                break;
            }
        }
        Ok(result)
    }

    pub(super) async fn read_checks(
        &mut self,
        stream: &str,
        kind: RecordKind,
    ) -> Option<ReadResult> {
        let label = format!("read {stream}");
        let Ok(result) = self.read_all(stream, None, &label).await else {
            return None;
        };
        let limit = self.options.page_size as usize;
        let mut problems = Vec::new();
        for (i, (records, _)) in result.pages.iter().enumerate() {
            if records.len() > limit {
                problems.push(format!(
                    "page {} has {} records, the limit was {limit}",
                    i + 1,
                    records.len()
                ));
            }
            for record in records {
                if kind_of(record) != kind {
                    problems.push(format!(
                        "record {} is a {}, the stream holds {}",
                        identity(record),
                        kind_of(record).name(),
                        kind.name()
                    ));
                }
            }
        }
        self.pass_or_fail(
            "3.1",
            format!("{label}: pages hold at most `limit` records of the stream's kind"),
            problems,
            format!(
                "{} records in {} pages of at most {limit}",
                result.len(),
                result.pages.len()
            ),
        );
        if result.finished {
            self.add(
                "3.2",
                format!("{label}: paging reaches the end"),
                Status::Pass,
                format!("has-more false after {} pages", result.pages.len()),
            );
        } else if result.len() >= self.options.max_records {
            self.add(
                "3.2",
                format!("{label}: paging reaches the end"),
                Status::Skip,
                format!("stopped after {} records (--max-records)", result.len()),
            );
        }
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for record in result.records() {
            let id = identity(record);
            if id.trim().is_empty() {
                problems.push("a record with an empty key".to_owned());
            } else if !seen.insert(id.clone()) {
                problems.push(format!("{id} came twice"));
            }
        }
        self.pass_or_fail(
            "3.5",
            format!("{label}: keys are set and unique"),
            problems,
            format!("{} distinct keys", seen.len()),
        );
        let too_big: Vec<String> = result
            .pages
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .filter(|s| s.len() > 4096)
            .map(|s| format!("a state of {} bytes", s.len()))
            .collect();
        if too_big.is_empty() {
            self.add(
                "3.6",
                format!("{label}: states are small"),
                Status::Pass,
                "",
            );
        } else {
            self.add(
                "3.6",
                format!("{label}: states are small"),
                Status::Warn,
                too_big.join("; "),
            );
        }
        if result.finished && result.pages.len() >= 2 {
            self.resume_check(stream, &label, &result).await;
        } else if result.finished {
            self.add(
                "3.3",
                format!("{label}: resuming skips and repeats nothing"),
                Status::Skip,
                format!(
                    "one page only ({} records); a smaller --page-size makes more",
                    result.len()
                ),
            );
        }
        if result.finished {
            self.final_state_check(stream, &label, &result).await;
        }
        Some(result)
    }

    /// 3.3: from the state after page 1, the rest comes exactly: nothing skipped or repeated.
    async fn resume_check(&mut self, stream: &str, label: &str, first: &ReadResult) {
        let name = format!("{label}: resuming from a page's state skips and repeats nothing");
        let state = first.pages[0].1.clone();
        let Ok(rest) = self
            .read_all(stream, state, &format!("{label} (resumed)"))
            .await
        else {
            return;
        };
        let before: BTreeSet<String> = first.pages[0].0.iter().map(identity).collect();
        let expected: BTreeSet<String> = first.pages[1..]
            .iter()
            .flat_map(|(r, _)| r.iter().map(identity))
            .collect();
        let got: BTreeSet<String> = rest.records().map(identity).collect();
        let mut problems = Vec::new();
        for id in expected.difference(&got) {
            problems.push(format!("{id} was skipped"));
        }
        for id in got.intersection(&before) {
            problems.push(format!("{id} from page 1 came again"));
        }
        self.pass_or_fail(
            "3.3",
            name,
            problems,
            format!("{} records after page 1, as in the first read", got.len()),
        );
    }

    /// 3.4: from the last state, nothing already read comes again unchanged.
    async fn final_state_check(&mut self, stream: &str, label: &str, first: &ReadResult) {
        let name = format!("{label}: the last state returns nothing already returned");
        let Some(last) = first.pages.last().and_then(|(_, s)| s.clone()) else {
            self.add(
                "3.4",
                name,
                Status::Skip,
                "a full-refresh stream: its last page has no state, so the next read starts over",
            );
            return;
        };
        let Some(mut session) = self.session(label).await else {
            return;
        };
        let limit = self.options.page_size;
        let outcome = self
            .call(
                &format!("{label} (from the last state)"),
                session.read(stream, Some(&last), limit),
            )
            .await;
        let page = match outcome {
            Ok(page) => page,
            Err(error) => {
                self.add("3.4", name, Status::Fail, error.to_string());
                return;
            }
        };
        let already: BTreeMap<String, String> = first
            .records()
            .map(|r| (identity(r), serde_json::to_string(r).unwrap_or_default()))
            .collect();
        let problems: Vec<String> = page
            .records
            .iter()
            .filter(|r| {
                already.get(&identity(r)) == Some(&serde_json::to_string(r).unwrap_or_default())
            })
            .map(|r| format!("{} came again, unchanged", identity(r)))
            .collect();
        let detail = if page.records.is_empty() {
            "nothing new".to_owned()
        } else {
            format!("{} changed records", page.records.len())
        };
        self.pass_or_fail("3.4", name, problems, detail);
    }

    pub(super) async fn unsupported_check(&mut self) {
        let name = "a stream that does not exist is `unsupported`";
        let Some(mut session) = self.session("read (no such stream)").await else {
            return;
        };
        match self
            .call("read (no such stream)", session.read(NO_STREAM, None, 1))
            .await
        {
            Err(CallError::Connector(e)) if e.kind == ErrorKind::Unsupported => {
                self.add("3.7", name, Status::Pass, e.message)
            }
            Err(CallError::Connector(e)) => self.add(
                "3.7",
                name,
                Status::Fail,
                format!(
                    "wanted `unsupported`, got {}: {}",
                    kind_name(e.kind),
                    e.message
                ),
            ),
            Err(other) => self.add("3.7", name, Status::Fail, other.to_string()),
            Ok(page) => self.add(
                "3.7",
                name,
                Status::Fail,
                format!("read answered {} records", page.records.len()),
            ),
        }
    }
}
