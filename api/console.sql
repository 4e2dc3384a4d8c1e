-- Named queries of the operator console (api/_console.py, api/routers/console.py); values are
-- always parameters.

-- name: add_user
-- A person who may log in to the console (refused if the name is taken).
INSERT INTO console_users (name, role, password_hash, created)
VALUES (%(name)s, %(role)s, %(password_hash)s, %(created)s);

-- name: list_users
-- Every person of the console, by name (never their password hashes).
SELECT name, role, disabled, created FROM console_users ORDER BY name;

-- name: person
-- One person of the console (never the password hash), locked until the transaction ends.
SELECT name, role, disabled, created FROM console_users WHERE name = %(name)s FOR UPDATE;

-- name: disable_user
-- A person who may no longer log in; their sessions end with it.
UPDATE console_users SET disabled = true WHERE name = %(name)s;

-- name: end_sessions_of
-- Every session of a person (they were disabled).
DELETE FROM console_sessions WHERE user_name = %(name)s;

-- name: login_user
-- The person a login names, with what its password is checked against.
SELECT name, role, password_hash, disabled FROM console_users WHERE name = %(name)s;

-- name: add_session
-- A session of a person who just logged in (its token only as its hash).
INSERT INTO console_sessions (token_hash, user_name, csrf_token, created, last_seen, expires)
VALUES (%(token_hash)s, %(name)s, %(csrf_token)s, %(now)s, %(now)s, %(expires)s);

-- name: drop_old_sessions
-- Sessions that have ended (idle too long or past their lifetime), removed at a login.
DELETE FROM console_sessions
WHERE expires <= %(now)s OR last_seen <= %(now)s - make_interval(secs => %(idle_s)s);

-- name: touch_session
-- The person and CSRF token of a live session (not idle too long, not expired, its person
-- not disabled), its last request set to now; no row if the session is not live.
UPDATE console_sessions AS s SET last_seen = %(now)s
FROM console_users AS u
WHERE s.token_hash = %(token_hash)s AND u.name = s.user_name AND NOT u.disabled
  AND s.expires > %(now)s AND s.last_seen > %(now)s - make_interval(secs => %(idle_s)s)
RETURNING u.name, u.role, s.csrf_token;

-- name: end_session
-- A session ended by its logout.
DELETE FROM console_sessions WHERE token_hash = %(token_hash)s;

-- name: audit_count
-- How many actions the audit holds.
SELECT count(*) FROM admin_audit;

-- name: audit_page
-- A page of the audit, newest first: who (a key's or a person's name), what, before, after.
SELECT time, CASE WHEN user_name IS NULL THEN 'key' ELSE 'user' END AS actor_kind,
       coalesce(user_name, key_name) AS actor, client, action, target, detail, before, after
FROM admin_audit
ORDER BY time DESC, action, target
LIMIT %(limit)s OFFSET %(offset)s;

-- name: alarms
-- The alarms, filtered (a NULL filter: any), the open ones only unless %(all)s: open before
-- cleared, critical before warning, the newest first.
SELECT id, city, kind, severity, target, since, cleared_at, detail, acknowledged_by,
       acknowledged_at, ack_comment
FROM alarms
WHERE (%(all)s OR cleared_at IS NULL)
  AND (%(city)s::text IS NULL OR city = %(city)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(severity)s::text IS NULL OR severity = %(severity)s)
ORDER BY cleared_at IS NOT NULL, severity <> 'critical', since DESC, id DESC
LIMIT %(limit)s;

-- name: lock_alarm
-- An alarm, locked until its acknowledgement commits (ingest's clearing waits for it).
SELECT id, city, kind, severity, target, since, cleared_at, detail, acknowledged_by,
       acknowledged_at, ack_comment
FROM alarms
WHERE id = %(id)s
FOR UPDATE;

-- name: ack_alarm
-- An alarm acknowledged by a person with a comment (a second acknowledgement replaces the
-- first; both are in the audit). It stays open until its cause is gone.
UPDATE alarms
SET acknowledged_by = %(user)s, acknowledged_at = %(now)s, ack_comment = %(comment)s
WHERE id = %(id)s
RETURNING id, city, kind, severity, target, since, cleared_at, detail, acknowledged_by,
          acknowledged_at, ack_comment;

-- name: lock_sign_mode
-- Changes of one sign's mode take turns (a transaction-level advisory lock), so that each
-- audits as before what the one ahead of it left: the last write wins, none is lost.
SELECT pg_advisory_xact_lock(hashtext('parkleit_sign_mode'), hashtext(%(sign_id)s));

-- name: sign_mode_of
-- A sign's operator mode in force at ``now`` (no row: auto).
SELECT mode, content, reason, set_by, since, until
FROM sign_overrides
WHERE sign_id = %(sign_id)s AND (until IS NULL OR until > %(now)s);

-- name: sign_modes
-- Every sign of the given cities: the mode asked (in force at ``now``) and what the sign last
-- acknowledged showing (signage's sign_state), side by side.
SELECT g.sign_id, g.city, g.name, o.mode, o.content AS asked, o.reason, o.set_by, o.since,
       o.until, s.content AS shown, s.shown_since, s.last_ack, s.last_error,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures
FROM signs AS g
LEFT JOIN sign_overrides AS o
       ON o.sign_id = g.sign_id AND (o.until IS NULL OR o.until > %(now)s)
LEFT JOIN sign_state AS s ON s.sign_id = g.sign_id
WHERE g.city = ANY(%(cities)s)
ORDER BY g.city, g.sign_id;

-- name: correct_count
-- A counter lot's count set by an operator: the new baseline ingest counts on from (its
-- counter's readings stay), fresh now, flagged as a manual correction.
UPDATE lot_state
SET occupied = %(occupied)s, free = %(free)s, updated = %(now)s, status = %(status)s,
    corrected_at = %(now)s, flags = %(flags)s
WHERE lot_id = %(lot_id)s;

-- name: capacity_limit_of
-- A lot's capacity limit in force at ``now``, if any (what the audit records as before).
SELECT capacity, reason, set_by, since, until
FROM lot_capacity_limits
WHERE lot_id = %(lot_id)s AND until > %(now)s;

-- name: set_capacity_limit
-- A counter lot's capacity reduced until ``until``, or its limit replaced.
INSERT INTO lot_capacity_limits (lot_id, capacity, reason, set_by, since, until)
VALUES (%(lot_id)s, %(capacity)s, %(reason)s, %(set_by)s, %(since)s, %(until)s)
ON CONFLICT (lot_id) DO UPDATE SET
    capacity = excluded.capacity, reason = excluded.reason, set_by = excluded.set_by,
    since = excluded.since, until = excluded.until;

-- name: end_capacity_limit
-- A lot's capacity limit ended before its time.
DELETE FROM lot_capacity_limits WHERE lot_id = %(lot_id)s;
