"""Test harness pieces shared by several test directories (fault proxy, server processes)."""
