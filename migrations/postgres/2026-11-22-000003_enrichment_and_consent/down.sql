DROP TABLE consents;
ALTER TABLE events
    DROP COLUMN browser_name, DROP COLUMN browser_version, DROP COLUMN os_name,
    DROP COLUMN os_version, DROP COLUMN device_type, DROP COLUMN is_bot, DROP COLUMN country,
    DROP COLUMN region, DROP COLUMN city, DROP COLUMN ip_address, DROP COLUMN referrer_host;
