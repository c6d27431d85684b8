# PostgreSQL 15 with asymm, HypoPG and PL/Python, for trying asymm in a container.
# Build from the repository root:  docker build -f docker/postgres.Dockerfile -t asymm-postgres .
# (No Docker engine runs on the project's CI machines: this file is checked for syntax only.)
FROM postgres:15-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      postgresql-plpython3-15 postgresql-15-hypopg postgresql-server-dev-15 make python3 gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

COPY extension /src/asymm/extension
COPY sql /src/asymm/sql
# Long PL/Python bodies are spliced in from the control package (extension/build.py).
COPY control/asymm /src/asymm/control/asymm
COPY tests/regress /src/asymm/tests/regress
# The extension has a C part (extension/src): compiled here, then the build tools go.
RUN make -C /src/asymm/extension install \
 && apt-get purge -y postgresql-server-dev-15 gcc libc6-dev && apt-get autoremove -y

# asymm is created in the default database when the data directory is first initialised, and
# pg_stat_statements must be preloaded.
COPY docker/initdb-asymm.sql /docker-entrypoint-initdb.d/10-asymm.sql
CMD ["postgres", "-c", "shared_preload_libraries=pg_stat_statements"]
