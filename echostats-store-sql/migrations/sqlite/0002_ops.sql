-- Spotify tokens, sync/import jobs and the log of outbound API calls. Times are epoch
-- milliseconds.

CREATE TABLE user_tokens (
    user_id     TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed by the caller (AES-GCM); never readable here.
    ciphertext  BLOB NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE sync_jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    job_type         TEXT NOT NULL,
    status           TEXT NOT NULL,
    items_processed  INTEGER NOT NULL,
    items_total      INTEGER NOT NULL,
    error_message    TEXT,
    -- JSON array of JobStep.
    steps            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER,
    -- "user_id/job_type" while an exclusive job is active, NULL otherwise: at most one
    -- active exclusive job per user and type, enforced by the unique constraint.
    active_key       TEXT UNIQUE
);
CREATE INDEX sync_jobs_user_created ON sync_jobs (user_id, created_at, id);
CREATE INDEX sync_jobs_created ON sync_jobs (created_at);

CREATE TABLE api_logs (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT,
    service      TEXT NOT NULL,
    method       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    status_code  INTEGER NOT NULL,
    latency_ms   REAL NOT NULL,
    error        TEXT,
    ts           INTEGER NOT NULL
);
CREATE INDEX api_logs_user_ts ON api_logs (user_id, ts, id);
CREATE INDEX api_logs_ts ON api_logs (ts);
