"""Stream stage: SeedLink ingest, buffering, detection, replay server and scenarios."""
