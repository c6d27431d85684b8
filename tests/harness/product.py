"""The product modules the harness needs, imported in this one place.

When a product module moves (say the sandbox into a dev package), only these imports change; the
harness and the tests that use the harness's names keep theirs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from asymm.db import with_dbname
from asymm.dev import sandbox
from asymm.dev.sandbox import Sandbox
from asymm.sync import SyncEngine
from asymm.sync.redis_io import connect_redis
from asymm.sync.tables import Protector
from asymm.sync.verify import Mismatches, compare

# The installed command-line entry point, beside the running interpreter (the venv's bin/).
ASYMM = str(Path(sys.executable).with_name("asymm"))

__all__ = [
    "ASYMM",
    "Mismatches",
    "Protector",
    "Sandbox",
    "SyncEngine",
    "compare",
    "connect_redis",
    "sandbox",
    "with_dbname",
]
