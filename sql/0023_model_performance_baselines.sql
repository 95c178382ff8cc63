-- Realised performance beside its baselines: constant class priors of the model's training window
-- (log loss), and persistence of the newest matured label (accuracy). majority_accuracy now holds
-- the accuracy of the training window's majority class (not of the evaluated rows themselves).
ALTER TABLE model_performance ADD COLUMN IF NOT EXISTS priors_log_loss double precision;
ALTER TABLE model_performance ADD COLUMN IF NOT EXISTS persistence_accuracy double precision;
ALTER TABLE model_performance ADD COLUMN IF NOT EXISTS persistence_rows integer;
