"""Small helpers shared across mfff."""
