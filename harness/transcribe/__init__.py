"""transcribe stage; see docs/ARCHITECTURE.md."""
