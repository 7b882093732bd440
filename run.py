#!/usr/bin/env python3
"""Set everything up from a fresh clone and run o2c. Needs nothing but Python 3.11+.

python3 run.py demo     # create .venv, install o2c, run the demo on the embedded stack
python3 run.py test     # create .venv, install o2c with its test tools, run the tests
python3 run.py o2c ...  # any o2c command inside the project's virtual environment
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".o2c-installed"


def ensure_environment() -> None:
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing o2c and its dependencies into .venv", flush=True)
    subprocess.check_call([str(BIN / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    subprocess.check_call([str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"])
    STAMP.write_text(wanted)


def check_database() -> None:
    """With O2C_DATABASE_URL set the suite must run against it: fail loudly, never skip."""
    url = os.environ.get("O2C_DATABASE_URL")
    if not url:
        return
    code = (
        "import sys\nfrom adapters.storage.db import engine_for\nfrom sqlalchemy import text\n"
        "try:\n    engine_for(sys.argv[1]).connect().execute(text('select 1'))\n"
        "except Exception as e:\n    sys.exit(f'O2C_DATABASE_URL is set but unreachable: {e}')\n"
    )
    subprocess.check_call([str(BIN / "python"), "-c", code, url])


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command not in ("demo", "test", "o2c"):
        print(__doc__)
        return 0 if command == "help" else 2
    ensure_environment()
    if command == "test":
        check_database()
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *(rest or ["-q"])], cwd=ROOT)
    args = ["demo", *rest] if command == "demo" else rest
    return subprocess.call([str(BIN / "o2c"), *args], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
