-- Data quality: when each bay's state last changed (to spot stuck sensors), a per-lot
-- quality score with the reasons behind it, and when counters may be re-zeroed.

ALTER TABLE lots
    ADD COLUMN max_dwell_s integer NOT NULL DEFAULT 172800 CHECK (max_dwell_s > 0),
    ADD COLUMN max_idle_s integer NOT NULL DEFAULT 604800 CHECK (max_idle_s > 0),
    ADD COLUMN empty_at time;

ALTER TABLE bay_state ADD COLUMN since timestamptz;
UPDATE bay_state SET since = time;
ALTER TABLE bay_state ALTER COLUMN since SET NOT NULL;

ALTER TABLE lot_state
    ADD COLUMN quality real CHECK (quality BETWEEN 0 AND 1),
    ADD COLUMN flags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN rezeroed_on date,
    ADD COLUMN drift integer;

-- The view sensor_status this migration made then (with the database's now()) is gone since
-- 0006; the rules of sensor health are in rules.sql, applied after the migrations.
