"""One module per sub-command: ``add_parser(parser)`` and ``run(args) -> int``."""
