-- Leasing at publish (engine/src/handoff.rs, create_deliveries.sql): a publish may lease the
-- deliveries it creates to a worker in its own process, logging `claimed` right after
-- `created` in the same statement. Those need no worker woken: the doorbell rings only for a
-- `created` row whose delivery the statement did not also claim.
CREATE OR REPLACE FUNCTION hookd_ring_workers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows n
             WHERE n.kind::text IN ('redriven', 'retry_scheduled', 'released', 'resumed')
                OR (n.kind = 'created'
                    AND NOT EXISTS (SELECT 1 FROM new_rows c
                                    WHERE c.delivery_id = n.delivery_id AND c.kind = 'claimed'))) THEN
    PERFORM pg_notify('hookd_work', '');
  END IF;
  RETURN NULL;
END
$$;
