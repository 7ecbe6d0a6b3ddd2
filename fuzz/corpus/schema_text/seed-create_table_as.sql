CREATE TABLE nums AS SELECT 1 AS n, 'one' AS name UNION ALL SELECT 2, 'two';
CREATE INDEX nums_lower ON nums(lower(name));
