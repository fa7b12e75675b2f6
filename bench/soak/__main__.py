"""`python -m bench.soak`."""

from bench.soak.cli import main

main()
