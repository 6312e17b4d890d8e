"""The HTTP connection under the current request, as gunicorn serves it.

gunicorn drops a Connection header set by the app and announces keep-alive; a body the app
did not read then makes it close the connection after the answer, under a client that was
told it could send its next request there. gunicorn's pre_request hook (gateway/gunicorn.conf.py)
hands each request over, so that the app can have the connection closed honestly.
"""

from __future__ import annotations

import threading

from flask import Flask, Response, g, request

_serving = threading.local()


def serving(request: object | None) -> None:
    """Remember the server's request object of this thread's request (None when done)."""
    _serving.request = request


def close_after_response() -> None:
    """Answer with Connection: close and close the connection after this response.

    A no-op outside gunicorn (the Flask test client, another server).
    """
    request = getattr(_serving, "request", None)
    if request is not None and hasattr(request, "must_close"):
        request.must_close = True


def body_read() -> None:
    """Note that this request's body was read to its end."""
    g.body_read = True


def register(app: Flask) -> None:
    """Close the connection after an error answer to a request whose body was left unread
    (a 413, a 401 before the body, ...); such a connection cannot carry another request."""

    @app.after_request
    def _close_if_body_unread(response: Response) -> Response:
        has_body = (
            bool(request.content_length)
            or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        )
        if response.status_code >= 400 and has_body and not g.get("body_read"):
            close_after_response()
        return response
