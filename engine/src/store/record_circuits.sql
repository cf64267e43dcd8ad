-- Count a batch's attempts against their endpoints' circuits: a success closes the circuit and
-- clears the failures; failures add up, open a closed circuit at the threshold, and reopen a
-- half-open one (its probe failed) with twice the cooldown, up to the cap. An endpoint without a
-- row reads as closed with no failures, so a healthy endpoint's outcomes write nothing: only rows
-- that must change are locked, in endpoint order.
-- $1 endpoint ids, $2 successful attempts, $3 failed attempts (this batch, per endpoint);
-- $4 failures that open the circuit, $5 first cooldown (ms), $6 longest cooldown (ms),
-- $7 how long an endpoint may fail without a success before it is disabled (ms)
-- Returns the endpoints whose circuit changed state, or that are to be disabled.
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[]) AS t(endpoint_id, successes, failures)
),
locked AS (
    SELECT c.*
    FROM endpoint_circuits c
    JOIN input i ON i.endpoint_id = c.endpoint_id
    WHERE i.failures > 0 OR c.state <> 'closed' OR c.consecutive_failures > 0
    ORDER BY c.endpoint_id
    FOR UPDATE OF c
),
counted AS (
    SELECT i.endpoint_id, i.successes,
           coalesce(l.state, 'closed') AS from_state,
           CASE WHEN i.successes > 0 THEN 0
                ELSE coalesce(l.consecutive_failures, 0) + i.failures END AS consecutive_failures,
           CASE WHEN i.successes > 0 THEN NULL
                ELSE coalesce(l.failing_since, now()) END AS failing_since,
           CASE WHEN i.successes > 0 THEN now() ELSE l.last_success_at END AS last_success_at,
           l.cooldown_ms, l.open_until
    FROM input i
    LEFT JOIN locked l ON l.endpoint_id = i.endpoint_id
    -- Without failures, only a row that is not at rest has anything to change. (A row another
    -- worker inserts at the same moment can lose this batch's count: the circuit then opens a
    -- few failures later.)
    WHERE i.failures > 0 OR l.endpoint_id IS NOT NULL
),
decided AS (
    SELECT c.*,
           CASE WHEN c.successes > 0 THEN 'closed'
                WHEN c.from_state <> 'closed' THEN 'open'
                WHEN c.consecutive_failures >= $4 THEN 'open'
                ELSE 'closed' END::circuit_state AS to_state,
           CASE WHEN c.successes > 0 THEN NULL
                WHEN c.from_state = 'half_open' THEN least(coalesce(c.cooldown_ms, $5) * 2, $6)
                WHEN c.from_state = 'open' THEN c.cooldown_ms
                WHEN c.consecutive_failures >= $4 THEN $5 END AS next_cooldown_ms
    FROM counted c
),
shaped AS (
    SELECT d.*,
           CASE WHEN d.to_state <> 'open' THEN NULL
                WHEN d.from_state = 'open' THEN d.open_until
                ELSE now() + d.next_cooldown_ms * interval '1 millisecond' END AS next_open_until,
           d.successes = 0 AND d.failing_since <= now() - $7::bigint * interval '1 millisecond'
               AS disable
    FROM decided d
),
written AS (
    INSERT INTO endpoint_circuits AS c (endpoint_id, state, consecutive_failures, open_until,
                                        cooldown_ms, failing_since, last_success_at, changed_at)
    SELECT endpoint_id, to_state, consecutive_failures, next_open_until, next_cooldown_ms,
           failing_since, last_success_at, now()
    FROM shaped
    ORDER BY endpoint_id
    ON CONFLICT (endpoint_id) DO UPDATE
    SET state = EXCLUDED.state,
        consecutive_failures = EXCLUDED.consecutive_failures,
        open_until = EXCLUDED.open_until,
        cooldown_ms = EXCLUDED.cooldown_ms,
        failing_since = EXCLUDED.failing_since,
        last_success_at = EXCLUDED.last_success_at,
        changed_at = CASE WHEN c.state <> EXCLUDED.state THEN now() ELSE c.changed_at END
)
SELECT endpoint_id, from_state::text AS from_state, to_state::text AS to_state, disable,
       failing_since
FROM shaped
WHERE from_state <> to_state OR disable
