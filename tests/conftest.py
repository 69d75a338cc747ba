"""Suite-wide fixtures: the real Temporal dev server and the real fake-gcs-server, each started once per session."""

from __future__ import annotations

import os

# gcsfs must not probe for hierarchical-namespace buckets or cloud metadata: set before anything imports it.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

# Fixture plugins live in tests/support so that each can be read on its own.
pytest_plugins = ["support.temporal", "support.gcs", "support.compat", "support.executable_docs"]
