"""thread_store: ChatKit threads, items and attachments in Postgres with a Redis hot cache (gRPC, port 50051)."""
