-- Alarms of the operator console: raised by ingest's evaluator (ingest/alarms.sql) when a
-- cause appears, cleared when it is gone; acknowledged by a person (acknowledged is not
-- cleared). One row per occurrence: a cause that comes back is a new alarm.
CREATE TABLE alarms (
    id               bigserial PRIMARY KEY,
    city             text NOT NULL,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,39}$'),
    severity         text NOT NULL CHECK (severity IN ('warning', 'critical')),
    target           text NOT NULL,
    since            timestamptz NOT NULL,
    cleared_at       timestamptz,
    detail           jsonb NOT NULL DEFAULT '{}',
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    ack_comment      text,
    CONSTRAINT alarms_cleared_after_since CHECK (cleared_at >= since),
    CONSTRAINT alarms_ack_complete
        CHECK (num_nonnulls(acknowledged_by, acknowledged_at, ack_comment) IN (0, 3))
);
-- At most one open alarm per cause (what, where); ingest raises with ON CONFLICT DO NOTHING,
-- so workers side by side raise it once.
CREATE UNIQUE INDEX alarms_open_idx ON alarms (city, kind, target) WHERE cleared_at IS NULL;
CREATE INDEX alarms_city_since_idx ON alarms (city, since DESC);
