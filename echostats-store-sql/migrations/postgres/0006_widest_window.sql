-- The widest duplicate window the user's plays were ever stored under. A play's record
-- lies within a window (and a minute) of its anchor, under the window of its import: an
-- import under a narrower window must still read that far, or it misses such plays and
-- adds them again (echostats_core::rules::PlayRules::candidate_window). NULL: the
-- current window, all that is known of users from before this migration.
ALTER TABLE user_rules ADD COLUMN widest_window_ms BIGINT;
