-- Claim-and-commit in one statement: lock due deliveries' queue rows (skipping those another
-- worker is locking), lease them to this worker, charge the attempt and log the claim. No lock outlives the
-- statement, so no transaction is open while the webhook is sent.
-- A delivery whose lease ran out (its worker died mid-attempt) is due again at lease expiry;
-- those go first, the rest of the batch is pending deliveries in fair order: by
-- greatest(fair_key, due_at), so that an app's flood waits behind apps without one (see
-- 0010_fair_queue.sql). Every due delivery's key lies within the fair horizon ($7) of now.
--
-- The circuit breaker decides here, so every worker sees one decision: a delivery whose
-- endpoint's circuit is open or half-open is parked (pending with no due time, logged
-- `deferred`, its attempt not charged) instead of leased. Once an open circuit's cooldown is
-- over, the first of its endpoint's deliveries in the batch is leased as the probe and the
-- circuit turns half-open; when every delivery of that endpoint is parked, the oldest parked one
-- joins the batch to be the probe. Disabled endpoints are never parked: the worker dead-letters
-- their deliveries.
-- $1 worker id, $2 batch size, $3 default delivery timeout (ms), $4 lease margin (ms),
-- $5, $6 hanging endpoints and how many more deliveries of each this claim may take,
-- $7 the fair horizon (ms), $8 and $9 where this claim's scans start (the floor, below)
-- Fairness: an endpoint whose requests hang gets no more of this worker's slots than its quota
-- ($5 endpoints, $6 how many more each may take; see fairness.rs), so it cannot starve the
-- others before its circuit opens: of its due deliveries, only the first `quota` may be taken.
-- Without hanging endpoints (the usual case) workers run this statement without the quota
-- filter (the lines between its markers), whose plan PostgreSQL can cache (deliveries.rs).
-- The floor: the queue's indexes keep an entry for every version a claim or an outcome left
-- behind until vacuum removes it, and while any snapshot older than those versions is open (a
-- long report, a replica's query) it cannot; a scan from the head of the fair index would visit
-- each one, on every claim. So a worker scans from where its last claim left off (worker.rs,
-- ClaimFloor): $9 is when that claim began (its now()), $8 the furthest fair position it took
-- if it was full (NULL if it was short). Everything due at $9 with a position below $8, that
-- claim took or another claim held; a pending delivery that became due since has a due time no
-- earlier than the start of the transaction that made it due, and a second covers that
-- transaction's length. So the pending deliveries are the union of two scans: positions below
-- $8 with a due time from a second before $9 on, in the order they became due, then positions
-- from $8 on. The first runs on the pending-due index (due time, position) from its bound,
-- passing over the positions at or above $8 inside the index without reading the table. Its
-- order is what puts it there: ordered by position, PostgreSQL's generic plan took the fair
-- index up to $8 instead, which walks every dead entry below the floor on each claim (the
-- floor's point) and, with a two-minute snapshot open, doubled the claim's time. The first
-- scan's positions are all below the second's, so the second takes only what the first leaves
-- of the batch, and only the second's positions make the next floor. Expired leases are those
-- from a moment before $9 on: an earlier one was due at the last claim, which took it unless its
-- lease scan filled the batch (then it reached no position, and this claim scans from the
-- head). $9 NULL scans from the head (the first claim, and every few seconds for what the floor
-- could miss: a claim that failed mid-way, a transaction open longer than the second); claims
-- with fairness quotas always do, so that only the fair-index scan applies quotas.
WITH quotas AS (
    SELECT * FROM unnest($5::uuid[], $6::bigint[]) AS t(endpoint_id, quota)
),
bounds AS MATERIALIZED (
    SELECT CASE WHEN $9::timestamptz IS NULL THEN '-infinity'::timestamptz
                ELSE coalesce($8::timestamptz, 'infinity'::timestamptz) END AS position_from,
           coalesce($9::timestamptz - interval '1 second', 'infinity'::timestamptz)
               AS became_due_from,
           coalesce($9::timestamptz - interval '100 milliseconds', '-infinity'::timestamptz)
               AS lapsed_from
),
-- Leases that ran out are taken whatever the quotas: they are rare (a worker died).
lapsed AS (
    SELECT q.delivery_id AS id, q.state AS previous_state, q.endpoint_id, q.due_at,
           NULL::timestamptz AS position
    FROM delivery_queue q
    WHERE q.state = 'in_flight' AND q.due_at <= now()
      AND q.due_at >= (SELECT lapsed_from FROM bounds)
    ORDER BY q.due_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
-- Its rows carry no position: taken in the order they became due, they do not say up to where
-- the positions below the floor are done. When this scan fills the batch, the claim reaches no
-- position and the next one scans from the head; otherwise the floor moves only as far as the
-- fair-index scan took it.
pending_became_due AS (
    SELECT q.delivery_id AS id, q.state AS previous_state, q.endpoint_id, q.due_at,
           NULL::timestamptz AS position
    FROM delivery_queue q
    WHERE q.state = 'pending' AND q.due_at IS NOT NULL AND q.due_at <= now()
      AND q.due_at >= (SELECT became_due_from FROM bounds)
      AND greatest(q.fair_key, q.due_at) < (SELECT position_from FROM bounds)
      AND greatest(q.fair_key, q.due_at) <= now() + $7::bigint * interval '1 millisecond'
    ORDER BY q.due_at, greatest(q.fair_key, q.due_at)
    LIMIT greatest($2 - (SELECT count(*) FROM lapsed), 0)
    FOR UPDATE SKIP LOCKED
),
pending_above AS (
    SELECT q.delivery_id AS id, q.state AS previous_state, q.endpoint_id, q.due_at,
           greatest(q.fair_key, q.due_at) AS position
    FROM delivery_queue q
    WHERE q.state = 'pending' AND q.due_at IS NOT NULL AND q.due_at <= now()
      AND greatest(q.fair_key, q.due_at) <= now() + $7::bigint * interval '1 millisecond'
      AND greatest(q.fair_key, q.due_at) >= (SELECT position_from FROM bounds)
      -- quota filter {
      AND (cardinality($5::uuid[]) = 0
           OR q.endpoint_id <> ALL ($5::uuid[])
           OR q.delivery_id = ANY (ARRAY(
                  SELECT a.delivery_id
                  FROM quotas
                  CROSS JOIN LATERAL (
                      SELECT o.delivery_id FROM delivery_queue o
                      WHERE o.state = 'pending' AND o.due_at IS NOT NULL AND o.due_at <= now()
                        AND greatest(o.fair_key, o.due_at)
                            <= now() + $7::bigint * interval '1 millisecond'
                        AND o.endpoint_id = quotas.endpoint_id
                      ORDER BY greatest(o.fair_key, o.due_at)
                      LIMIT quotas.quota
                  ) a)))
      -- } quota filter
    ORDER BY greatest(q.fair_key, q.due_at)
    LIMIT greatest($2 - (SELECT count(*) FROM lapsed) - (SELECT count(*) FROM pending_became_due),
                   0)
    FOR UPDATE SKIP LOCKED
),
pending_due AS (
    SELECT * FROM pending_became_due
    UNION ALL
    SELECT * FROM pending_above
),
due_now AS (
    SELECT * FROM lapsed
    UNION ALL
    SELECT * FROM pending_due
),
probe_candidates AS (
    SELECT p.id, p.previous_state, p.endpoint_id, p.due_at, p.position
    FROM endpoint_circuits c
    CROSS JOIN LATERAL (
        SELECT q.delivery_id AS id, q.state AS previous_state, q.endpoint_id, q.due_at,
               NULL::timestamptz AS position
        FROM delivery_queue q
        WHERE q.endpoint_id = c.endpoint_id AND q.state = 'pending' AND q.due_at IS NULL
        ORDER BY q.ordinal NULLS LAST, q.delivery_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) p
    WHERE c.state IN ('open', 'half_open') AND c.open_until <= now()
),
due AS (
    SELECT * FROM due_now
    UNION ALL
    SELECT * FROM probe_candidates WHERE id NOT IN (SELECT id FROM due_now)
),
-- Locked in endpoint order, so that two claims never wait on each other's circuits.
circuits AS (
    SELECT c.endpoint_id, c.state, c.open_until
    FROM endpoint_circuits c
    WHERE c.endpoint_id IN (SELECT endpoint_id FROM due) AND c.state <> 'closed'
    ORDER BY c.endpoint_id
    FOR UPDATE
),
decided AS (
    SELECT due.id, due.previous_state, due.endpoint_id, due.position,
           CASE
               WHEN c.state IS NULL OR NOT ep.enabled THEN 'send'
               WHEN c.open_until <= now()
                    AND row_number() OVER (PARTITION BY due.endpoint_id
                                           ORDER BY due.due_at NULLS LAST, due.id) = 1
                   THEN 'probe'
               ELSE 'park'
           END AS decision,
           now() + (coalesce(ep.timeout_ms, $3) + $4) * interval '1 millisecond' AS lease_expires_at
    FROM due
    JOIN endpoints ep ON ep.id = due.endpoint_id
    LEFT JOIN circuits c ON c.endpoint_id = due.endpoint_id
),
-- A half-open circuit is open again for the probe's lease: should the probe's worker die, the
-- next claim after that sends another probe.
probing AS (
    UPDATE endpoint_circuits c
    SET state = 'half_open', open_until = x.lease_expires_at, changed_at = now()
    FROM decided x
    WHERE x.decision = 'probe' AND c.endpoint_id = x.endpoint_id
    RETURNING c.endpoint_id
),
-- The queue rows first, then the deliveries' rows from what they became (the lock order).
leased AS (
    UPDATE delivery_queue q
    SET state = 'in_flight', attempts = q.attempts + 1, due_at = x.lease_expires_at,
        lease_owner = $1
    FROM decided x
    WHERE q.delivery_id = x.id AND x.decision IN ('send', 'probe')
    RETURNING q.delivery_id, q.attempts, q.due_at, x.previous_state, x.decision, x.position
),
-- A parked probe candidate that lost to a due delivery stays as it is.
queue_parked AS (
    UPDATE delivery_queue q
    SET state = 'pending', due_at = NULL, lease_owner = NULL
    FROM decided x
    WHERE q.delivery_id = x.id AND x.decision = 'park' AND q.due_at IS NOT NULL
    RETURNING q.delivery_id, x.position
),
claimed AS (
    UPDATE deliveries d
    SET state = 'in_flight', attempts = l.attempts, due_at = l.due_at, lease_owner = $1,
        updated_at = now()
    FROM leased l
    WHERE d.id = l.delivery_id
    RETURNING d.id, d.event_id, d.endpoint_id, d.attempts, d.budget_start, d.due_at,
              d.ordinal, l.previous_state, l.decision, l.position
),
parked AS (
    UPDATE deliveries d
    SET state = 'pending', due_at = NULL, lease_owner = NULL, updated_at = now()
    FROM queue_parked p
    WHERE d.id = p.delivery_id
    RETURNING d.id, d.attempts, p.position
),
logged AS (
    INSERT INTO delivery_log (delivery_id, kind, attempt, worker_id, lease_expires_at, error_class)
    SELECT id, 'claimed'::delivery_log_kind, attempts, $1, due_at,
           CASE WHEN previous_state = 'in_flight' THEN 'lease_expired'
                WHEN decision = 'probe' THEN 'circuit_probe' END
    FROM claimed
    UNION ALL
    SELECT id, 'deferred'::delivery_log_kind, attempts, $1, NULL, 'circuit_open'
    FROM parked
    ORDER BY 1
)
-- Leased deliveries with what it takes to send them, then one row per parked delivery (so that
-- the worker knows the batch was full); each with its fair position (NULL for a lease that ran
-- out or a probe): where the next claim's floor lies.
SELECT c.id, c.event_id, c.endpoint_id, c.attempts, c.budget_start,
       ep.url, ep.secret, ep.enabled,
       CASE WHEN ep.previous_secret_expires_at > now() THEN ep.previous_secret END
           AS previous_secret, ep.max_attempts, ep.retry_base_ms, ep.retry_cap_ms,
       ep.timeout_ms, ep.headers, ev.event_type, ev.payload::text AS payload,
       ev.created_at AS event_created_at, c.ordinal IS NOT NULL AS laned, false AS parked,
       c.position
FROM claimed c
JOIN endpoints ep ON ep.id = c.endpoint_id
JOIN events ev ON ev.id = c.event_id
UNION ALL
SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, true, position
FROM parked
-- And always one last row, with neither (`parked` NULL): when this claim began, for the next
-- claim's floor.
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, now()
