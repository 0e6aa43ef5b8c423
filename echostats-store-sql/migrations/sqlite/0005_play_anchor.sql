-- A play's anchor: the end time (ms) of the entry that first stored it, which the
-- duplicate rule measures from when an import meets the play again, and whether it was
-- given to the minute (account data: 1). NULL when the play's own record implies it, as
-- for every play stored before this migration (README, "Play rules";
-- echostats_core::model::PlayAnchor).
ALTER TABLE plays ADD COLUMN anchor_at INTEGER;
ALTER TABLE plays ADD COLUMN anchor_minute INTEGER;

DROP VIEW play_rows;
CREATE VIEW play_rows AS
SELECT p.id, p.user_id, p.played_at, p.ms_played, p.kind, p.origin, p.counted, p.item_id, i.uri, i.track_name,
       i.artist_name, i.album_name, i.artist_id, i.episode_name, i.show_name, i.audiobook_title, i.audiobook_uri,
       i.audiobook_chapter_title, p.platform, p.conn_country, p.reason_start, p.reason_end, p.shuffle, p.skipped,
       p.offline, p.offline_timestamp, p.incognito, p.context_type, p.context_uri, i.track_key, i.artist_key,
       i.album_key, i.artist_norm, i.track_norm, i.show_key, p.anchor_at,
       p.anchor_minute
FROM plays p JOIN play_items i ON i.id = p.item_id;
