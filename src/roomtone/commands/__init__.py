"""CLI subcommands. Each module defines GROUP (or None for a top-level command) and register()."""
