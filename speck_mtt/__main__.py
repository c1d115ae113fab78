"""`python -m speck_mtt` is the `speck-mtt` command."""

from .cli import main

main()
