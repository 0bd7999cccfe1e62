"""Signed request ids: what they carry, what fails verification, and the key file."""

from __future__ import annotations

import os
import re

import pytest

from aiqleads import contracts
from aiqleads.errors import ConfigError
from aiqleads.events import attribution

KEY = bytes(range(32))
ID_RULE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")  # the API's rule for ids


def test_issued_id_names_version_variant_and_time():
    rid = attribution.issue(KEY, 1795941886, "canary", "u000042", now=1_765_000_000.123)
    got = attribution.verify(KEY, rid, "u000042")
    assert (got.model_version, got.variant) == (1795941886, "canary")
    assert got.issued_at == pytest.approx(1_765_000_000.123, abs=1e-3)
    assert got.request_id == rid


def test_ids_fit_the_api_and_contract_bounds():
    rid = attribution.issue(KEY, 9_999_999_999, "stable", "u", now=4_102_444_800.0)  # year 2100
    assert ID_RULE.fullmatch(rid)
    assert len(rid) <= contracts.EVENTS.field(contracts.REQUEST_ID).max_length


def test_each_answer_gets_its_own_id():
    ids = {attribution.issue(KEY, 1, "stable", "u1", now=1.0) for _ in range(200)}
    assert len(ids) == 200


def test_id_of_another_user_fails():
    rid = attribution.issue(KEY, 7, "stable", "u1", now=1.0)
    with pytest.raises(attribution.UnknownRequestError, match="to user 'u2'"):
        attribution.verify(KEY, rid, "u2")


def test_id_signed_with_another_key_fails():
    rid = attribution.issue(bytes(32), 7, "stable", "u1", now=1.0)
    with pytest.raises(attribution.UnknownRequestError):
        attribution.verify(KEY, rid, "u1")


@pytest.mark.parametrize("field", [0, 1, 2, 3])
def test_changing_any_field_fails(field):
    rid = attribution.issue(KEY, 7, "stable", "u1", now=1.0)
    parts = rid.split(".")
    parts[field] = {0: "r8", 1: "c", 2: "zz", 3: "00000000"}[field]
    with pytest.raises(attribution.UnknownRequestError):
        attribution.verify(KEY, ".".join(parts), "u1")


@pytest.mark.parametrize(
    "rid", ["abc", "r1.s.1.2", "r1.s.1.2.3.4", "x1.s.a.b.0123456789abcdef", ""]
)
def test_malformed_ids_fail(rid):
    with pytest.raises(attribution.UnknownRequestError):
        attribution.verify(KEY, rid, "u1")


def test_unknown_variant_is_refused_at_issue():
    with pytest.raises(ValueError, match="variant"):
        attribution.issue(KEY, 1, "treatment", "u1", now=1.0)


def test_key_file_is_created_private_and_kept(tmp_path):
    path = attribution.create_key_file(tmp_path / "keys" / "attribution.key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    key = attribution.load_key(path)
    assert len(key) == attribution.KEY_BYTES
    attribution.create_key_file(path)  # a second call keeps the key: old ids still verify
    assert attribution.load_key(path) == key


def test_key_readable_by_others_is_refused(tmp_path):
    path = attribution.create_key_file(tmp_path / "k")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        attribution.load_key(path)


@pytest.mark.parametrize(
    ("text", "message"), [("zz", "not hex"), ("abcd", "too short")], ids=["hex", "short"]
)
def test_bad_keys_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "k"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=message):
        attribution.load_key(path)


def test_key_from_the_environment():
    key = attribution.load_key(None, {attribution.KEY_ENV: KEY.hex()})
    assert key == KEY
    with pytest.raises(ConfigError, match=attribution.KEY_ENV):
        attribution.load_key(None, {})
