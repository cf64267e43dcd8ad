-- Claims scan the queue from a floor (claim_due.sql): deliveries at or above the fair position
-- the worker's last claim reached, and below it only those that became due since. That second
-- scan may walk the pending-due index over the last moments' due times; with the fair position
-- as its second column, the deliveries above the floor (most of them, under a flood) are passed
-- over inside the index instead of each read from the table, as the fair index (position, due
-- time) passes over the old ones when the planner takes that instead.
DROP INDEX delivery_queue_pending_due;
CREATE INDEX delivery_queue_pending_due ON delivery_queue (due_at, (greatest(fair_key, due_at)))
    WHERE state = 'pending' AND due_at IS NOT NULL;
