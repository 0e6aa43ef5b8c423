-- Spotify tokens, sync/import jobs and the log of outbound API calls. Times are epoch
-- milliseconds.

CREATE TABLE user_tokens (
    user_id     TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed by the caller (AES-GCM); never readable here.
    ciphertext  BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE sync_jobs (
    id               TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    job_type         TEXT NOT NULL,
    status           TEXT NOT NULL,
    items_processed  BIGINT NOT NULL,
    items_total      BIGINT NOT NULL,
    error_message    TEXT,
    -- JSON array of JobStep.
    steps            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT,
    -- "user_id/job_type" while an exclusive job is active, NULL otherwise: at most one
    -- active exclusive job per user and type, enforced by the unique constraint.
    active_key       TEXT UNIQUE
);
CREATE INDEX sync_jobs_user_created ON sync_jobs (user_id, created_at, id);
CREATE INDEX sync_jobs_created ON sync_jobs (created_at);

CREATE TABLE api_logs (
    id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id      TEXT,
    service      TEXT NOT NULL,
    method       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    status_code  BIGINT NOT NULL,
    latency_ms   DOUBLE PRECISION NOT NULL,
    error        TEXT,
    ts           BIGINT NOT NULL
);
CREATE INDEX api_logs_user_ts ON api_logs (user_id, ts, id);
CREATE INDEX api_logs_ts ON api_logs (ts);
