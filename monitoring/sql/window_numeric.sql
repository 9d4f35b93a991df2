-- Value counts of each numeric statistic of the version's traffic in the window (4 decimals: the log
-- keeps 5), so drift tests, PSI and Wasserstein distances run on a few thousand rows, not millions.
WITH live AS (
  SELECT * FROM predictions
  WHERE date BETWEEN @first_day AND @last_day AND t >= @since AND t < @until
    AND version = @version AND traffic_class = @traffic_class
)
SELECT 'width' AS feature, input_width * 1.0 AS value, COUNT(*) AS n FROM live GROUP BY 1, 2
UNION ALL SELECT 'height', input_height * 1.0, COUNT(*) FROM live GROUP BY 1, 2
UNION ALL SELECT 'mean', ROUND(input_mean, 4), COUNT(*) FROM live GROUP BY 1, 2
UNION ALL SELECT 'std', ROUND(input_std, 4), COUNT(*) FROM live GROUP BY 1, 2
UNION ALL SELECT 'confidence', ROUND(confidence, 4), COUNT(*) FROM live GROUP BY 1, 2
