"""Access, request limits and headers of the web app (a pure ASGI middleware).

* **Token.** With an access token every request must carry it, as
  ``Authorization: Bearer <token>`` (apps) or the session cookie that ``POST
  /login`` sets (browsers); without it the answer is 401. The server refuses to
  bind to any address but loopback without a token (:func:`is_loopback`).
* **Cross-site requests.** Forms carry a per-session token in a ``SameSite=Strict``
  cookie and a hidden field (double submit, checked by the routes); the JSON API
  takes only ``Content-Type: application/json``, which a cross-site form cannot
  send; a request whose ``Origin`` is another site is refused (403).
* **Size.** Bodies over ``max_body`` bytes get 413 before any parsing.
* **Headers.** A strict Content-Security-Policy (no inline script or style),
  ``nosniff``, no framing, the referrer only to this site, and
  ``Cache-Control: no-store``: pages hold patient values.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "MAX_BODY",
    "Guard",
    "auth_cookie_value",
    "csrf_matches",
    "is_loopback",
    "new_csrf_token",
    "read_token_file",
    "token_id",
]

#: Default request body limit: 64 kB is far above any record (a full one is ~3 kB).
MAX_BODY = 64 * 1024
AUTH_COOKIE = "plo_risk_session"
CSRF_COOKIE = "plo_risk_csrf"
CSRF_FIELD = "csrf_token"
MIN_TOKEN_CHARS = 16
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The one route reachable without the token: it is where the token is given.
_OPEN = frozenset({("POST", "/login")})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    text = host.strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def read_token_file(path) -> str:
    """The access token in a file (surrounding whitespace removed).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the token is shorter than 16 characters.
    """
    with open(path, encoding="utf-8") as fh:
        token = fh.read().strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"{path}: the access token must be at least {MIN_TOKEN_CHARS} characters "
            f"(it has {len(token)}); e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))' > token.txt"
        )
    return token


def token_id(token: str) -> str:
    """A short, non-secret name of a token for the audit log (sha256 prefix)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def auth_cookie_value(token: str) -> str:
    """The session cookie of a browser that gave the token (not the token itself)."""
    return hmac.new(token.encode(), b"plo-risk-web-session", hashlib.sha256).hexdigest()


def new_csrf_token() -> str:
    """A fresh per-session form token."""
    return secrets.token_urlsafe(32)


def csrf_matches(request: Request, submitted: object) -> bool:
    """Double-submit check: the form's token equals the session cookie's."""
    cookie = request.cookies.get(CSRF_COOKIE)
    return (
        isinstance(submitted, str)
        and bool(cookie)
        and hmac.compare_digest(cookie.encode(), submitted.encode())
    )


def _authorized(headers: Headers, token: str) -> bool:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and hmac.compare_digest(
        auth[7:].strip().encode(), token.encode()
    ):
        return True
    cookies = Request({"type": "http", "headers": headers.raw}).cookies
    cookie = cookies.get(AUTH_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(
        cookie.encode(), auth_cookie_value(token).encode()
    )


def _same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    if origin is None:  # not a browser, or a same-origin GET-style request
        return True
    host = headers.get("host", "")
    try:
        return urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False


class Guard:
    """The ASGI middleware of :mod:`plo_risk.web.security` (see the module text).

    Parameters
    ----------
    app : ASGI app
    token : str or None
        The access token; None: no login (loopback only).
    max_body : int
        Largest request body accepted, in bytes.
    unauthorized : callable
        ``(request) -> Response`` for a request without the token (the login page
        for a browser).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body: int = MAX_BODY,
        unauthorized: Callable[[Request], Awaitable[Response] | Response],
    ):
        self.app = app
        self.token = token
        self.max_body = int(max_body)
        self.unauthorized = unauthorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.setdefault("content-security-policy", CSP)
                h.setdefault("x-content-type-options", "nosniff")
                h.setdefault("x-frame-options", "DENY")
                h.setdefault("referrer-policy", "same-origin")
                if not scope["path"].startswith("/static/"):
                    h.setdefault("cache-control", "no-store")
            await send(message)

        headers = Headers(scope=scope)
        method = scope["method"]
        if method not in _SAFE_METHODS and not _same_origin(headers):
            await _error(
                403, "cross-site request refused (its Origin is another site)"
            )(scope, receive, send_with_headers)
            return
        if self.token is not None and (method, scope["path"]) not in _OPEN:
            if not _authorized(headers, self.token):
                response = self.unauthorized(Request(scope))
                if not isinstance(response, Response):
                    response = await response
                await response(scope, receive, send_with_headers)
                return
        if method in _SAFE_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _error(400, "Content-Length is not a number")(
                    scope, receive, send_with_headers
                )
                return
            if too_big:
                await _too_large(self.max_body)(scope, receive, send_with_headers)
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _too_large(self.max_body)(scope, receive, send_with_headers)
                return
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"detail": message}, status_code=status)


def _too_large(limit: int) -> Response:
    return _error(413, f"request body too large: at most {limit:,} bytes")
