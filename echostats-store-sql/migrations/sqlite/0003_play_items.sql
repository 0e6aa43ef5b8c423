-- Narrow plays: what describes the item played (track, episode or chapter: its names,
-- URIs and the keys derived from them) moves to `play_items`, one row per distinct
-- item, and each play points at its item. A million plays of some 40,000 items no
-- longer repeat the names and keys a million times: the table and its index shrink to
-- about a third, and an import writes that much less.
--
-- `ident` is the item's identity, every field in order, length-prefixed (`-` for NULL):
-- `kind|len:uri|len:track_name|...` (codec::item_ident builds the same text). Keys are
-- a function of the item's fields only, so items are shared by all users.

CREATE TABLE play_items (
    id                       INTEGER PRIMARY KEY,
    ident                    TEXT NOT NULL UNIQUE,
    kind                     INTEGER NOT NULL,
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
    -- Derived from the fields above (PlayRecord::keys, normalize_name).
    track_key                TEXT,
    artist_key               TEXT,
    album_key                TEXT,
    artist_norm              TEXT,
    track_norm               TEXT,
    show_key                 TEXT
);

CREATE INDEX play_items_artist_norm ON play_items (artist_norm);
CREATE INDEX play_items_track_norm ON play_items (track_norm);

-- One item per identity: the unique index drops the repeats as they come, so nothing is
-- sorted or held in memory whatever the size of the history.
INSERT OR IGNORE INTO play_items (ident, kind, uri, track_name, artist_name, album_name, artist_id, episode_name,
                                  show_name, audiobook_title, audiobook_uri, audiobook_chapter_title, track_key,
                                  artist_key, album_key, artist_norm, track_norm, show_key)
SELECT kind || '|' || COALESCE(length(uri) || ':' || uri, '-')
          || '|' || COALESCE(length(track_name) || ':' || track_name, '-')
          || '|' || COALESCE(length(artist_name) || ':' || artist_name, '-')
          || '|' || COALESCE(length(album_name) || ':' || album_name, '-')
          || '|' || COALESCE(length(artist_id) || ':' || artist_id, '-')
          || '|' || COALESCE(length(episode_name) || ':' || episode_name, '-')
          || '|' || COALESCE(length(show_name) || ':' || show_name, '-')
          || '|' || COALESCE(length(audiobook_title) || ':' || audiobook_title, '-')
          || '|' || COALESCE(length(audiobook_uri) || ':' || audiobook_uri, '-')
          || '|' || COALESCE(length(audiobook_chapter_title) || ':' || audiobook_chapter_title, '-'),
       kind, uri, track_name, artist_name, album_name, artist_id, episode_name, show_name, audiobook_title,
       audiobook_uri, audiobook_chapter_title, track_key, artist_key, album_key, artist_norm, track_norm, show_key
FROM plays ORDER BY id;

DROP INDEX plays_user_time;
ALTER TABLE plays RENAME TO plays_wide;

CREATE TABLE plays (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            TEXT NOT NULL,
    played_at          INTEGER NOT NULL,
    ms_played          INTEGER NOT NULL,
    kind               INTEGER NOT NULL,
    origin             INTEGER NOT NULL,
    counted            INTEGER NOT NULL,
    item_id            INTEGER NOT NULL,
    platform           TEXT,
    conn_country       TEXT,
    reason_start       TEXT,
    reason_end         TEXT,
    shuffle            INTEGER,
    skipped            INTEGER,
    offline            INTEGER,
    offline_timestamp  INTEGER,
    incognito          INTEGER,
    context_type       TEXT,
    context_uri        TEXT
);

INSERT INTO plays (id, user_id, played_at, ms_played, kind, origin, counted, item_id, platform, conn_country,
                   reason_start, reason_end, shuffle, skipped, offline, offline_timestamp, incognito, context_type,
                   context_uri)
SELECT p.id, p.user_id, p.played_at, p.ms_played, p.kind, p.origin, p.counted, i.id, p.platform, p.conn_country,
       p.reason_start, p.reason_end, p.shuffle, p.skipped, p.offline, p.offline_timestamp, p.incognito,
       p.context_type, p.context_uri
FROM plays_wide p JOIN play_items i ON i.ident = p.kind || '|' || COALESCE(length(p.uri) || ':' || p.uri, '-')
          || '|' || COALESCE(length(p.track_name) || ':' || p.track_name, '-')
          || '|' || COALESCE(length(p.artist_name) || ':' || p.artist_name, '-')
          || '|' || COALESCE(length(p.album_name) || ':' || p.album_name, '-')
          || '|' || COALESCE(length(p.artist_id) || ':' || p.artist_id, '-')
          || '|' || COALESCE(length(p.episode_name) || ':' || p.episode_name, '-')
          || '|' || COALESCE(length(p.show_name) || ':' || p.show_name, '-')
          || '|' || COALESCE(length(p.audiobook_title) || ':' || p.audiobook_title, '-')
          || '|' || COALESCE(length(p.audiobook_uri) || ':' || p.audiobook_uri, '-')
          || '|' || COALESCE(length(p.audiobook_chapter_title) || ':' || p.audiobook_chapter_title, '-')
ORDER BY p.id;

-- AUTOINCREMENT never hands out an id again, even one whose play is gone.
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'plays_wide'))
WHERE name = 'plays' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'plays_wide');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'plays', seq FROM sqlite_sequence WHERE name = 'plays_wide'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'plays');

DROP TABLE plays_wide;

-- Led by time: imports are chronological, so inserts append to it. History filters,
-- counts and the windowed rankings are evaluated inside it (the item filters as a set
-- of item ids). The rowid (id) is implicitly its last column.
CREATE INDEX plays_user_time ON plays (user_id, played_at, kind, counted, item_id);

-- A play as the domain model has it (the columns of the wide table before 0003).
CREATE VIEW play_rows AS
SELECT p.id, p.user_id, p.played_at, p.ms_played, p.kind, p.origin, p.counted, p.item_id, i.uri, i.track_name,
       i.artist_name, i.album_name, i.artist_id, i.episode_name, i.show_name, i.audiobook_title, i.audiobook_uri,
       i.audiobook_chapter_title, p.platform, p.conn_country, p.reason_start, p.reason_end, p.shuffle, p.skipped,
       p.offline, p.offline_timestamp, p.incognito, p.context_type, p.context_uri, i.track_key, i.artist_key,
       i.album_key, i.artist_norm, i.track_norm, i.show_key
FROM plays p JOIN play_items i ON i.id = p.item_id;
