-- Run once by the postgres image's entrypoint when the data directory is first initialised.
CREATE EXTENSION IF NOT EXISTS asymm CASCADE;
CREATE EXTENSION IF NOT EXISTS hypopg;
