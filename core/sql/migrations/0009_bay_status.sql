-- The stuck-bay count written once: ingest's free bays of a lot and the API's bays of each
-- kind both read bay_status(at), no longer each their own join around bay_stuck().

-- Per bay at the moment ``at``: whether it counts as occupied (its sensor says so and is not
-- stuck: a stuck sensor's bay counts neither free nor occupied, a bay not heard from yet
-- counts as free), whether its sensor is stuck, its newest reading, and whether that came
-- within four staleness limits.
CREATE FUNCTION bay_status(at timestamptz)
RETURNS TABLE (bay_id text, lot_id text, kind text, occupied boolean, stuck boolean,
               heard timestamptz, fresh boolean)
LANGUAGE sql STABLE
AS $$
SELECT b.bay_id, b.lot_id, b.kind, coalesce(s.occupied AND NOT k.stuck, false), k.stuck, s.time,
       coalesce(at - s.time <= make_interval(secs => 4 * l.stale_after_s), false)
FROM bays AS b
JOIN lots AS l ON l.lot_id = b.lot_id
LEFT JOIN bay_state AS s ON s.bay_id = b.bay_id
CROSS JOIN LATERAL (
    SELECT bay_stuck(s.occupied, s.since, l.max_dwell_s, l.max_idle_s, at) AS stuck
) AS k
$$;
