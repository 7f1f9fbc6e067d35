"""Sync: the pure plan, and (with the mirror) the engine that executes it into a static tree."""
