"""aiqleads package."""
