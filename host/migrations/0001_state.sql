-- koppel's state. Every row belongs to a tenant; every query filters by it.

CREATE TABLE connections (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    connector   TEXT NOT NULL,
    -- The config with secrets shown as "<set>": the values live in koppel.toml or the environment.
    config      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE flows (
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    interval_secs INTEGER NOT NULL,
    definition    TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    flow         TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    full         INTEGER NOT NULL,
    status       TEXT NOT NULL,          -- running | succeeded | partial | failed | interrupted
    started_at   INTEGER NOT NULL,       -- unix milliseconds
    finished_at  INTEGER,
    read         INTEGER NOT NULL DEFAULT 0,
    created      INTEGER NOT NULL DEFAULT 0,
    updated      INTEGER NOT NULL DEFAULT 0,
    unchanged    INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    requests     INTEGER NOT NULL DEFAULT 0,
    error        TEXT
);
CREATE INDEX runs_by_flow ON runs (tenant, flow, id DESC);

-- The source cursor of a flow. It advances only in the transaction that records what the
-- target acknowledged for the records before it.
CREATE TABLE stream_states (
    tenant     TEXT NOT NULL,
    flow       TEXT NOT NULL,
    state      TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, flow)
);

-- Source key <-> target id, and the hash of what was last written for it.
CREATE TABLE id_map (
    tenant     TEXT NOT NULL,
    flow       TEXT NOT NULL,
    key        TEXT NOT NULL,
    target_id  TEXT,
    hash       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, flow, key)
);

-- Records that must reach the target exactly once (orders): an intent is written before the
-- target is asked, and settled after.
CREATE TABLE ledger (
    tenant     TEXT NOT NULL,
    flow       TEXT NOT NULL,
    key        TEXT NOT NULL,
    status     TEXT NOT NULL,            -- pending | done
    target_id  TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, flow, key)
);

CREATE TABLE failed_records (
    tenant           TEXT NOT NULL,
    flow             TEXT NOT NULL,
    key              TEXT NOT NULL,
    record           TEXT NOT NULL,      -- the source record as read, JSON
    error            TEXT NOT NULL,
    field            TEXT,
    stage            TEXT NOT NULL,      -- mapping | writing
    retryable        INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    first_failed_at  INTEGER NOT NULL,
    last_failed_at   INTEGER NOT NULL,
    last_run         INTEGER,
    dismissed        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, flow, key)
);

-- What happened to each record in a run, with the payloads read and written.
CREATE TABLE run_records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    flow       TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    TEXT NOT NULL,            -- created | updated | unchanged | skipped | failed
    message    TEXT,
    field      TEXT,
    target_id  TEXT,
    source     TEXT,                     -- JSON as read (purged after the retention period)
    target     TEXT,                     -- JSON as written (purged after the retention period)
    at         INTEGER NOT NULL
);
CREATE INDEX run_records_by_run ON run_records (tenant, run_id);
CREATE INDEX run_records_by_key ON run_records (tenant, flow, key, id DESC);

-- Every HTTP exchange of a connector, as the runtime recorded it (redacted).
CREATE TABLE activity (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL,
    run_id           INTEGER,
    connection       TEXT NOT NULL,
    connector        TEXT NOT NULL,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    status           INTEGER,
    error            TEXT,
    duration_ms      INTEGER NOT NULL,
    attempt          INTEGER NOT NULL,
    request_headers  TEXT,
    request_body     TEXT,
    response_headers TEXT,
    response_body    TEXT,
    request_bytes    INTEGER NOT NULL,
    response_bytes   INTEGER NOT NULL,
    at               INTEGER NOT NULL
);
CREATE INDEX activity_by_run ON activity (tenant, run_id);
CREATE INDEX activity_by_time ON activity (tenant, at);

CREATE TABLE kv (
    tenant     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (tenant, scope, key)
);
