# syntax=docker/dockerfile:1
#
# One image for every Python process of the project. compose.yaml runs it as:
#   gateway          gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app   (the default CMD)
#   submit-workers   python -m conductor_workers submit
#   poller           python -m conductor_workers poller
#   migrate          python -m batchcore.migrate && python scripts/register_workflows.py
#   workbench-sim    python -m workbench_sim
#
# Build: docker build -t batch-pipeline-runs .   (or: docker compose build)

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Runtime dependencies first, in their own layer, read from pyproject.toml's
# [project].dependencies only: the [test] extra (pytest, ruff, ...) never enters the image.
# Every pinned dependency ships manylinux wheels (psycopg2-binary included): no compiler needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself. Editable on purpose: batchcore.migrate finds sql/migrations and
# scripts/register_workflows.py finds workflow_defs/ next to the packages, so the imported
# packages must be the ones under /app, whatever the working directory.
COPY . .
RUN pip install --no-deps --editable . \
    && python -m compileall -q batchcore gateway conductor_workers workbench_sim scripts

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
