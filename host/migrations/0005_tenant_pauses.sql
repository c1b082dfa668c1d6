-- Hosted tenants the operator paused (`POST /api/v1/admin/tenants/{name}/pause`): their flows
-- do not run, across restarts, until resumed. Their dashboards stay.
CREATE TABLE tenant_pauses (
    tenant    TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL
);
