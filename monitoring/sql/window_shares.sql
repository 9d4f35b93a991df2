-- Per format and predicted class: counts, the summed intensity histogram and the sums behind the
-- label-free accuracy estimate (mean confidence, its variance).
SELECT
  input_format, label, COUNT(*) AS n,
  COUNT(input_hist_0) AS n_hist,
  SUM(input_hist_0) AS hist_0, SUM(input_hist_1) AS hist_1, SUM(input_hist_2) AS hist_2,
  SUM(input_hist_3) AS hist_3, SUM(input_hist_4) AS hist_4, SUM(input_hist_5) AS hist_5,
  SUM(input_hist_6) AS hist_6, SUM(input_hist_7) AS hist_7,
  COUNT(confidence) AS n_confidence,
  SUM(confidence) AS confidence_sum,
  SUM(confidence * confidence) AS confidence_sq_sum
FROM predictions
WHERE date BETWEEN @first_day AND @last_day AND t >= @since AND t < @until
  AND version = @version AND traffic_class = @traffic_class
GROUP BY input_format, label
