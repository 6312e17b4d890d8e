"""The HTTP gateway: a Flask app factory over the run store and Conductor."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from batchcore import settings as settings_module
from batchcore.conductor import ConductorClient
from batchcore.db import Database
from batchcore.runs.paging import cursor_key
from batchcore.settings import Settings

from . import auth, connections, errors, metrics, routes, ui
from .submission import WaitingRoom, waiting_capacity

MAX_BODY_BYTES = 1024 * 1024  # DESIGN: request bodies over 1 MiB are refused with 413
REQUIRED_VARIABLES = ("DATABASE_URL", "GATEWAY_API_TOKENS")

log = logging.getLogger(__name__)


class Gateway:
    """What the routes need: settings, the database (opened on first use) and Conductor."""

    def __init__(self, settings: Settings, database: Database | None, conductor):
        self.settings = settings
        self.conductor = conductor
        self._database = database
        self._lock = threading.Lock()
        self.cursor_key = cursor_key(settings.gateway_secret_key, settings.gateway_api_tokens)
        self.waiting_room = WaitingRoom(waiting_capacity(settings.gateway_threads))

    def database(self) -> Database:
        """This process's pool; made lazily so that importing the app never connects."""
        if self._database is None:
            with self._lock:
                if self._database is None:
                    self._database = Database(
                        self.settings.database_url,
                        # One connection per gthread thread: a request never waits for one.
                        maxconn=self.settings.gateway_threads,
                        connect_timeout=self.settings.db_connect_timeout,
                    )
        return self._database


def create_app(config: dict | None = None) -> Flask:
    """Build the app; `config` may inject SETTINGS, DATABASE and CONDUCTOR (for tests)."""
    config = dict(config or {})
    settings = config.pop("SETTINGS", None) or settings_module.load(require=REQUIRED_VARIABLES)
    database = config.pop("DATABASE", None)
    conductor = config.pop("CONDUCTOR", None) or ConductorClient(
        settings.conductor_server_url, settings.conductor_timeout
    )
    _configure_logging(settings.log_level)

    # No static folder: the gateway serves JSON only, and /static would be an extra route.
    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.config.update(config)
    # Keys in the order the contract lists them, not sorted.
    app.json.sort_keys = False
    app.extensions["gateway"] = Gateway(settings, database, conductor)

    # Metrics first: its before_request must run even when auth answers 401.
    metrics.register(app)
    auth.register(app, settings.gateway_api_tokens)
    errors.register(app)
    connections.register(app)
    app.register_blueprint(routes.api)
    app.register_blueprint(routes.ops)
    ui.register(app, settings)
    log.info("gateway ready (Conductor at %s)", settings.conductor_server_url)
    return app


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:  # leave a host's (gunicorn's, pytest's) logging setup alone
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
        root.addHandler(handler)
    for name in ("gateway", "batchcore"):
        logging.getLogger(name).setLevel(level)
