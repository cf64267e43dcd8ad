-- Claim-and-commit in one statement: lock due deliveries (skipping those another worker is
-- locking), lease them to this worker, charge the attempt and log the claim. No lock outlives the
-- statement, so no transaction is open while the webhook is sent.
-- A delivery whose lease ran out (its worker died mid-attempt) is due again at lease expiry.
-- $1 worker id, $2 batch size, $3 default delivery timeout (ms), $4 lease margin (ms)
WITH due AS (
    SELECT d.id, d.state AS previous_state
    FROM deliveries d
    WHERE d.state IN ('pending', 'in_flight') AND d.due_at <= now()
    ORDER BY d.due_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE deliveries d
    SET state = 'in_flight',
        attempts = d.attempts + 1,
        due_at = now() + (coalesce(ep.timeout_ms, $3) + $4) * interval '1 millisecond',
        lease_owner = $1,
        updated_at = now()
    FROM due, endpoints ep
    WHERE d.id = due.id AND ep.id = d.endpoint_id
    RETURNING d.id, d.event_id, d.endpoint_id, d.attempts, d.budget_start, d.due_at,
              due.previous_state
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, worker_id, lease_expires_at, error_class)
    SELECT id, 'claimed', attempts, $1, due_at,
           CASE WHEN previous_state = 'in_flight' THEN 'lease_expired' END
    FROM claimed
    ORDER BY id
)
SELECT c.id, c.event_id, c.endpoint_id, c.attempts, c.budget_start,
       ep.url, ep.secret, ep.enabled,
       CASE WHEN ep.previous_secret_expires_at > now() THEN ep.previous_secret END
           AS previous_secret, ep.max_attempts, ep.retry_base_ms, ep.retry_cap_ms,
       ep.timeout_ms, ep.headers, ev.event_type, ev.payload::text AS payload, ev.created_at AS event_created_at
FROM claimed c
JOIN endpoints ep ON ep.id = c.endpoint_id
JOIN events ev ON ev.id = c.event_id
