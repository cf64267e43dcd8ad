-- Fair claiming across apps: an app that publishes a flood must not hold back the others.
--
-- Claiming oldest-first puts an event published after another app's flood behind all of it.
-- Instead, each delivery a publish creates gets a fair key, a virtual start time in the manner
-- of fair queuing: the app's deliveries are spaced 1/R apart (R, the fair rate per app, is
-- fairness.rs's) from the later of now and the key of the app's newest pending delivery. An app
-- without a backlog starts at now; an app with one starts behind it. The claim takes due
-- deliveries in order of greatest(fair_key, due_at): a retry waits for its due time, a fresh
-- delivery for its turn among the apps. Claiming stays work-conserving (every due delivery may
-- be claimed; the key only orders them), so a flood alone drains at full speed.
--
-- A key is never more than the fair horizon (fairness.rs) ahead of its publish time, so every
-- due delivery's key is within the horizon of now and the claim looks no further: the
-- deliveries it passes over without taking are the few retries falling due within it.
--
-- The key is a scheduling order, not delivery state: it has no place in the log, the
-- projection check leaves it out, and deliveries created before this migration (no key) are
-- ordered by their due time.

ALTER TABLE deliveries ADD COLUMN fair_key timestamptz;

-- The claimable set was one index over pending and in-flight deliveries by due time. It becomes
-- three, each the order one reader needs:
DROP INDEX deliveries_claimable;
-- the claim's order, with the due time beside it so that passing over a delivery that is not
-- due yet is decided in the index;
CREATE INDEX deliveries_queue ON deliveries ((greatest(fair_key, due_at)), due_at)
    WHERE state = 'pending' AND due_at IS NOT NULL;
-- when the next pending delivery falls due (the workers' timer, the lag metric);
CREATE INDEX deliveries_pending_due ON deliveries (due_at)
    WHERE state = 'pending' AND due_at IS NOT NULL;
-- leases by expiry: a delivery whose worker died is due again when its lease runs out.
CREATE INDEX deliveries_leases ON deliveries (due_at) WHERE state = 'in_flight';
