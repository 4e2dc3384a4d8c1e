"""The ``http`` sign driver: the JSON content (``_json_sign.py``) POSTed to the sign's controller.

A sign's ``address`` is the URL to POST to, e.g. ``http://10.20.1.7:8080/sign`` (HTTP basic
credentials may stand in it: ``https://user:secret@host/sign``). Per push::

    POST {address}
    Content-Type: application/json
    {"sign_id": ..., "seq": ..., "duration_s": ..., "fallback_text": ..., "lines": [...]}

- The controller shows the content and answers ``200`` with the acknowledgement
  ``{"seq": ..., "ok": true, "shown": [...]}``.
- It refuses with a ``4xx`` or ``5xx`` whose JSON body ``{"ok": false, "reason": "..."}`` says
  why (``400`` malformed, ``409`` local control or an older ``seq``, ``422`` content it cannot
  show); the driver raises SignError with that reason (or the start of a body that is not
  JSON). Redirects are not followed.
- No answer within ``timeout_s`` (connecting included) is a SignError too.

One pooled client serves every http sign, so a controller's connection is reused between
pushes; each push has its own timeout and only pushes to the same sign wait for each other.
"""

from __future__ import annotations

import asyncio

import httpx

from core.city import Sign
from signage._content import Ack, SignContent, SignError
from signage._json_sign import Sequencer, content_message, one_line, read_ack, refusal_reason

__all__ = ["HttpDriver"]


class HttpDriver:
    """Signs behind HTTP controllers: one JSON POST per push, answered by an acknowledgement."""

    def __init__(self, *, timeout_s: float = 3.0, duration_s: int | None = None) -> None:
        self.timeout_s = timeout_s
        self.duration_s = duration_s  # None: the sign's stale_after_s
        self._client: httpx.AsyncClient | None = None
        self._sequence = Sequencer()
        self._locks: dict[str, asyncio.Lock] = {}

    async def push(self, sign: Sign, content: SignContent) -> Ack:
        """POST ``content`` to ``sign``'s controller; SignError if it refuses or times out."""
        url, auth = _target(sign)
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, follow_redirects=False,
                headers={"User-Agent": "parkleit", "Accept": "application/json"})
        client = self._client
        lock = self._locks.setdefault(sign.id, asyncio.Lock())
        try:
            async with asyncio.timeout(self.timeout_s), lock:
                seq = self._sequence.next(sign.id)
                body = content_message(sign, content, seq=seq,
                                       duration_s=self.duration_s or sign.stale_after_s)
                response = await client.post(
                    url, content=body, headers={"Content-Type": "application/json"},
                    auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth)
        except (TimeoutError, httpx.TimeoutException):
            raise SignError(f"sign {sign.id}: no answer within {self.timeout_s:g} s") from None
        except httpx.ConnectError as exc:
            raise SignError(f"sign {sign.id}: cannot connect: {one_line(str(exc))}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise SignError(f"sign {sign.id}: {type(exc).__name__}: {one_line(str(exc))}"
                            ) from None
        if response.is_success:
            return read_ack(sign, seq, response.content)
        reason = (refusal_reason(response.content) or one_line(response.text, 120)
                  or response.reason_phrase)
        raise SignError(f"sign {sign.id} refused the content: HTTP {response.status_code}: "
                        f"{reason}")

    async def close(self) -> None:
        """Close the client and its connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _target(sign: Sign) -> tuple[httpx.URL, httpx.BasicAuth | None]:
    """The URL to POST to and its credentials, taken out so that no log shows them."""
    try:
        url = httpx.URL(sign.address)
    except (httpx.InvalidURL, ValueError) as exc:
        raise SignError(f"sign {sign.id}: the address is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise SignError(f"sign {sign.id}: the address must be an http:// or https:// URL")
    if not (url.username or url.password):
        return url, None
    return url.copy_with(userinfo=b""), httpx.BasicAuth(url.username, url.password)
