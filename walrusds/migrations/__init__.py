"""Numbered SQL migrations of the walrusds index (``NNNN_name.sql``), applied in order."""
