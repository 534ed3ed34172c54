"""runyard as an MCP server: the protocol side, shared by the streamable HTTP endpoint
(``runyard.api.mcp``, services in process) and ``runyard mcp`` over stdio (a runyard server
reached through the SDK). Imports nothing from the server, so the stdio command runs from
a client install."""
