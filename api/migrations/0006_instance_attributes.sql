-- (No semicolon in comments here: statements are split at every one.)
-- Instance attributes (issue 20) that ModifyInstanceAttribute changes:
-- termination protection, what a shutdown from inside the guest does
-- ('stop' or 'terminate'), and the source/destination check. Booleans are
-- 0/1 integers as elsewhere.
ALTER TABLE instances ADD COLUMN disable_api_termination BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN shutdown_behavior TEXT NOT NULL DEFAULT 'stop';
ALTER TABLE instances ADD COLUMN source_dest_check BIGINT NOT NULL DEFAULT 1
