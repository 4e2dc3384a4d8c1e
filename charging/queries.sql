-- Named queries of the OCPP central system; values are always parameters.

-- name: insert_dead_letter
-- A message of a charge point the central system refused (topic ocpp/{charge_point_id});
-- a repeated one counts its occurrences.
INSERT INTO dead_letters (received, last_received, topic, payload, payload_size, digest, reason)
VALUES (%(received)s, %(received)s, %(topic)s, %(payload)s, %(payload_size)s, %(digest)s,
        %(reason)s)
ON CONFLICT (topic, digest) DO UPDATE
SET occurrences = dead_letters.occurrences + 1, last_received = excluded.last_received;
