"""The demo: a small online shop, a workload against it, and what asymm makes of it."""
