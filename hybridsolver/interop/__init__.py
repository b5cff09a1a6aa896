"""Bridges to other codes (imported on demand; their packages are optional)."""
