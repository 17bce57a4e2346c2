"""Image URLs as CDI (and the API server's CEL `isURL`) parse them: a port of Go's net/url.

CDI's DataVolume webhook (containerized-data-importer v1.65, pkg/apiserver/webhooks/util.go)
refuses an http(s) source that `url.ParseRequestURI` cannot parse and a registry source that
`url.Parse` cannot parse. The CRD checks `isURL(self)`, which is `url.ParseRequestURI`; for the
URLs Wukong accepts (scheme://authority/path, printable ASCII) it refuses everything
`url.Parse` refuses and a little more (a '#' in the host). This module repeats that check in
Python, following Go 1.26's net/url (its stricter choices, where Go versions differ: a
bracketed host must be an IPv6 address, an http(s) host has at most one ':').
"""

from __future__ import annotations

import ipaddress
import re

IMAGE_SCHEMES = ("docker", "http", "https")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HEX = "0123456789abcdefABCDEF"
# Go's shouldEscape(c, encodeHost) is false for these ASCII bytes: they may stand in a host.
_HOST_ASCII = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'()*+,;=:[]<>\""
)
_USERINFO = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@"
)


class UrlError(ValueError):
    """Why Go's url.ParseRequestURI refuses a URL."""


def _unescape(text: str, *, host: bool = False) -> None:
    """Go's unescape: every '%' starts two hex digits; a host may %-encode only non-ASCII
    bytes (or '%25'), and may hold only the ASCII bytes in `_HOST_ASCII`."""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            escape = text[i : i + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                raise UrlError(f'invalid URL escape "{escape}"')
            if host and int(escape[1], 16) < 8 and escape != "%25":
                raise UrlError(f'invalid URL escape "{escape}"')
            i += 3
            continue
        if host and ord(char) < 0x80 and char not in _HOST_ASCII:
            raise UrlError(f'invalid character "{char}" in host name')
        i += 1


def _zone(zone: str) -> None:
    """Go's unescape(encodeZone): escapes only of bytes a host may hold (or '%25', space)."""
    if not zone:
        raise UrlError("invalid host: zone must be a non-empty string")
    i = 0
    while i < len(zone):
        if zone[i] == "%":
            escape = zone[i : i + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                raise UrlError(f'invalid URL escape "{escape}"')
            byte = int(escape[1:], 16)
            if escape != "%25" and byte != 0x20 and byte < 0x80 and chr(byte) not in _HOST_ASCII:
                raise UrlError(f'invalid URL escape "{escape}"')
            i += 3
            continue
        if ord(zone[i]) < 0x80 and zone[i] not in _HOST_ASCII:
            raise UrlError(f'invalid character "{zone[i]}" in host name')
        i += 1


def _valid_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _parse_host(scheme: str, host: str) -> str:
    bracket = host.rfind("[")
    if bracket > 0:
        raise UrlError("invalid IP-literal")
    if bracket == 0:
        close = host.rfind("]")
        if close < 0:
            raise UrlError("missing ']' in host")
        port = host[close + 1 :]
        if not _valid_port(port):
            raise UrlError(f'invalid port "{port}" after host')
        literal = host[1:close]
        zone = literal.find("%25")
        address = literal if zone < 0 else literal[:zone]
        _unescape(address, host=True)
        if zone >= 0:
            _zone(literal[zone + 3 :])
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise UrlError(f"invalid host: {address!r} is not an IP address") from None
        if parsed.version == 4:
            raise UrlError("invalid IP-literal")
        return host
    if ":" in host:
        first, last = host.index(":"), host.rindex(":")
        colon = first if scheme in ("http", "https") else last
        port = host[colon:]
        if not _valid_port(port):
            raise UrlError(f'invalid port "{port}" after host')
    _unescape(host, host=True)
    return host


def parse_request_uri(raw: str) -> tuple[str, str, str]:
    """(scheme, host, path) of an absolute URL, as Go's url.ParseRequestURI (and CEL's
    isURL) reads it; UrlError when they refuse it."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise UrlError("invalid control character in URL")
    if raw == "":
        raise UrlError("empty url")
    scheme, rest = "", raw
    head, colon, tail = raw.partition(":")
    if colon and _SCHEME.fullmatch(head):
        scheme, rest = head.lower(), tail
    elif raw.startswith(":"):
        raise UrlError("missing protocol scheme")
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return scheme, "", ""  # opaque: scheme:rest
        raise UrlError("invalid URI for request")
    host = ""
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        at = authority.rfind("@")
        host = _parse_host(scheme, authority[at + 1 :])
        if at >= 0:
            userinfo = authority[:at]
            if any(c not in _USERINFO for c in userinfo):
                raise UrlError("invalid userinfo")
            _unescape(userinfo)
    _unescape(rest)
    return scheme, host, rest


def parse_image_url(raw: str) -> tuple[str, str, str]:
    """(scheme, host, path) of a disk image URL that both the CRD and CDI accept: the CRD's
    `isURL` is `url.ParseRequestURI`, and CDI parses a registry (docker://) source with
    `url.Parse`, which first cuts off the #fragment and refuses a bad escape in it (found
    by test_spec_parity: `docker://host/x?#%=`); UrlError otherwise."""
    parsed = parse_request_uri(raw)
    if parsed[0] == "docker":
        _, hash_, fragment = raw.partition("#")
        if hash_:
            _unescape(fragment)
    return parsed


def image_problem(image: str) -> str | None:
    """Why CDI (or the CRD) would refuse `image` as a disk source; None when it is fine."""
    scheme = image.partition("://")[0]
    if scheme not in IMAGE_SCHEMES or "://" not in image:
        return (
            "use docker://registry/image:tag for a container disk or an http(s):// URL of a "
            "disk image to import"
        )
    if any(not "!" <= c <= "~" for c in image):
        return (
            "an image URL has no spaces or control characters and only ASCII: "
            "percent-encode anything else (e.g. %20 for a space)"
        )
    try:
        _, host, _ = parse_image_url(image)
    except UrlError as exc:
        return f"CDI cannot parse it as a URL: {exc}"
    if not host:
        return "the URL names no host (registry or web server) after '://'"
    return None
