-- Resumable uploads whose state lives here rather than in the API process that started them,
-- so any process behind a load balancer can take any chunk and the completion.
--
-- Sessions from before this migration kept their bytes and running hash in one process's
-- data directory, which the new code does not read; they are dropped (a client restarts them).
DELETE FROM uploads;

ALTER TABLE uploads ADD COLUMN size INTEGER NOT NULL DEFAULT 0;        -- bytes acknowledged
ALTER TABLE uploads ADD COLUMN declared_size INTEGER;                  -- announced at start, if any
ALTER TABLE uploads ADD COLUMN digest TEXT;                           -- announced at start, if any
ALTER TABLE uploads ADD COLUMN store_key TEXT NOT NULL DEFAULT '';    -- where the blob store keeps the bytes
ALTER TABLE uploads ADD COLUMN store_upload_id TEXT;                  -- S3 multipart upload id
ALTER TABLE uploads ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;  -- last chunk (expiry)

CREATE TABLE upload_chunks (
    upload_id    TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,             -- 0, 1, …; the S3 part number is seq + 1
    start_offset INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    hash_state   TEXT NOT NULL,                -- SHA-256 state after this chunk (upload_hash.rs)
    etag         TEXT,                         -- S3 part ETag
    PRIMARY KEY (upload_id, seq)               -- two processes cannot both commit chunk n
);

CREATE INDEX uploads_updated ON uploads (updated_at);
