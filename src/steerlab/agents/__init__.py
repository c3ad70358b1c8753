"""Steerlab's capabilities as an agent's tools: plain functions over a ``Lab`` (``tools``), served over MCP
(``mcp_server``)."""
