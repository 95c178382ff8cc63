"""Programs outside the code location: demo, backfill, checks, model administration."""
