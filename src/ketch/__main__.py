"""`python -m ketch` runs the CLI."""

from ketch.cli.main import main

main()
