"""Every `speck-mtt` command (typer): parse options, call the library, print. The library below
returns data and never prints a result or picks an exit code (docs/design.md#layers)."""
