DROP INDEX captures_due;
DROP TABLE captures;
ALTER TABLE merchants DROP COLUMN auto_capture_after_days;
ALTER TABLE merchants DROP COLUMN capture;
