"""Worker stages: polarity, association, mechanism, catalog."""
