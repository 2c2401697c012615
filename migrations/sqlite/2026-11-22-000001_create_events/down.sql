DROP TABLE sessions;
DROP TABLE events;
