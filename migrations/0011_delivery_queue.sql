-- The queue moves out of `deliveries` into a narrow table of its own.
--
-- Every delivery's row in `deliveries` changes at least twice (claimed, then its outcome). While
-- the columns those changes touch (state, due time) were in its indexes, each change wrote a new
-- entry into every index of the table, five full ones and the partial ones the new version
-- matched: most of PostgreSQL's work per delivery. Now no index of `deliveries` names a column
-- that changes after creation, so its updates are HOT (the new version stays on its page and no
-- index is touched), and what the claim and the queue readers need lives in `delivery_queue`:
-- one row per delivery that is not delivered, with the columns to find, lease and order it.
--
-- `delivery_queue` is a second projection of the log, beside `deliveries` and written by the
-- same statements: a delivery has a queue row exactly while its state is not `succeeded`, and
-- the row's state, attempts, due time and lease holder are the delivery's (`hookd projection
-- check` compares them). Dead-lettered and cancelled deliveries keep theirs, so that listing or
-- redriving them never scans the delivered ones. Writers lock the queue row before the
-- delivery's row, the order claims take with SKIP LOCKED, so that no two statements wait on
-- each other. Like the log, it has no foreign key: one would lock the delivery's row on every
-- insert; retention removes the rows with their deliveries, and the check counts orphans.

CREATE TABLE delivery_queue (
    delivery_id uuid PRIMARY KEY,
    app_id      uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    state       delivery_state NOT NULL CHECK (state <> 'succeeded'),
    attempts    integer NOT NULL,
    -- As in `deliveries`: when a pending delivery is due or an in-flight lease expires; NULL for
    -- a parked delivery (waiting for its circuit or its lane) and once final.
    due_at      timestamptz,
    lease_owner text,
    -- The fair key (0010_fair_queue.sql): a scheduling order, not delivery state, so it lives
    -- here only.
    fair_key    timestamptz,
    -- The lane position (0008_ordered_delivery.sql); also kept in `deliveries`.
    ordinal     bigint
);

INSERT INTO delivery_queue (delivery_id, app_id, endpoint_id, state, attempts, due_at,
                            lease_owner, fair_key, ordinal)
SELECT id, app_id, endpoint_id, state, attempts, due_at, lease_owner, fair_key, ordinal
FROM deliveries
WHERE state <> 'succeeded';

-- The readers of the queue, each with the order it needs (as in 0010 and before, now here):
-- the claim's fair order, with the due time beside it;
CREATE INDEX delivery_queue_fair ON delivery_queue ((greatest(fair_key, due_at)), due_at)
    WHERE state = 'pending' AND due_at IS NOT NULL;
-- when the next pending delivery falls due (the workers' timer, the lag metric);
CREATE INDEX delivery_queue_pending_due ON delivery_queue (due_at)
    WHERE state = 'pending' AND due_at IS NOT NULL;
-- leases by expiry;
CREATE INDEX delivery_queue_leases ON delivery_queue (due_at) WHERE state = 'in_flight';
-- parked deliveries by endpoint (resumed together, probes);
CREATE INDEX delivery_queue_parked ON delivery_queue (endpoint_id, delivery_id)
    WHERE state = 'pending' AND due_at IS NULL;
-- the live deliveries of lanes, in lane order;
CREATE INDEX delivery_queue_lanes ON delivery_queue (endpoint_id, ordinal)
    WHERE ordinal IS NOT NULL AND state IN ('pending', 'in_flight');
-- dead letters by endpoint;
CREATE INDEX delivery_queue_dead ON delivery_queue (endpoint_id, delivery_id) WHERE state = 'dead';
-- an app's deliveries in a state, newest first (lists, bulk redrive, the newest fair key).
CREATE INDEX delivery_queue_app_state ON delivery_queue (app_id, state, delivery_id DESC);

DROP INDEX deliveries_queue;
DROP INDEX deliveries_pending_due;
DROP INDEX deliveries_leases;
DROP INDEX deliveries_parked;
DROP INDEX deliveries_ordered_live;
DROP INDEX deliveries_dead;
DROP INDEX deliveries_app_state_page;
ALTER TABLE deliveries DROP COLUMN fair_key;

-- Room on each page for the updated versions of its rows, so that updates stay HOT (applies to
-- pages written from now on).
ALTER TABLE deliveries SET (fillfactor = 85);

-- The queue table churns: every row is inserted, updated and deleted within moments. Vacuum it
-- early and fast so the heads of its indexes stay clean; it is small, so each run is short.
ALTER TABLE delivery_queue SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);
