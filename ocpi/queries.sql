-- Named queries of the OCPI pull (ocpi/_service.py).

-- name: insert_dead_letter
-- Something of a peer's answer the pull could not use (an unknown EVSE, a broken Location);
-- a repeated one counts its occurrences.
INSERT INTO dead_letters (received, last_received, topic, payload, payload_size, digest, reason)
VALUES (%(received)s, %(received)s, %(topic)s, %(payload)s, %(payload_size)s, %(digest)s,
        %(reason)s)
ON CONFLICT (topic, digest) DO UPDATE
SET occurrences = dead_letters.occurrences + 1, last_received = excluded.last_received;
