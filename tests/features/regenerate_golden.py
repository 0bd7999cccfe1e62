"""Regenerate the golden of the feature view definitions on purpose (after a deliberate change).

    .venv/bin/python tests/features/regenerate_golden.py

It refuses an incompatible change (a removed or retyped feature, a changed default) that
does not come with a new version of the view, and keeps retired versions in the golden.
Review the diff before committing.
"""

from __future__ import annotations

import pathlib
import sys

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "feature_views.json"


def main() -> int:
    from aiqleads.features import compat
    from aiqleads.features.definitions import VIEWS

    old = compat.loads(GOLDEN.read_text()) if GOLDEN.exists() else []
    try:
        merged = compat.merge(old, VIEWS)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(compat.dumps(merged))
    print(f"wrote {GOLDEN} ({len(merged)} view versions)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    sys.exit(main())
