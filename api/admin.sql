-- Named queries of the admin endpoints (api/routers/admin.py); values are always parameters.

-- name: lock_lot_state
-- The lot's row, locked: ingest locks it too, so a closure and a batch never cross.
SELECT lot_id, free, occupied, capacity, updated, quality, status, flags
FROM lot_state
WHERE lot_id = %(lot_id)s
FOR UPDATE;

-- name: closure_of
-- The lot's operator closure, if there is one (what the audit records as before).
SELECT reason, closed_by, since, until
FROM lot_closures
WHERE lot_id = %(lot_id)s;

-- name: close_lot
-- A lot closed by an operator, or its closure replaced.
INSERT INTO lot_closures (lot_id, reason, closed_by, since, until)
VALUES (%(lot_id)s, %(reason)s, %(key_name)s, %(since)s, %(until)s)
ON CONFLICT (lot_id) DO UPDATE SET
    reason = excluded.reason, closed_by = excluded.closed_by, since = excluded.since,
    until = excluded.until;

-- name: open_lot
-- A lot's operator closure lifted.
DELETE FROM lot_closures WHERE lot_id = %(lot_id)s;

-- name: set_lot_status
-- A lot's status set at once (closed on closing, before ingest's next batch).
UPDATE lot_state SET status = %(status)s WHERE lot_id = %(lot_id)s;

-- name: sign_registered
-- A row if the sign is in the registry.
SELECT 1 FROM signs WHERE sign_id = %(sign_id)s;

-- name: set_sign_override
-- What a sign shows instead of its rendered content (an operator's mode), set or replaced.
INSERT INTO sign_overrides (sign_id, content, reason, set_by, since, until, mode)
VALUES (%(sign_id)s, %(content)s, %(reason)s, %(key_name)s, %(since)s, %(until)s, %(mode)s)
ON CONFLICT (sign_id) DO UPDATE SET
    content = excluded.content, reason = excluded.reason, set_by = excluded.set_by,
    since = excluded.since, until = excluded.until, mode = excluded.mode;

-- name: clear_sign_override
-- A sign's operator override lifted.
DELETE FROM sign_overrides WHERE sign_id = %(sign_id)s;

-- name: notify
-- One notification on a channel, delivered when the transaction commits.
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: audit
-- One admin or console action in the audit log (by an API key or a person), before and after.
INSERT INTO admin_audit (time, key_name, user_name, client, action, target, detail, before,
                         after)
VALUES (%(time)s, %(key_name)s, %(user_name)s, %(client)s, %(action)s, %(target)s, %(detail)s,
        %(before)s, %(after)s);
