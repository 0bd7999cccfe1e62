"""Drift and skew check: newest span vs previous span, and training vs serving (TFDV)."""
