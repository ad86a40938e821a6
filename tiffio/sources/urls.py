"""URLs: which strings are URLs, what may be shown of them, and where their credentials may go.

* :func:`redact_url` / :func:`redact_text`: the form of a URL that messages, reprs, warnings
  and ``TiffFile.name`` show. The password of ``user:password@`` and the values of query
  parameters that carry signatures or credentials (presigned S3, GCS and Azure URLs:
  ``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``X-Goog-Signature``,
  ``X-Goog-Credential``, ``sig``, ``Signature``, ``token``...; names compared without regard
  to case) become ``REDACTED``; the rest stays, so the message still says which object.
* :func:`origin`: (scheme, host, port) with default ports filled in; a redirect that changes
  it must not carry the caller's credentials (urllib3's ``is_same_host``).
* :func:`split_userinfo`: ``https://user:pw@host/x`` -> (``https://host/x``, user, password).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

__all__ = ["is_url", "redact_url", "redact_text", "origin", "split_userinfo", "SECRET_PARAMETERS", "REDACTED"]

REDACTED = "REDACTED"

#: query parameters whose values are secrets or credentials (lower case): AWS SigV4 and SigV2,
#: Google Cloud Storage V4 and V2, Azure SAS, CloudFront, and the names services use for tokens
SECRET_PARAMETERS = frozenset({
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "signature",
    "x-goog-signature", "x-goog-credential", "googleaccessid", "sig",
    "token", "access_token", "id_token", "refresh_token", "api_key", "apikey", "key", "secret",
    "client_secret", "password", "passwd", "code",
})

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: a URL inside free text (an exception message of another library)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
#: name=value pairs that look like query parameters, in free text that is not a whole URL
_PARAM_IN_TEXT = re.compile(r"(?i)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]+)=([^&\s'\"<>]*)")


def is_url(source: Any) -> bool:
    """True for a string such as 'https://...' or 's3://bucket/key' (not a local path)."""
    return isinstance(source, str) and bool(_URL.match(source)) and not source.lower().startswith("file://")


def _redact_query(query: str) -> str:
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, eq, _value = item.partition("=")
        if eq and urllib.parse.unquote_plus(name).lower() in SECRET_PARAMETERS:
            parts.append(f"{name}={REDACTED}")
        else:
            parts.append(item)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``REDACTED``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact_text(url) if url is not None else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{user}@{hostport}"
    query = _redact_query(parts.query)
    fragment = _redact_query(parts.fragment) if "=" in parts.fragment else parts.fragment
    if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
        return url
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """Every URL inside ``text`` redacted (:func:`redact_url`), and secret ``name=value`` pairs
    outside URLs too: for messages of other libraries, which may quote a presigned URL."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _PARAM_IN_TEXT.sub(
        lambda m: f"{m.group(1)}={REDACTED}" if m.group(1).lower() in SECRET_PARAMETERS and m.group(2) != REDACTED
        else m.group(0), text)


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``url``, lower case, with the scheme's default port."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    return scheme, (parts.hostname or "").lower(), port


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without ``user:password@``, user, password), both percent-decoded, None when absent."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    hostport = parts.netloc.rpartition("@")[2]
    stripped = urllib.parse.urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return stripped, user, password
