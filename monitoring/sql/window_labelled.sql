-- Predicted against true label for every prediction of the window that has feedback (the latest label
-- per id wins; feedback given after the window, up to @now, still joins its prediction by id).
-- Feedback whose id names no prediction of this version and traffic class in the window has a NULL
-- predicted label: counted as unmatched.
WITH truth AS (
  SELECT id, label FROM feedback
  WHERE date BETWEEN @first_day AND @feedback_last_day AND t >= @since AND t < @now
  QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY t DESC) = 1
),
live AS (
  SELECT id, label FROM predictions
  WHERE date BETWEEN @first_day AND @last_day AND t >= @since AND t < @until
    AND version = @version AND traffic_class = @traffic_class
)
SELECT live.label AS predicted, truth.label AS truth, COUNT(*) AS n
FROM truth LEFT JOIN live ON live.id = truth.id
GROUP BY 1, 2
