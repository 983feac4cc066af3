"""Widgets of the app: small and single-purpose."""
