"""Passwords read from files, so that they never appear in a process's arguments.

A process's command line is world-readable (``/proc/<pid>/cmdline``, ``ps``); a file of mode
0600 (locally) or a mounted Kubernetes Secret (in a pod) is not. The gateways and the monitor
take ``--redis-url``/``--event-store-url`` without a password and a ``*-password-file`` flag
beside it; `url_with_password` puts the file's password into the URL in memory, just before
the client connects. Redis itself reads ``requirepass`` from a config file given as its
first argument (`serving.command_lines.redis_args`), never from ``--requirepass``.
"""

from __future__ import annotations

import pathlib
import urllib.parse

from aiqleads.errors import ConfigError


def read_password(path: pathlib.Path) -> str:
    """The password in ``path`` (one line; a trailing newline is not part of it)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(
            f"cannot read the password file {path}: {e.strerror or e}; mount the Secret there "
            "or pass the right path"
        ) from e
    password = text.rstrip("\r\n")
    if not password or "\n" in password:
        raise ConfigError(f"password file {path} must hold one non-empty line")
    return password


def url_with_password(url: str, password_file: pathlib.Path | None) -> str:
    """``url`` (redis://host:port/db) with the password of ``password_file`` in it, or ``url``
    unchanged without a file. The result is for the client only: never log it (use
    `aiqleads.events.log.redact`)."""
    if password_file is None:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":  # redis-py takes a socket's password as a query parameter
        query = urllib.parse.parse_qsl(parts.query)
        query = [(k, v) for k, v in query if k != "password"]
        query.append(("password", read_password(password_file)))
        return f"{url.partition('?')[0]}?{urllib.parse.urlencode(query)}"
    password = urllib.parse.quote(read_password(password_file), safe="")
    user = urllib.parse.quote(parts.username, safe="") if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))
