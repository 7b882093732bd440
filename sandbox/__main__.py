"""`python -m sandbox`: serve the sandbox in the foreground (see sandbox.server.main)."""

from sandbox.server import main

main()
