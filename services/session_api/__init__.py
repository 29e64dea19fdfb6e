"""session_api: JWT authentication, sessions, UI-event audit, escalations and metrics (gRPC, port 50053)."""
