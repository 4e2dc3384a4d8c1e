-- Named queries of the signage service; values are always parameters.

-- name: lot_states
-- The current status of the lots the signs show (the same values ingest NOTIFYs).
SELECT lot_id, free, capacity, status, updated
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s);

-- name: latest_forecasts
-- Per lot, the rows of its newest live forecast run that still lie ahead.
SELECT f.lot_id, f.target_time, f.p_space
FROM forecasts AS f
JOIN (
    SELECT lot_id, max(time) AS time
    FROM forecasts
    WHERE lot_id = ANY(%(lot_ids)s) AND time > %(since)s AND kind = 'live'
    GROUP BY lot_id
) AS latest USING (lot_id, time)
WHERE f.target_time > %(now)s AND f.kind = 'live'
ORDER BY f.lot_id, f.target_time;

-- name: insert_sign_log
-- One push to a sign in the audit log.
INSERT INTO sign_log (time, sign_id, content, ok, error, ack, term)
VALUES (%(time)s, %(sign_id)s, %(content)s, %(ok)s, %(error)s, %(ack)s, %(term)s);

-- name: upsert_sign_state
-- A sign's health after a push, inserted or replaced.
INSERT INTO sign_state (sign_id, content, shown_since, last_ack, last_error, last_error_at,
                        consecutive_failures, updated)
VALUES (%(sign_id)s, %(content)s, %(shown_since)s, %(last_ack)s, %(last_error)s,
        %(last_error_at)s, %(consecutive_failures)s, %(updated)s)
ON CONFLICT (sign_id) DO UPDATE SET
    content = excluded.content, shown_since = excluded.shown_since,
    last_ack = excluded.last_ack, last_error = excluded.last_error,
    last_error_at = excluded.last_error_at,
    consecutive_failures = excluded.consecutive_failures, updated = excluded.updated;

-- name: sign_health
-- Every sign of a city with its health (NULLs for a sign the service has not served yet):
-- what it last confirmed showing and since when, its last ack, its last error and how many
-- pushes in a row have failed.
SELECT g.sign_id, g.name, g.driver, s.content, s.shown_since, s.last_ack, s.last_error,
       s.last_error_at, coalesce(s.consecutive_failures, 0) AS consecutive_failures,
       s.updated
FROM signs AS g
LEFT JOIN sign_state AS s USING (sign_id)
WHERE g.city = %(city)s
ORDER BY g.sign_id;

-- name: sign_overrides
-- The operators' overrides of a city's signs (the service judges ``until`` itself).
SELECT o.sign_id, o.content, o.until
FROM sign_overrides AS o
JOIN signs AS g USING (sign_id)
WHERE g.city = %(city)s;

-- name: notify
-- One notification per element, in array order; delivered when the transaction commits.
SELECT pg_notify(%(channel)s, payload) FROM unnest(%(payloads)s::text[]) AS payload;
