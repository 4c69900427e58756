"""Everything Roger-specific: the one module that changes when Roger's real API is known."""
