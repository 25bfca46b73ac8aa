"""The subcommands of `nmt`, one module per user task.

Each module holds its handler and `add_parser(commands, ...)`, which adds its argument parser
to `nmt.cli.build_parser`'s subcommands. Their heavy imports (TensorFlow, the model) stay
inside the handlers, so `nmt --help` does not load them.
"""
