"""Feature values at the store's boundary: checked against the view's schema on every write,
encoded as Redis hash fields, decoded on read.

A write with a value of the wrong type is refused with a `FeatureTypeError` that names the
view, the feature, its type and the value; nothing of that write is stored. Missing values
(``None``, NaN) are not stored at all: a reader gets the feature's default.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping

from aiqleads.errors import DataError
from aiqleads.features.definitions import Feature, FeatureValue, FeatureView, ValueType


class FeatureTypeError(DataError):
    """A feature write whose value does not fit the feature's type: refused."""


def _refuse(view: FeatureView, feature: Feature, value: object, why: str) -> FeatureTypeError:
    return FeatureTypeError(
        f"{view.ref} feature {feature.name!r} is {feature.dtype.value}; got {value!r} "
        f"({type(value).__name__}): {why}"
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def validate(view: FeatureView, feature: Feature, value: object) -> FeatureValue:
    """``value`` as the feature's type (None for missing); FeatureTypeError when it is not
    one. Numbers are not strings and booleans are not numbers."""
    if value is None:
        return None
    kind = feature.dtype
    if isinstance(value, bool):
        raise _refuse(view, feature, value, "a boolean is not a feature value")
    if kind is ValueType.INT64:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _refuse(view, feature, value, "expected a whole number")
    if kind in (ValueType.FLOAT64, ValueType.TIMESTAMP):
        if isinstance(value, int | float):
            return _finite(float(value))
        raise _refuse(view, feature, value, "expected a number")
    if kind is ValueType.STRING:
        if not isinstance(value, str):
            raise _refuse(view, feature, value, "expected text")
        if feature.domain is not None and value not in feature.domain:
            raise _refuse(view, feature, value, f"expected one of {list(feature.domain)}")
        return value
    if not isinstance(value, Mapping):
        raise _refuse(view, feature, value, "expected a {key: number} mapping")
    out: dict[str, float] = {}
    for key, number in value.items():
        if not isinstance(key, str) or isinstance(number, bool):
            raise _refuse(view, feature, value, "expected text keys and number values")
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise _refuse(view, feature, value, f"{key!r} is not a finite number")
        out[key] = float(number)
    return out


def parse_text(view: FeatureView, feature: Feature, text: str) -> FeatureValue:
    """A value typed on a command line (``price=410000``) as the feature's type; ``""`` is
    missing. Timestamps take seconds or an ISO date-time (UTC unless it says otherwise)."""
    if text == "":
        return None
    kind = feature.dtype
    try:
        if kind is ValueType.INT64:
            return validate(view, feature, int(text))
        if kind is ValueType.FLOAT64:
            return validate(view, feature, float(text))
        if kind is ValueType.TIMESTAMP:
            try:
                return validate(view, feature, float(text))
            except ValueError:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=dt.timezone.utc)
                return stamp.timestamp()
        if kind is ValueType.FLOAT_MAP:
            return validate(view, feature, json.loads(text))
    except (ValueError, json.JSONDecodeError) as e:
        raise _refuse(view, feature, text, str(e)) from e
    return validate(view, feature, text)


def encode(feature: Feature, value: FeatureValue) -> str | None:
    """A validated value as a hash field's text; None: do not store (missing)."""
    if value is None:
        return None
    if feature.dtype is ValueType.FLOAT_MAP:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return repr(value) if isinstance(value, float) else str(value)


def decode(feature: Feature, raw: bytes | str | None) -> FeatureValue:
    """A stored field as the feature's value; a field that is absent or unreadable reads as
    the default (``None`` when the caller wants to know: see `decode_or_none`)."""
    value = decode_or_none(feature, raw)
    return feature.default if value is None else value


def decode_or_none(feature: Feature, raw: bytes | str | None) -> FeatureValue:
    """A stored field as the feature's value, or None when absent or unreadable."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        if feature.dtype is ValueType.INT64:
            return int(text)
        if feature.dtype in (ValueType.FLOAT64, ValueType.TIMESTAMP):
            return _finite(float(text))
        if feature.dtype is ValueType.FLOAT_MAP:
            data = json.loads(text)
            if not isinstance(data, dict):
                return None
            return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError):
        return None
    return text
