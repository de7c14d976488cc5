"""stats stage; see docs/ARCHITECTURE.md."""
