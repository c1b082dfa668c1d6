-- The dashboard, monitoring and retention: API tokens, runtime overrides of flows, incidents
-- with their notifications, and the retention purge's bookkeeping. Every row has its tenant.

-- API tokens: only a SHA-256 of each token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    hash         TEXT PRIMARY KEY,        -- hex SHA-256 of the token
    tenant       TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant);

-- Enable/disable and interval set from the dashboard; they win over koppel.toml.
CREATE TABLE flow_overrides (
    tenant        TEXT NOT NULL,
    flow          TEXT NOT NULL,
    enabled       INTEGER,                -- NULL: as configured
    interval_secs INTEGER,                -- NULL: as configured
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, flow)
);

-- Something a person must know about: a flow failed, records keep failing, a flow has not
-- succeeded for too long. At most one open incident per (tenant, flow, kind).
CREATE TABLE incidents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    flow         TEXT NOT NULL,
    kind         TEXT NOT NULL,           -- flow-failed | records-failing | stale
    message      TEXT NOT NULL,
    run_id       INTEGER,
    opened_at    INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    resolved_at  INTEGER,
    resolution   TEXT
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (tenant, flow, kind) WHERE resolved_at IS NULL;
CREATE INDEX incidents_by_tenant ON incidents (tenant, id DESC);

-- Every notification sent (or tried) about an incident.
CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    incident_id  INTEGER NOT NULL,
    event        TEXT NOT NULL,           -- opened | resolved
    channel      TEXT NOT NULL,           -- webhook | email
    ok           INTEGER NOT NULL,
    error        TEXT,
    at           INTEGER NOT NULL
);
CREATE INDEX notifications_by_incident ON notifications (tenant, incident_id);

-- Where the retention purge and the masking of personal fields have got to.
CREATE TABLE retention_state (
    tenant           TEXT PRIMARY KEY,
    masked_upto      INTEGER NOT NULL DEFAULT 0,   -- activity.id
    purged_before    INTEGER NOT NULL DEFAULT 0,   -- activity.at of the last cutoff
    purged_runs_upto INTEGER NOT NULL DEFAULT 0    -- runs.id
);

-- Each purge and what it removed (the rows and counts themselves stay).
CREATE TABLE purges (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    at              INTEGER NOT NULL,
    cutoff          INTEGER NOT NULL,
    activity_rows   INTEGER NOT NULL,
    record_rows     INTEGER NOT NULL,
    failed_rows     INTEGER NOT NULL
);
CREATE INDEX purges_by_tenant ON purges (tenant, id DESC);

-- The activity log newest first (the other indexes would make SQLite sort every row).
CREATE INDEX activity_by_tenant ON activity (tenant, id);
-- /metrics counts exchanges by connector and status without touching the bodies.
CREATE INDEX activity_by_connector_status ON activity (tenant, connector, status);
