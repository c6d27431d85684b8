"""Developer tooling: the throwaway PostgreSQL + Redis sandbox and the demo.

Why apart: these start servers, create system users and load sample data, which no product
module needs.  They build on the product (CLI helpers, daemon, features); the product imports
them only to register the ``asymm sandbox`` and ``asymm demo`` commands (in ``asymm.cli``).
"""
