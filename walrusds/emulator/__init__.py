"""A local Walrus for development, tests and benchmarks (notes/walrus-http-api.md §9).

One aiohttp process serves the publisher (``PUT /v1/blobs``) and the aggregator
(``GET``/``HEAD /v1/blobs/...``) routes of ``walrus daemon`` with the same JSON, status codes
and headers, over an emulated network with an epoch clock (near, or as far away as a network
profile says), and adds a ``/_emulator/`` control surface (faults, epochs, counters, damage,
the profile) that is not part of the Walrus API. Blob IDs are deterministic but **fake** (see
:mod:`walrusds.emulator.ids`). docs/emulator.md is the guide.

Modules: ``config`` (settings), ``core`` (the ``Emulator`` state holder), ``state``/``storage``/
``clock`` (the network), ``publisher``/``aggregator``/``delivery``/``ranges`` (Walrus routes),
``faults``/``control_api`` (test control), ``network``/``shaping`` (the distant-network profile
and how it delays and paces answers), ``sleeps`` (waits that shutdown can end), ``app`` (routing,
middleware), ``runner`` (start and stop in a running loop), ``control`` (an HTTP client of the
control surface).
"""
