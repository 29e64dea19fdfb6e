"""edge: the ChatKit HTTP protocol and REST endpoints (HTTP, port 8000)."""
