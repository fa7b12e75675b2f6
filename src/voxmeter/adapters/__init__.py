"""Adapters: storage and limiter implementations behind the service-layer ports."""
