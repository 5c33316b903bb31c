"""CLI sub-commands; each module has ``add_parser(subparsers)`` and sets ``run(args) -> int``."""
