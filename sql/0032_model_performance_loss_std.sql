-- Per-row spread of the realised log loss per day: the drift detector's standard error.
ALTER TABLE model_performance ADD COLUMN IF NOT EXISTS log_loss_std double precision;
