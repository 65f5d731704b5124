"""Thin console entry points; the work happens in the library modules."""
