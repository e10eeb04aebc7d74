# One image, every role: `liqmap api | collect | worker | migrate | serve | ...`.
# Builder: the pinned runtime set (requirements.lock, hash-checked, wheels only) into the venv
# /opt/liqmap, then liqmap's own wheel without dependencies, built by the pinned backend
# (requirements-build.lock). Runtime: that venv alone on a slim Python, as a non-root user.
# tests/unit/test_docker.py checks this file against the CLI, the settings and the lock files.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/liqmap \
    && /opt/liqmap/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock \
    && python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY service ./service
COPY migrations ./migrations
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/liqmap/bin/pip install --no-deps /wheels/liqmap-*.whl

FROM ${PYTHON_IMAGE}
# The venv keeps its path: its scripts name /opt/liqmap/bin/python.
ENV PATH=/opt/liqmap/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LIQMAP_HOST=0.0.0.0 \
    LIQMAP_PORT=8000 \
    LIQMAP_DATA_DIR=/var/lib/liqmap \
    NUMBA_CACHE_DIR=/var/cache/liqmap/numba
# numba caches compiled kernels beside their sources unless told otherwise, and site-packages
# is not writable here; the embedded store (REDIS_URL unset) keeps its files in LIQMAP_DATA_DIR.
RUN groupadd --system --gid 10001 liqmap \
    && useradd --system --uid 10001 --gid liqmap --home-dir /var/lib/liqmap --shell /usr/sbin/nologin liqmap \
    && install -d -o liqmap -g liqmap /var/lib/liqmap /var/cache/liqmap/numba
COPY --from=builder /opt/liqmap /opt/liqmap
USER 10001:10001
WORKDIR /var/lib/liqmap
EXPOSE 8000
# The API's /health: liveness, 200 while the process serves, also while the store is away (a
# store outage is no reason to replace the container; /ready is the readiness probe for a load
# balancer). collect and worker have no API: docker-compose.yml gives them their own check on
# LIQMAP_METRICS_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('LIQMAP_PORT', '8000'), timeout=4)"]
# Everything in one container, on an embedded store unless REDIS_URL is set.
CMD ["liqmap", "serve"]
