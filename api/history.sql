-- The history route's answer, built by the database (api/routers/lots.py), and the export's
-- fingerprint (api/routers/export.py). Both take an occupancy_* query of api/queries.sql, put
-- in place of a placeholder in braces by psycopg.sql (so no other brace may appear in them).

-- name: history_points
-- The buckets of one lot, from an occupancy_* query of api/queries.sql that history_of puts
-- in front as ``WITH buckets AS (...)``: the start of the newest bucket, and the JSON text of
-- the answer's points (api._models.HistoryPoint objects, comma-separated, in time order; NULL
-- for none). A year at 15m is 35,000 buckets: as Python objects they would cost more than
-- the query, and as 35,000 rows a Python client spends more time receiving them than one
-- value. The buckets come in time order already: sorting presorted input is one pass (when
-- it fits in work_mem; PostgreSQL 16 skips it). Times are RFC 3339 in UTC; the means come
-- rounded to hundredths (float8 text is the shortest that reads back the same: 12.3).
SELECT max(time) AS last_bucket,
       string_agg('{"time":"' || to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                  || '","free":' || free || ',"occupied":' || occupied
                  || ',"free_min":' || free_min || ',"capacity":' || capacity
                  || ',"samples":' || samples || '}', ',' ORDER BY time) AS points
FROM buckets;

-- name: history_of
-- The history route's query: history_points over the buckets of the resolution's occupancy_*
-- query (api._history.points_query puts both in).
WITH buckets AS ({buckets})
{points}

-- name: export_fingerprint
-- What the export's ETag fingerprints (history is insert-only): the selection's buckets, its
-- newest bucket and the readings they hold, of the resolution's occupancy_* query.
SELECT count(*), max(time), sum(samples) FROM ({selection}) AS selection
