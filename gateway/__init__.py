"""The OpenAI-compatible gateway: one endpoint for the whole fleet, ``auto:*`` models routed by policy."""
