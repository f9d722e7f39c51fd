"""``walrusds ds``: put, get, has, size, rm and ls against a running service.

For operators and scripts. Keys are given as text (``/blocks/CIQ...``) or, with ``--hex``, as
hex bytes. Exit status: 0 on success; 1 when a key is missing (get/size/has) or on an error.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import grpc

from walrusds.config import read_secret_file
from walrusds.errors import ConfigError
from walrusds.keys import show_key
from walrusds.rpc import open_channel, stub, token_metadata
from walrusds.server.listen import parse_listen
from walrusds.v1 import datastore_pb2 as pb

DEFAULT_ADDR = "127.0.0.1:7070"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "ds", help="read and write keys on a running service",
        description="Talk to a running walrusds service. The address defaults to "
        f"$WALRUSDS_ADDR or {DEFAULT_ADDR}.")
    p.add_argument("--addr", default=os.environ.get("WALRUSDS_ADDR", DEFAULT_ADDR),
                   help="unix:/path/to.sock or host:port")
    p.add_argument("--token-file", help="file holding the service's bearer token")
    p.add_argument("--tls-ca", help="CA certificate to verify a TLS service")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    p.add_argument("--hex", action="store_true", help="keys are given and printed as hex")
    ops = p.add_subparsers(dest="op", metavar="OP")
    ops.required = True
    put = ops.add_parser("put", help="store FILE (or - for stdin) under KEY")
    put.add_argument("key")
    put.add_argument("file")
    for name, text in (("get", "write KEY's value to stdout"),
                       ("has", "print true/false; exit 1 when absent"),
                       ("size", "print the size of KEY's value"),
                       ("rm", "delete KEY (succeeds when absent)")):
        op = ops.add_parser(name, help=text)
        op.add_argument("key")
    ls = ops.add_parser("ls", help="list keys under PREFIX (go-datastore prefix rules)")
    ls.add_argument("prefix", nargs="?", default="/")
    ls.add_argument("--sizes", action="store_true", help="print each value's size too")
    ls.add_argument("--keys-only", action="store_true", default=True,
                    help="list keys without reading values (the default)")
    ls.add_argument("--limit", type=int, default=0, help="at most N keys (0: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    token = read_secret_file(args.token_file, "token") if args.token_file else None
    if token and not args.tls_ca and not _local(args.addr):
        raise ConfigError(f"refusing to send the token in plaintext to {args.addr}: pass "
                          "--tls-ca for a TLS connection (plaintext is for loopback and unix "
                          "sockets only)")
    meta = token_metadata(token) if not args.tls_ca else ()
    with open_channel(args.addr, tls_ca=args.tls_ca, token=token) as channel:
        api = stub(channel)
        try:
            return _dispatch(args, api, meta)
        except grpc.RpcError as exc:
            code = exc.code()
            print(f"walrusds ds {args.op}: {code.name}: {exc.details()}", file=sys.stderr)
            return 1


def _local(addr: str) -> bool:
    try:
        return parse_listen(addr).loopback
    except ConfigError:
        return False  # not an address walrusds would listen on: treat it as remote


def _key(args: argparse.Namespace, text: str) -> bytes:
    if args.hex:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise SystemExit(f"walrusds ds: {text!r} is not hex") from None
    return os.fsencode(text)


def _show(args: argparse.Namespace, key: bytes) -> str:
    return key.hex() if args.hex else show_key(key, 4096)[1:-1]


def _dispatch(args: argparse.Namespace, api: Any, meta: Any) -> int:
    t = args.timeout
    if args.op == "put":
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
        api.Put(pb.PutRequest(key=_key(args, args.key), value=data), timeout=t, metadata=meta)
        return 0
    if args.op == "get":
        try:
            resp = api.Get(pb.GetRequest(key=_key(args, args.key)), timeout=t, metadata=meta)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                print(f"walrusds ds get: {args.key}: not found", file=sys.stderr)
                return 1
            raise
        sys.stdout.buffer.write(resp.value)
        sys.stdout.buffer.flush()
        return 0
    if args.op == "has":
        exists = api.Has(pb.HasRequest(key=_key(args, args.key)), timeout=t,
                         metadata=meta).exists
        print("true" if exists else "false")
        return 0 if exists else 1
    if args.op == "size":
        try:
            size = api.GetSize(pb.GetSizeRequest(key=_key(args, args.key)), timeout=t,
                               metadata=meta).size
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                print(f"walrusds ds size: {args.key}: not found", file=sys.stderr)
                return 1
            raise
        print(size)
        return 0
    if args.op == "rm":
        api.Delete(pb.DeleteRequest(key=_key(args, args.key)), timeout=t, metadata=meta)
        return 0
    if args.limit < 0:
        print("walrusds ds ls: --limit must not be negative", file=sys.stderr)
        return 1
    req = pb.QueryRequest(prefix=_key(args, args.prefix), keys_only=True,
                          returns_sizes=args.sizes, limit=args.limit)
    out = sys.stdout
    for resp in api.Query(req, metadata=meta):
        for e in resp.entries:
            out.write(f"{_show(args, e.key)}\t{e.size}\n" if args.sizes
                      else f"{_show(args, e.key)}\n")
    out.flush()
    return 0
