"""The CLI's commands: one module per ``python -m core <command>`` (``HELP``, ``add_arguments``, ``run``)."""
