"""gunicorn settings of the gateway, each chosen on purpose and read from batchcore.settings.

Run: gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app
Do not import prometheus_client at module level here: it picks single- or multi-process
mode when first imported, and the master must not fix that before on_starting runs.
"""

import os
import shutil
import tempfile

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
# %({authorization}i)s or similar to access_log_format.
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()

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


def child_exit(server, worker):
    """Fold an exited worker's live gauges away (its counters stay in the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory of this run."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path.startswith(tempfile.gettempdir()) and "gateway-prometheus-" in path:
        shutil.rmtree(path, ignore_errors=True)
