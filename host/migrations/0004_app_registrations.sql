-- Shops registered with koppel as the backend of a Shopware app, one per tenant and
-- connection. The shop secret (which signs the shop's calls) and the credentials the shop
-- handed over are sealed (ChaCha20-Poly1305, a key derived from the app secret in
-- koppel.toml), so a copy of the database alone opens neither.
CREATE TABLE app_registrations (
    tenant        TEXT NOT NULL,
    connection    TEXT NOT NULL,
    shop_id       TEXT NOT NULL,
    shop_url      TEXT NOT NULL,
    shop_secret   BLOB NOT NULL,
    credentials   BLOB,
    registered_at INTEGER NOT NULL,
    confirmed_at  INTEGER,
    PRIMARY KEY (tenant, connection)
);
