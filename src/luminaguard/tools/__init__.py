"""Tools the agent can call: the model, the built-ins, and (later) MCP and OpenAPI bridges."""
