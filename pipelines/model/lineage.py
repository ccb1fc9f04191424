"""Which code produced a model: the git commit of the checkout, with a dirty flag.

Recorded at the start of every training run (the model card, the MLflow run and the version's
``code_version`` tag), so a reviewer can check out exactly what was run. ``unknown`` outside a git
checkout (an installed package, a container image without ``.git``): never a guess.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipelines.settings import REPO_ROOT

UNKNOWN = "unknown"


def code_version(root: Path = REPO_ROOT) -> str:
    """``<commit>`` or ``<commit>-dirty`` (uncommitted changes to tracked files), else ``unknown``."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return f"{commit}-dirty" if changes else commit
