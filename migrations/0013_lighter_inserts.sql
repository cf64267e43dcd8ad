-- Publishing writes an event and a delivery per endpoint; each of those rows checked a foreign
-- key per referenced row (the app, the event, the endpoint): a lookup and a KEY SHARE row lock
-- on a row that every concurrent publish of the app locks too, about 6 % of PostgreSQL's CPU
-- in the benchmark's profile. The rows they guarded are never deleted by hookd: apps and
-- endpoints are deleted softly (the API keeps their history), and events only by retention,
-- after their last delivery and in the same statement. The guards below keep what the keys
-- kept, at the only moment it can break (a delete), instead of on every insert: deleting an
-- event, endpoint or app that deliveries or events still reference is refused.

ALTER TABLE deliveries DROP CONSTRAINT deliveries_app_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_endpoint_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_app_id_fkey;

CREATE FUNCTION hookd_guard_event_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows o JOIN deliveries d ON d.event_id = o.id) THEN
    RAISE EXCEPTION 'events are removed only by retention, with the last of their deliveries'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER events_guard_delete AFTER DELETE ON events
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_guard_event_delete();

CREATE FUNCTION hookd_guard_endpoint_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows o JOIN deliveries d ON d.endpoint_id = o.id) THEN
    RAISE EXCEPTION 'an endpoint with deliveries is never deleted: their history names it (the API deletes endpoints softly)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER endpoints_guard_delete AFTER DELETE ON endpoints
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_guard_endpoint_delete();

CREATE FUNCTION hookd_guard_app_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows o JOIN events e ON e.app_id = o.id)
     OR EXISTS (SELECT 1 FROM old_rows o JOIN deliveries d ON d.app_id = o.id) THEN
    RAISE EXCEPTION 'an app with events is never deleted: their history names it (the API deletes apps softly)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER apps_guard_delete AFTER DELETE ON apps
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION hookd_guard_app_delete();
