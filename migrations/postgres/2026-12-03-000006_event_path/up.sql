-- The page an event happened on, as live analytics and metrics name it (props.path, else
-- props.page, else the landing page's path), worked out once when the event is written so
-- that metrics group and filter by a plain column. Rows written before this column existed
-- take it from their props; their landing page is not parsed here.
ALTER TABLE events ADD COLUMN path TEXT;
UPDATE events
   SET path = coalesce(props ->> 'path', props ->> 'page')
 WHERE props IS NOT NULL;
