-- Events planners enter in the console (a concert, a football match, the Christmas market):
-- a time window of a city; the lots whose demand it raises (the forecaster's event flag, as
-- the city config's events), the lots closed during it and the lots reserved for it (closed to
-- the public). Ingest and the API's lot views read the closures and reservations in force
-- as they read lot_closures.

CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    city           text NOT NULL,
    name           text NOT NULL,
    starts         timestamptz NOT NULL,
    ends           timestamptz NOT NULL,
    lots           text[] NOT NULL DEFAULT '{}',
    closed_lots    text[] NOT NULL DEFAULT '{}',
    reserved_lots  text[] NOT NULL DEFAULT '{}',
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT events_ends_after_starts CHECK (ends > starts)
);
CREATE INDEX events_city_ends_idx ON events (city, ends);
