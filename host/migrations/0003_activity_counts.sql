-- Exchanges per tenant, connector and status, kept as the activity log is written, so that
-- /metrics does not count a million activity rows on each scrape. Status 0: no answer.
CREATE TABLE activity_counts (
    tenant    TEXT NOT NULL,
    connector TEXT NOT NULL,
    status    INTEGER NOT NULL,
    exchanges INTEGER NOT NULL,
    PRIMARY KEY (tenant, connector, status)
);

INSERT INTO activity_counts (tenant, connector, status, exchanges)
SELECT tenant, connector, COALESCE(status, 0), COUNT(*) FROM activity
GROUP BY tenant, connector, COALESCE(status, 0);
