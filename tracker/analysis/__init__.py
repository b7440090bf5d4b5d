"""Results out of the store: exports (CSV, JSON, Parquet), read-only SQL and a query API."""
