# The asymm daemon (control plane) with its web dashboard, for docker/compose.yaml.
# Build from the repository root:  docker build -f docker/daemon.Dockerfile -t asymm-daemon .
# (No Docker engine runs on the project's CI machines: this file is checked for syntax only.)

# Stage 1: the dashboard's JavaScript dependencies, from the npm registry (dashboard/package-lock.json).
FROM node:20-bookworm-slim AS dashboard
WORKDIR /src
COPY dashboard/package.json dashboard/package-lock.json dashboard/build.mjs dashboard/
COPY control/asymm/daemon/static control/asymm/daemon/static
RUN cd dashboard && npm ci --no-audit --no-fund && node build.mjs

# Stage 2: the Python package.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY control /src/control
COPY --from=dashboard /src/control/asymm/daemon/static/vendor /src/control/asymm/daemon/static/vendor
RUN pip install --no-cache-dir /src/control && useradd --system --uid 10001 asymm
USER asymm
# The dashboard and /metrics listen on all interfaces inside the container; publish the port
# only where you want it (compose maps it to 127.0.0.1).  A non-loopback bind needs
# ASYMM_HTTP_ALLOW_REMOTE and a bearer token: give ASYMM_HTTP_TOKEN (or ASYMM_HTTP_TOKEN_FILE).
ENV ASYMM_HTTP_HOST=0.0.0.0 ASYMM_HTTP_PORT=9849 ASYMM_HTTP_ALLOW_REMOTE=true
EXPOSE 9849
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9849/healthz', timeout=2)"
ENTRYPOINT ["asymm", "daemon"]
