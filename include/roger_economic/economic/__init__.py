"""Everything e-conomic-specific: its conventions, written once, and its REST client."""
