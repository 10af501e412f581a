"""Cell specs to gate DAGs, programs and circuit exports (pure Python, no torch)."""
