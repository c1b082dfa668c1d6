//! Section 5 of the contract: `lookup`.

use super::*;

impl Suite {
    pub(super) async fn lookup_checks(&mut self, stream: &str, read: Option<&ReadResult>) {
        let label = format!("lookup {stream}");
        let Some(mut session) = self.session(&label).await else {
            return;
        };
        let (record, how) = match read.and_then(|r| r.records().next()) {
            Some(record) => (Some(record.clone()), "read"),
            None => (self.written.get(stream).cloned(), "written"),
        };
        match record {
            Some(record) => {
                // Customers are looked up by e-mail (wit/connector.wit), everything else by key.
                let key = match &record {
                    Record::Customer(c) => c.email.clone(),
                    other => key_of(other).to_owned(),
                };
                let name = format!("{label}: a key that was {how} is found");
                match self.call(&label, session.lookup(stream, &key)).await {
                    Ok(Some(found)) => {
                        self.add("5.1", name, Status::Pass, format!("{key} → {}", found.id))
                    }
                    Ok(None) => self.add("5.1", name, Status::Fail, format!("{key} was not found")),
                    Err(error) => self.add("5.1", name, Status::Fail, error.to_string()),
                }
            }
            None => self.add(
                "5.1",
                format!("{label}: a key the stream holds is found"),
                Status::Skip,
                "nothing read from or written to this stream",
            ),
        }
        let name = format!("{label}: a key that does not exist is none, not an error");
        match self.call(&label, session.lookup(stream, MISSING_KEY)).await {
            Ok(None) => self.add("5.2", name, Status::Pass, ""),
            Ok(Some(found)) => self.add(
                "5.2",
                name,
                Status::Fail,
                format!("{MISSING_KEY} was found as {}", found.id),
            ),
            Err(error) => self.add("5.2", name, Status::Fail, error.to_string()),
        }
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(session.peak_memory());
    }
}
