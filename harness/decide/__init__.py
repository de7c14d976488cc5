"""decide stage; see docs/ARCHITECTURE.md."""
