"""Secrets never leave the process: URLs, DSNs and command lines as they may be printed,
logged, stored (provenance) or exported.

Every form that carries a secret is masked with ``***``:
    scheme://user:PASSWORD@host/...           URL userinfo (any scheme, any password text)
    ...?password=X&sslpassword=Y              query parameters and libpq ``key=value`` DSNs
    --password X, --db-passphrase=X           command-line flags named like a secret
Over-masking is preferred to a leak: a value that only looks secret is masked too.
"""
from __future__ import annotations

import re

MASK = "***"
SECRET_WORDS = ("password", "passwd", "pwd", "sslpassword", "passphrase", "secret", "token",
                "api_key", "apikey", "access_key", "private_key")
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<secret>\S*)@")
_PARAM = re.compile(r"(?i)(?P<head>(?<![A-Za-z0-9_])(?:[A-Za-z0-9_]*(?:" + "|".join(SECRET_WORDS)
                    + r"))\s*=\s*)(?P<secret>'[^']*'|\"[^\"]*\"|[^&\s;,]*)")
_SECRET_FLAG = re.compile(r"(?i)^--?[A-Za-z0-9_-]*(?:" + "|".join(SECRET_WORDS).replace("_", "[-_]")
                          + r")[A-Za-z0-9_-]*$")


def redact(text: str) -> str:
    """`text` (a URL, a DSN, an error message) with every secret-bearing part masked."""
    if not isinstance(text, str):
        text = str(text)
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PARAM.sub(lambda m: f"{m['head']}{MASK}", text)


def redact_argv(argv) -> list:
    """A command line as it may be stored: URLs and ``key=value`` secrets masked, and the
    value of a flag named like a secret (``--password X`` or ``--password=X``) too."""
    out, hide_next = [], False
    for arg in map(str, argv):
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact(arg))
    return out


def host_has_password(host: str) -> bool:
    """Whether an SSH ``host:`` written as ``user:password@host`` carries a password."""
    userinfo, at, _ = host.rpartition("@")
    return bool(at) and ":" in userinfo
