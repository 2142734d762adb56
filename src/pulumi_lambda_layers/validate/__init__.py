"""Validate a layer zip: layout, zip safety, ELF and wheel tags, sizes."""
