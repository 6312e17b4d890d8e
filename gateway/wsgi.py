"""The WSGI entry point for gunicorn: `gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app`."""

from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import create_app

app = create_app()
# The gateway runs behind one buffering proxy (nginx: stack/proxy.py, compose.yaml), which
# sets X-Forwarded-For to the client's address: one hop is trusted, so sign-in throttling and
# the logs see each client, not the proxy. The scheme is gunicorn's (forwarded_allow_ips).
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=0, x_host=0, x_port=0, x_prefix=0)
