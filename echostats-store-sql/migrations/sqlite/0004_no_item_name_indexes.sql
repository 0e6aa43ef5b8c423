-- The item name indexes go. Every new item was a random insert into both, and the pages
-- they dirtied crowded the writer's cache: the 1M-entry import takes 4.39 s without
-- them against 4.67 s with (medians of 8 alternating rounds; peak memory 20 MB lower).
-- What they served, the history's artist and track filters, now scans the items: ~3 ms
-- for 38,000 items, beside the ~70 ms scan of a million plays' index that the same
-- query does anyway.
DROP INDEX play_items_artist_norm;
DROP INDEX play_items_track_norm;
