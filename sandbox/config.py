"""Where the sandbox keeps its state, read from the environment by the sandbox itself.

`SANDBOX_DATABASE_URL` names the sandbox's database; without it the sandbox shares o2c's
(`O2C_DATABASE_URL`, else `o2c.sqlite` in `O2C_STATE_DIR`, `.o2c` by default), as the
embedded stack does. The two keep apart through their own tables and version tables.
"""

from __future__ import annotations

import os
from pathlib import Path


def database_url() -> str:
    for name in ("SANDBOX_DATABASE_URL", "O2C_DATABASE_URL"):
        url = os.environ.get(name, "")
        if url:
            return url
    state_dir = Path(os.environ.get("O2C_STATE_DIR", ".o2c"))
    return f"sqlite:///{(state_dir / 'o2c.sqlite').resolve()}"
