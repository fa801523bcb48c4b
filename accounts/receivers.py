"""Receivers of third-party signals (allauth); each only calls a service."""
