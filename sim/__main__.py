"""``python -m sim`` is the ``loyalty-sim`` command."""

from sim.cli import main

main()
