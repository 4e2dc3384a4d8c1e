-- Named queries of the console's events (api/_events.py); values are always parameters.

-- name: upcoming_events
-- The console's events not yet over at ``now``, of one city or all, the soonest first.
SELECT id, city, name, starts, ends, lots, closed_lots, reserved_lots, created_by, created_at
FROM events
WHERE ends > %(now)s AND (%(city)s::text IS NULL OR city = %(city)s)
ORDER BY starts, id
LIMIT %(limit)s;

-- name: insert_event
-- An event a planner entered; answers the stored row.
INSERT INTO events (city, name, starts, ends, lots, closed_lots, reserved_lots, created_by,
                    created_at)
VALUES (%(city)s, %(name)s, %(starts)s, %(ends)s, %(lots)s, %(closed_lots)s,
        %(reserved_lots)s, %(created_by)s, %(created_at)s)
RETURNING id, city, name, starts, ends, lots, closed_lots, reserved_lots, created_by,
          created_at;

-- name: delete_event
-- An event removed; answers the row it was (nothing if there was none).
DELETE FROM events
WHERE id = %(id)s
RETURNING id, city, name, starts, ends, lots, closed_lots, reserved_lots, created_by,
          created_at;

-- name: closed_otherwise
-- Whether the lot stays closed at ``now`` without the given event: an operator's closure or
-- another event's closure or reservation in force.
SELECT EXISTS (
    SELECT FROM lot_closures
    WHERE lot_id = %(lot_id)s AND (until IS NULL OR until > %(now)s)
) OR EXISTS (
    SELECT FROM events
    WHERE id <> %(id)s AND %(lot_id)s = ANY(closed_lots || reserved_lots)
      AND starts <= %(now)s AND ends > %(now)s
) AS closed;

-- name: event_closes
-- Whether an event in force at ``now`` closes or reserves the lot (opening it by hand or
-- correcting its count leaves it closed while the event is on).
SELECT EXISTS (
    SELECT FROM events
    WHERE %(lot_id)s = ANY(closed_lots || reserved_lots)
      AND starts <= %(now)s AND ends > %(now)s
) AS closed;

-- name: next_event_change
-- The first start or end of a console event after ``now``: a lot's closure by an event
-- begins or ends then (the lots' snapshot reads again at that moment).
SELECT min(moment) AS moment
FROM events, LATERAL (VALUES (starts), (ends)) AS b (moment)
WHERE moment > %(now)s;
