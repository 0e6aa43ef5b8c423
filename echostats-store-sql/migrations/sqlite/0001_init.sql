-- EchoStats schema, SQLite dialect. Timestamps are epoch milliseconds, days are days
-- since 1970-01-01, booleans are 0/1. Text compares with BINARY (byte-wise, like
-- Rust's String ordering).

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    spotify_id    TEXT,
    display_name  TEXT,
    image_url     TEXT,
    product       TEXT,
    -- RFC 3339 with full precision, so the value reads back exactly.
    created_at    TEXT NOT NULL
);

-- The play rules the stored `counted` flags and aggregates were computed with.
CREATE TABLE user_rules (
    user_id              TEXT PRIMARY KEY NOT NULL,
    min_play_ms          INTEGER NOT NULL,
    duplicate_window_ms  INTEGER NOT NULL
);

CREATE TABLE plays (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id                  TEXT NOT NULL,
    played_at                INTEGER NOT NULL,
    ms_played                INTEGER NOT NULL,
    kind                     INTEGER NOT NULL,
    origin                   INTEGER NOT NULL,
    counted                  INTEGER NOT NULL,
    uri                      TEXT,
    track_name               TEXT,
    artist_name              TEXT,
    album_name               TEXT,
    artist_id                TEXT,
    episode_name             TEXT,
    show_name                TEXT,
    audiobook_title          TEXT,
    audiobook_uri            TEXT,
    audiobook_chapter_title  TEXT,
    platform                 TEXT,
    conn_country             TEXT,
    reason_start             TEXT,
    reason_end               TEXT,
    shuffle                  INTEGER,
    skipped                  INTEGER,
    offline                  INTEGER,
    offline_timestamp        INTEGER,
    incognito                INTEGER,
    context_type             TEXT,
    context_uri              TEXT,
    -- Derived from the fields above (PlayRecord::keys, normalize_name).
    track_key                TEXT,
    artist_key               TEXT,
    album_key                TEXT,
    artist_norm              TEXT,
    track_norm               TEXT,
    show_key                 TEXT
);

-- One covering index led by time: imports are chronological, so inserts append to it
-- (separate indexes on artist/track names get random inserts, which cost more than
-- half of an import's time on large histories). History filters, counts and the
-- windowed rankings are evaluated inside the index: a scan of the user's index entries
-- (~50 ms per million plays) instead of an index seek. The rowid (id) is implicitly its
-- last column.
CREATE INDEX plays_user_time ON plays (user_id, played_at, kind, counted, artist_norm, track_norm);

CREATE TABLE rollup_days (
    user_id  TEXT NOT NULL,
    day      INTEGER NOT NULL,
    plays    INTEGER NOT NULL,
    ms       INTEGER NOT NULL,
    -- RollupDay::encode_slots
    slots    BLOB NOT NULL,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

CREATE TABLE item_totals (
    user_id      TEXT NOT NULL,
    kind         INTEGER NOT NULL,
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    artist_name  TEXT,
    spotify_id   TEXT,
    plays        INTEGER NOT NULL,
    ms           INTEGER NOT NULL,
    -- Id of the first counted play of the item (name and artist_name come from it).
    first_id     INTEGER,
    -- Id of the first counted play of the item that has a Spotify id (spotify_id comes from it).
    sid_id       INTEGER,
    PRIMARY KEY (user_id, kind, key)
) WITHOUT ROWID;

CREATE INDEX item_totals_rank ON item_totals (user_id, kind, plays DESC, ms DESC, name, key);

CREATE TABLE tracks (
    spotify_id        TEXT PRIMARY KEY NOT NULL,
    -- The Track as JSON, without audio features (kept in REAL columns so they read back exactly).
    json              TEXT NOT NULL,
    danceability      REAL,
    energy            REAL,
    valence           REAL,
    acousticness      REAL,
    instrumentalness  REAL,
    liveness          REAL,
    speechiness       REAL,
    tempo             REAL
);

CREATE TABLE artists (
    key         TEXT PRIMARY KEY NOT NULL,
    spotify_id  TEXT,
    name        TEXT NOT NULL,
    -- JSON array of strings.
    genres      TEXT NOT NULL,
    image_url   TEXT
);

CREATE INDEX artists_spotify_id ON artists (spotify_id);
