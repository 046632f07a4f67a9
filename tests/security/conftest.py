from tests.mcp.conftest import mcp_cache

__all__ = ["mcp_cache"]
