-- Bars an exchange outage left with zero volume and open = high = low = close (the vendor filled
-- them with the previous close): stored and flagged, so features and labels can treat them as
-- missing. Existing rows are computed from their values.
ALTER TABLE raw_ohlcv ADD COLUMN IF NOT EXISTS vendor_filled boolean NOT NULL DEFAULT false;
UPDATE raw_ohlcv SET vendor_filled = true
WHERE volume = 0 AND open = high AND high = low AND low = close AND NOT vendor_filled;
