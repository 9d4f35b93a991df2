-- Predictions in the window per version and traffic class (what the check skips is reported, not hidden).
SELECT version, traffic_class, COUNT(*) AS n
FROM predictions
WHERE date BETWEEN @first_day AND @last_day AND t >= @since AND t < @until
GROUP BY version, traffic_class
