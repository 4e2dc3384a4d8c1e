-- Rules that depend on the time take the moment as a parameter (the services' clock,
-- core/clock.py), never the database's now(): a test or a replay runs at any instant, and the
-- database's clock deciding "stuck" or "silent" would disagree with the one the data was
-- stamped by. The stuck-bay rule is written once (bay_stuck) and used by every query.
--
-- This migration made bay_stuck, the view sensor_state and sensor_status(at) in their first
-- form; they are rules, now written once in rules.sql and applied after the migrations, so
-- here only the view they replace goes.

DROP VIEW IF EXISTS sensor_status;
