"""Build a layer: pick a builder, install, package into a deterministic zip, cache it."""
