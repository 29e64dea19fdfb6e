"""agent_runner: agents on the OpenAI Agents SDK with MCP tools, streaming ChatKit events (gRPC, port 50052)."""
