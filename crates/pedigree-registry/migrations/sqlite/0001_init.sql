-- pedigree registry, initial schema (SQLite). Times are unix milliseconds.

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,            -- public part of the token, "pdg_<id>_<secret>"
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL,               -- argon2id PHC string of the secret part
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE grants (
    token_id    TEXT NOT NULL REFERENCES tokens(id),
    role        TEXT NOT NULL,               -- admin | approver | publisher | reader
    namespace   TEXT NOT NULL,               -- '*' for every namespace
    PRIMARY KEY (token_id, role, namespace)
);

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,            -- sha256:<hex>
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE uploads (                       -- resumable chunked uploads in progress
    id          TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (namespace, name)
);

CREATE TABLE versions (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id),
    version     TEXT NOT NULL,
    state       TEXT NOT NULL,               -- quarantined | approved | rejected | held
    identity    TEXT,                        -- OMS root digest, once analysed
    publisher   TEXT NOT NULL,               -- token id that pushed it
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER,
    decision    TEXT,                        -- JSON: outcome and reasons with rule ids
    UNIQUE (model_id, version)
);
CREATE INDEX versions_by_identity ON versions(identity);
CREATE INDEX versions_by_state ON versions(state);

CREATE TABLE version_files (
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    path        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (version_id, path)
);

CREATE TABLE reports (                       -- analysis results: scan, fingerprint, bom, signature, card
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (version_id, kind)
);

CREATE TABLE lineage_edges (
    rowid_      INTEGER PRIMARY KEY,          -- monotonically increasing: graph caches load by high-water mark
    parent      INTEGER NOT NULL REFERENCES versions(id),
    child       INTEGER NOT NULL REFERENCES versions(id),
    source      TEXT NOT NULL,               -- declared | inferred | signed
    relation    TEXT NOT NULL,
    confidence  REAL NOT NULL,
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
    created_at  INTEGER NOT NULL,
    withdrawn_at INTEGER,
    withdrawn_reason TEXT
);

CREATE TABLE flags (                          -- current state: a version flagged directly or at risk through lineage
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    advisory_id TEXT NOT NULL REFERENCES advisories(id),
    kind        TEXT NOT NULL,               -- flagged | at_risk
    via         INTEGER,                     -- parent it inherited the risk from
    depth       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (version_id, advisory_id)
);
CREATE INDEX flags_by_advisory ON flags(advisory_id);

CREATE TABLE deployments (
    name        TEXT NOT NULL,
    environment TEXT NOT NULL,
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, environment)
);
CREATE INDEX deployments_by_version ON deployments(version_id);

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,               -- ingest
    version_id  INTEGER NOT NULL,
    state       TEXT NOT NULL,               -- queued | running | done | failed
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX jobs_by_state ON jobs(state, id);

CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    events      TEXT NOT NULL,               -- comma-separated event names, or '*'
    created_at  INTEGER NOT NULL
);

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks(id),
    event       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at   INTEGER,
    last_error  TEXT
);
CREATE INDEX outbox_pending ON outbox(delivered_at, failed_at, next_at);

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev        TEXT NOT NULL,
    hash        TEXT NOT NULL
);
