"""A2A protocol support: wire shapes, errors, 0.3 translation, SSE framing."""
