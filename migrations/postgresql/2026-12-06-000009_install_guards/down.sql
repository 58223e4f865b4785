DROP TABLE lifecycle_checks;
DROP TABLE mall_sessions;
DROP TABLE launch_uses;
