"""`python -m scrm` runs the CLI."""

from scrm.cli import main

main(prog_name="scrm")
