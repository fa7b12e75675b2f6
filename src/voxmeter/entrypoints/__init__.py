"""Entrypoints: HTTP and CLI. They translate; the rules live in the domain and service layers."""
