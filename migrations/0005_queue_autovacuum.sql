-- Autovacuum for the queue table. Every delivery's row is updated at least twice (claimed, then
-- its outcome), and the claim reads the head of the due_at index, where the dead versions those
-- updates leave behind gather. At the default thresholds (20 % of the table changed) vacuum
-- comes rarely on a large table and then has much to do; here it comes after 1 % and is allowed
-- to work faster, so the head of the queue stays clean. delivery_log is insert-only and keeps
-- the defaults.
ALTER TABLE deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);
