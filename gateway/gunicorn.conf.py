"""gunicorn settings of the gateway, each chosen on purpose and read from batchcore.settings.

Run: gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app
Do not import prometheus_client at module level here: it picks single- or multi-process
mode when first imported, and the master must not fix that before on_starting runs.
"""

import logging
import os
import re
import shutil
import tempfile
from urllib.parse import quote, urlsplit

from gunicorn.glogging import Logger

from batchcore import settings as settings_module

# The same validation the app does, but in the master: a bad or missing variable stops
# gunicorn at once with a clear message instead of every worker failing to boot.
_settings = settings_module.load(require=["DATABASE_URL", "GATEWAY_API_TOKENS"])

bind = _settings.gateway_bind
workers = _settings.gateway_workers
# Threads, not processes, per request: most of a request's time is spent waiting on
# PostgreSQL, Conductor or a ?wait= poll, and the DB pool is sized to match (one each).
worker_class = "gthread"
threads = _settings.gateway_threads

# A worker whose main loop is silent this long is killed. gthread's heartbeat does not
# stop while a request runs, but keep it above the longest legitimate request anyway
# (?wait= up to 30 s plus a Conductor start and, rarely, a cleanup call) so that a
# switch to the sync worker class could never cut such requests off.
timeout = max(60, int(30 + 2 * _settings.conductor_timeout + 10))
# On shutdown or reload, in-flight requests get this long to finish; kept under the
# local stack's stop wait (40 s) so that the supervisor never has to SIGKILL.
graceful_timeout = 30
# Idle keep-alive connections are held briefly: enough for a client's next call,
# short enough not to tie up threads (gthread counts them against `threads`).
keepalive = 5

# Request-line and header limits: well above anything a real client of this JSON API
# sends, and a hard stop for header floods (bodies are capped at 1 MiB by the app).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Recycle workers now and then so that slow leaks cannot grow without bound; the
# jitter keeps all workers from restarting at the same moment.
max_requests = 10000
max_requests_jitter = 1000

# Each worker imports the app itself after the fork: no database pool, thread or
# prometheus_client state is ever shared across a fork.
preload_app = False

# Access log on stdout in gunicorn's default format, which has no request headers:
# the Authorization header (the bearer token) never reaches a log line. Do not add
# %({authorization}i)s or similar to access_log_format. What the format does show
# (request line, Referer, User-Agent, the Basic-auth user name) is up to the client,
# and clients do put tokens there (?access_token=..., curl -u TOKEN:), so every line
# gunicorn logs goes through RedactingLogger below.
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()

REDACTED = "[redacted]"
# Query parameters (and key=value pairs in log messages) whose names say "credential".
_CREDENTIAL_PARAMETER = re.compile(
    r"""(?ix)
    ( (?: ^ | [?&;\s"'] )                        # start of a parameter
      [^=&;\s"'?]*
      (?: token | secret | passw | pwd | api[-_]?key | apikey | auth | credential
        | signature | session | jwt | bearer )
      [^=&;\s"']* = )
    [^&;\s"'#]+                                  # its value
    """
)


def _configured_secrets(settings) -> tuple[str, ...]:
    """Every secret this process knows, longest first (8 characters at least: shorter
    ones would mask ordinary words), as given and percent-encoded."""
    found = set(settings.gateway_api_tokens)
    for secret in (settings.workbench_api_token, settings.gateway_secret_key):
        if secret:
            found.add(secret)
    if settings.database_url:
        found.add(urlsplit(settings.database_url).password or "")
        found.update(re.findall(r"password\s*=\s*'?([^'\s]+)", settings.database_url))
    found.add(os.environ.get("PGPASSWORD", ""))
    found |= {quote(secret, safe="") for secret in found}
    return tuple(sorted((s for s in found if len(s) >= 8), key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with credential-named query parameters and every known secret masked."""
    text = _CREDENTIAL_PARAMETER.sub(lambda match: match.group(1) + REDACTED, text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class _RedactingFilter(logging.Filter):
    def __init__(self, secrets: tuple[str, ...]):
        super().__init__("redact")
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


class RedactingLogger(Logger):
    """gunicorn's logger, with credentials masked in the access and the error log."""

    def setup(self, cfg):
        super().setup(cfg)
        secrets = _configured_secrets(settings_module.load())
        for log in (self.error_log, self.access_log):
            for old in [f for f in log.filters if isinstance(f, _RedactingFilter)]:
                log.removeFilter(old)  # setup runs again on a reload (HUP)
            log.addFilter(_RedactingFilter(secrets))

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        # The Basic-auth user name (%(u)s): API clients often send the token as the user
        # name (curl -u TOKEN:). This API takes no Basic auth, so it is never shown.
        atoms["u"] = "-"
        return atoms


logger_class = RedactingLogger

# Only a proxy on this host may set X-Forwarded-* (the client address and scheme).
forwarded_allow_ips = "127.0.0.1,::1"

proc_name = "batch-gateway"

# No gunicornc control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) is shared
# by every gunicorn of the user, so a second one (tests, another service) would take it
# over. The gateway is managed with signals (TERM, HUP, TTIN/TTOU) instead.
control_socket_disable = True

# The workers' heartbeat files live in memory where there is a tmpfs for it: on a
# disk-backed /tmp (or a container's overlay) a slow fsync could look like a hung worker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


def on_starting(server):
    """Give prometheus_client a fresh directory shared by this master's workers."""
    # Fresh per start: files left by an earlier run would be summed into the counters.
    path = tempfile.mkdtemp(prefix="gateway-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    server.log.info("prometheus multiprocess directory: %s", path)


def pre_request(worker, req):
    """Hand the request to the app, which may need its connection closed (a 413)."""
    from gateway import connections  # after the fork: the app is loaded by then

    connections.serving(req)


def post_request(worker, req, environ, resp):
    """Forget the request handed over in pre_request."""
    from gateway import connections

    connections.serving(None)


def child_exit(server, worker):
    """Fold an exited worker's live gauges away (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory of this run."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path.startswith(tempfile.gettempdir()) and "gateway-prometheus-" in path:
        shutil.rmtree(path, ignore_errors=True)
