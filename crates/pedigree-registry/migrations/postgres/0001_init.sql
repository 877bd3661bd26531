-- pedigree registry, initial schema (PostgreSQL; the same tables as migrations/sqlite, with
-- BIGINT for every integer because sqlx's Any driver decodes integers as i64). Times are unix milliseconds.

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,            -- public part of the token, "pdg_<id>_<secret>"
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL,               -- argon2id PHC string of the secret part
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE grants (
    token_id    TEXT NOT NULL REFERENCES tokens(id),
    role        TEXT NOT NULL,               -- admin | approver | publisher | reader
    namespace   TEXT NOT NULL,               -- '*' for every namespace
    PRIMARY KEY (token_id, role, namespace)
);

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,            -- sha256:<hex>
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE uploads (                       -- resumable chunked uploads in progress
    id          TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE models (
    id          BIGSERIAL PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (namespace, name)
);

CREATE TABLE versions (
    id          BIGSERIAL PRIMARY KEY,
    model_id    BIGINT NOT NULL REFERENCES models(id),
    version     TEXT NOT NULL,
    state       TEXT NOT NULL,               -- quarantined | approved | rejected | held
    identity    TEXT,                        -- OMS root digest, once analysed
    publisher   TEXT NOT NULL,               -- token id that pushed it
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT,
    decision    TEXT,                        -- JSON: outcome and reasons with rule ids
    UNIQUE (model_id, version)
);
CREATE INDEX versions_by_identity ON versions(identity);
CREATE INDEX versions_by_state ON versions(state);

CREATE TABLE version_files (
    version_id  BIGINT NOT NULL REFERENCES versions(id),
    path        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (version_id, path)
);

CREATE TABLE reports (                       -- analysis results: scan, fingerprint, bom, signature, card
    version_id  BIGINT NOT NULL REFERENCES versions(id),
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (version_id, kind)
);

CREATE TABLE lineage_edges (
    rowid_      BIGSERIAL PRIMARY KEY,        -- increasing in commit order (edges are inserted only under
                                             -- the registry's advisory lock): caches load by high-water mark
    parent      BIGINT NOT NULL REFERENCES versions(id),
    child       BIGINT NOT NULL REFERENCES versions(id),
    source      TEXT NOT NULL,               -- declared | inferred | signed
    relation    TEXT NOT NULL,
    confidence  DOUBLE PRECISION NOT NULL,
    evidence    TEXT NOT NULL,               -- JSON
    UNIQUE (parent, child, source)
);
CREATE INDEX lineage_by_child ON lineage_edges(child);

CREATE TABLE advisories (
    id          TEXT PRIMARY KEY,
    severity    TEXT NOT NULL,
    summary     TEXT NOT NULL,
    trigger_    TEXT,
    source      TEXT NOT NULL,               -- local | imported
    body        TEXT NOT NULL,               -- JSON, the feed form
    created_at  BIGINT NOT NULL,
    withdrawn_at BIGINT,
    withdrawn_reason TEXT
);

-- No foreign keys here, unlike SQLite: a flag writes one row per affected version (100k for a
-- popular base), and PostgreSQL checks a foreign key with one trigger call per row, which made
-- the flag commit 4x slower. The ids cannot dangle: they come from the lineage graph, whose edges
-- are foreign-key checked, and the advisory is inserted in the same transaction; versions and
-- advisories are never deleted.
CREATE TABLE flags (                          -- current state: a version flagged directly or at risk through lineage
    version_id  BIGINT NOT NULL,
    advisory_id TEXT NOT NULL,
    kind        TEXT NOT NULL,               -- flagged | at_risk
    via         BIGINT,                     -- parent it inherited the risk from
    depth       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (version_id, advisory_id)
);
CREATE INDEX flags_by_advisory ON flags(advisory_id);

CREATE TABLE deployments (
    name        TEXT NOT NULL,
    environment TEXT NOT NULL,
    version_id  BIGINT NOT NULL REFERENCES versions(id),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (name, environment)
);
CREATE INDEX deployments_by_version ON deployments(version_id);

CREATE TABLE jobs (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,               -- ingest
    version_id  BIGINT NOT NULL,
    state       TEXT NOT NULL,               -- queued | running | done | failed
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX jobs_by_state ON jobs(state, id);

CREATE TABLE webhooks (
    id          BIGSERIAL PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    events      TEXT NOT NULL,               -- comma-separated event names, or '*'
    created_at  BIGINT NOT NULL
);

CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    webhook_id  BIGINT NOT NULL REFERENCES webhooks(id),
    event       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    delivered_at BIGINT,
    failed_at   BIGINT,
    last_error  TEXT
);
CREATE INDEX outbox_pending ON outbox(delivered_at, failed_at, next_at);

CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev        TEXT NOT NULL,
    hash        TEXT NOT NULL
);
