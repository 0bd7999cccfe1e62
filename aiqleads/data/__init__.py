"""Data sets: validation, synthetic generation, real-data adapters."""
