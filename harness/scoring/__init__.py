"""scoring stage; see docs/ARCHITECTURE.md."""
