-- Record a batch of attempt outcomes (group commit): for each delivery still leased to this worker
-- at the same attempt, apply the outcome to its queue row and the projection and append its log
-- rows, in order: the attempt's own row (succeeded / failed), then what follows it (retry
-- scheduled / dead-lettered).
-- An outcome whose lease was lost (reclaimed after expiry) is dropped: the new holder decides.
-- $1 worker id; arrays, one element per outcome:
-- $2 delivery id, $3 attempt, $4 attempt row kind (NULL: nothing was sent), $5 http status,
-- $6 latency ms, $7 error class, $8 error message, $9 response excerpt,
-- $10 follow-up kind (NULL: none), $11 follow-up error class, $12 follow-up error message,
-- $13 retry delay ms (for retry_scheduled)
WITH input AS (
    SELECT t.*,
           CASE coalesce(t.follow, t.outcome)
               WHEN 'attempt_succeeded' THEN 'succeeded'
               WHEN 'retry_scheduled' THEN 'pending'
               ELSE 'dead'
           END::delivery_state AS next_state,
           -- Nothing sent, nothing charged: the claim's attempt is handed back.
           CASE WHEN t.outcome IS NULL THEN t.attempt - 1 ELSE t.attempt END AS next_attempts,
           CASE WHEN t.follow = 'retry_scheduled'
                THEN now() + t.retry_in_ms * interval '1 millisecond' END AS next_due_at
    FROM unnest($2::uuid[], $3::int[], $4::text[]::delivery_log_kind[], $5::int[], $6::int[], $7::text[],
                $8::text[], $9::text[], $10::text[]::delivery_log_kind[], $11::text[], $12::text[],
                $13::bigint[])
      AS t(delivery_id, attempt, outcome, http_status, latency_ms, error_class, error_message,
           excerpt, follow, follow_class, follow_error, retry_in_ms)
),
-- The queue row decides whether the lease still holds; it goes once the delivery is delivered.
settled AS (
    DELETE FROM delivery_queue q
    USING input i
    WHERE q.delivery_id = i.delivery_id AND i.next_state = 'succeeded'
      AND q.state = 'in_flight' AND q.lease_owner = $1 AND q.attempts = i.attempt
    RETURNING q.delivery_id
),
requeued AS (
    UPDATE delivery_queue q
    SET state = i.next_state, attempts = i.next_attempts, due_at = i.next_due_at,
        lease_owner = NULL
    FROM input i
    WHERE q.delivery_id = i.delivery_id AND i.next_state <> 'succeeded'
      AND q.state = 'in_flight' AND q.lease_owner = $1 AND q.attempts = i.attempt
    RETURNING q.delivery_id
),
applied AS (
    UPDATE deliveries d
    SET state = i.next_state,
        attempts = i.next_attempts,
        due_at = i.next_due_at,
        lease_owner = NULL,
        last_http_status = CASE WHEN i.outcome IS NULL THEN d.last_http_status
                                ELSE i.http_status END,
        last_error = CASE WHEN i.outcome = 'attempt_succeeded' THEN NULL
                          ELSE coalesce(i.follow_error,
                                        CASE WHEN i.outcome = 'attempt_failed'
                                             THEN i.error_message END,
                                        d.last_error) END,
        updated_at = now()
    FROM input i
    WHERE d.id = i.delivery_id
      AND d.id IN (SELECT delivery_id FROM settled UNION ALL SELECT delivery_id FROM requeued)
    RETURNING d.id, d.attempts, d.due_at
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, worker_id, http_status, latency_ms,
                              error_class, error_message, response_excerpt, next_attempt_at)
    SELECT a.id, e.kind, e.attempt, $1, e.http_status, e.latency_ms, e.error_class,
           e.error_message, e.excerpt, e.next_attempt_at
    FROM applied a
    JOIN input i ON i.delivery_id = a.id
    CROSS JOIN LATERAL (VALUES
        (1, i.outcome, i.attempt, i.http_status, i.latency_ms, i.error_class, i.error_message,
         i.excerpt, NULL::timestamptz),
        (2, i.follow, a.attempts, NULL, NULL, i.follow_class, i.follow_error, NULL, a.due_at)
    ) AS e(ord, kind, attempt, http_status, latency_ms, error_class, error_message, excerpt,
           next_attempt_at)
    WHERE e.kind IS NOT NULL
    ORDER BY a.id, e.ord
)
SELECT id FROM applied
