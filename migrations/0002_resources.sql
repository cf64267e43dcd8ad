-- Apps and endpoints become full resources: listing, updating, soft deletion, custom headers and
-- metadata.
--
-- Deletion is soft: rows that the delivery log refers to stay (the log is append-only, and a
-- delivery's history must outlive its endpoint). Deleted rows vanish from the API.

ALTER TABLE apps ADD COLUMN deleted_at timestamptz;

-- The last characters of a key, so people can tell their keys apart without the secret.
ALTER TABLE api_keys ADD COLUMN hint text NOT NULL DEFAULT '';

ALTER TABLE endpoints
    ADD COLUMN deleted_at timestamptz,
    -- Extra request headers, validated by the API (no hop-by-hop or signature headers).
    ADD COLUMN headers jsonb NOT NULL DEFAULT '{}',
    -- Free-form string pairs for the owner's bookkeeping.
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';

-- Lists page newest first by id (ids are time-ordered UUIDs).
DROP INDEX endpoints_app;
CREATE INDEX endpoints_app_page ON endpoints (app_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX apps_page ON apps (id DESC) WHERE deleted_at IS NULL;
