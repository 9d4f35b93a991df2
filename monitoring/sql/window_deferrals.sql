-- The version's deferrals in the window: predictions whose log says whether they deferred (records
-- logged before deferral say nothing and are left out), and how many of those deferred.
SELECT COUNT(deferred) AS known, COUNT(*) FILTER (WHERE deferred) AS deferred
FROM predictions
WHERE date BETWEEN @first_day AND @last_day AND t >= @since AND t < @until
  AND version = @version AND traffic_class = @traffic_class
