"""The ``walrusds`` command line: one module per sub-command (``cmd_<name>.py``)."""
