"""Fingerprint a dependency source: resolve it for the target and hash what decides the bytes."""
