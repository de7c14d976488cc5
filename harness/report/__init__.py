"""Reports built from a run's metrics: metrics.json, report.md, and the terminal table."""
