-- The version's deferrals in the window: predictions whose log says whether they deferred (records
-- logged before deferral say nothing and are left out), and how many of those deferred (plain SQL:
-- DuckDB and BigQuery both run it).
SELECT COUNT(deferred) AS known, SUM(CASE WHEN deferred THEN 1 ELSE 0 END) AS deferred
FROM predictions
WHERE date BETWEEN @first_day AND @last_day AND t >= @since AND t < @until
  AND version = @version AND traffic_class = @traffic_class
