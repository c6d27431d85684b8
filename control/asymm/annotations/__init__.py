"""Annotations from the control plane: thin, typed wrappers over the SQL API.

The catalog, its validation, lifecycle, inference and coherence all live in the extension
(``sql/10_annotations/`` ...); this package only calls them, so the CLI, the daemon and tests
see exactly what a SQL user sees.
"""

from asymm.annotations.api import annotate, coherence, infer, list_annotations
from asymm.annotations.fingerprint import normalize_query, query_fingerprint

__all__ = ["annotate", "coherence", "infer", "list_annotations", "normalize_query", "query_fingerprint"]
