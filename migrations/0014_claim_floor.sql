-- Claims scan the queue from a floor (claim_due.sql): deliveries at or above the fair position
-- the worker's last claim reached, and below it only those that became due since. That second
-- scan walks the pending-due index over the last moments' due times (claim_due.sql orders it by
-- due time so that the generic plan takes this index, not the fair one); with the fair position
-- as its second column, the deliveries above the floor (most of them, under a flood) are passed
-- over inside the index instead of each read from the table.
DROP INDEX delivery_queue_pending_due;
CREATE INDEX delivery_queue_pending_due ON delivery_queue (due_at, (greatest(fair_key, due_at)))
    WHERE state = 'pending' AND due_at IS NOT NULL;
