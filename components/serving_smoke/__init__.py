"""Serving smoke validation: canary requests and a latency budget before the push."""
