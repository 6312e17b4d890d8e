# syntax=docker/dockerfile:1
#
# One image for every Python process of the project. compose.yaml runs it as:
#   gateway          gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app   (the default CMD)
#   submit-workers   python -m conductor_workers submit
#   poller           python -m conductor_workers poller
#   migrate          python -m batchcore.migrate && python scripts/register_workflows.py --replace-poller-loop
#   workbench-sim    python -m workbench_sim
#
# Build: docker build -t batch-pipeline-runs .   (or: docker compose build)

# Stage 1: the project as a wheel. sql/ and workflow_defs/ ship inside it as package data
# (through the symlinks batchcore/_sql and batchcore/_workflow_defs, see setup.cfg), so the
# installed package finds its migrations, named queries and workflow definitions from any
# directory.
FROM python:3.11-slim AS wheel

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# Stage 2: the runtime image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Runtime dependencies first, in their own layer, read from setup.cfg's [options]
# install_requires only: the [test] extra (pytest, ruff, ...) never enters the image.
# Every pinned dependency ships manylinux wheels (psycopg2-binary included): no compiler needed.
# tests/unit/test_packaging.py runs this extraction against setup.cfg.
COPY setup.cfg ./
RUN python -c "import configparser; c = configparser.RawConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'].strip())" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt setup.cfg

# The project itself, installed from its wheel like any deployment would (not editable).
# Only the two files compose.yaml names by path stay under /app; everything else is imported
# from site-packages.
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
COPY gateway/gunicorn.conf.py gateway/
COPY scripts/register_workflows.py scripts/

# Unprivileged runtime user; the code stays root-owned and read-only to it. /data is the
# one writable place (the simulator's job log and its file:// outputs); a named volume
# mounted there starts out owned by this user.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data
USER 10001:10001

# Inside a container the services must listen on every interface (their defaults are loopback).
ENV GATEWAY_BIND=0.0.0.0:8000 \
    WORKER_HEALTH_BIND=0.0.0.0:8001

# 8000 gateway, 8001 worker health/metrics, 18090/18091 simulator API/admin
EXPOSE 8000 8001 18090 18091

CMD ["gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"]
