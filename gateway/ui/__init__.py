"""The run browser: server-rendered pages under /ui/, signed in with an API token."""

from __future__ import annotations

from flask import Blueprint, Flask, request

from . import session

# Everything the pages load comes from the gateway itself; no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PREFIX = "/ui"

bp = Blueprint(
    "ui",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def register(app: Flask, settings) -> None:
    """Add the run browser to the app: its session, its security headers, its pages."""
    from . import views  # noqa: F401  (the routes attach themselves to bp)

    session.configure(app, settings)
    app.register_blueprint(bp)

    @app.after_request
    def security_headers(response):
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers["X-Frame-Options"] = "DENY"
            if not request.path.startswith(PREFIX + "/static/"):
                # Pages hold run data and a CSRF token: never from a shared cache.
                response.headers["Cache-Control"] = "no-store"
        return response
