"""Deterministic demo A2A agents (see :mod:`maestro_gateway.demo.agents`)."""
