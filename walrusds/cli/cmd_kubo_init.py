"""``walrusds kubo-init``: create a Kubo repo whose ``/blocks`` is mounted on walrusds.

Hand-editing ``datastore_spec`` is the most common failure with remote datastores, so this
command never writes it: it asks the service who it is (``Info``), runs ``ipfs-walrus init``
with the ``walrusds`` profile (which mounts ``/blocks`` on walrusds and keeps the rest of the
repo on Kubo's usual local stores, so Kubo itself derives ``datastore_spec``), then checks the
files Kubo wrote and opens the repo once through the plugin.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from walrusds.config import read_secret_file
from walrusds.errors import ConfigError, Unauthenticated, Unavailable
from walrusds.rpc import channel_options, stub, token_metadata
from walrusds.v1 import datastore_pb2 as pb

BLOCKS_MOUNT = "/blocks"
PROFILE = "walrusds"
# The empty UnixFS directory (QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn) as a block key:
# `ipfs init` stores and pins it, which a read-only service accepts only if it already holds it.
EMPTY_DIR_KEY = b"/CIQFTFEEHEDF6KLBT32BFAGLXEZL4UWFNWM4LFTLMXQBCERZ6CMLX3Y"
INIT_TIMEOUT = 300.0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "kubo-init", help="create a Kubo repo with /blocks on walrusds",
        description="Create a new Kubo repo at IPFS_PATH whose /blocks is mounted on a running "
        "walrusds service, with a datastore_spec Kubo derived itself. Keys, pins and the MFS "
        "root stay local (everything on Walrus is public). Needs the ipfs-walrus binary "
        "(`make shim`).")
    p.add_argument("ipfs_path", metavar="IPFS_PATH", type=Path, help="the repo to create")
    p.add_argument("--addr", action="append", required=True, metavar="ADDR",
                   help="service address, unix:/path/to.sock or host:port; repeat (or separate "
                   "with commas) for several addresses of the same dataset")
    p.add_argument("--dataset", help="expected dataset name (default: what the service serves)")
    p.add_argument("--profile", action="append", default=[], metavar="PROFILE",
                   help="more Kubo init profiles, applied before walrusds (e.g. server, test)")
    add_ipfs_argument(p)
    add_credential_arguments(p)
    p.set_defaults(func=run)


def add_ipfs_argument(p: argparse.ArgumentParser) -> None:
    """``--ipfs``: the ipfs-walrus binary (see :func:`find_ipfs`)."""
    p.add_argument("--ipfs", type=Path, help="the ipfs-walrus binary (default: $WALRUSDS_IPFS, "
                   "bin/ipfs-walrus of this checkout, then ipfs-walrus on PATH)")


def add_credential_arguments(p: argparse.ArgumentParser) -> None:
    """``--token-file`` and the TLS options, read back by :func:`target_from_args`."""
    p.add_argument("--token-file", type=Path, help="file (mode 0600) with the service's token")
    p.add_argument("--tls-ca", type=Path, help="CA certificate that signs the service's")
    p.add_argument("--tls-cert", type=Path, help="client certificate (mutual TLS)")
    p.add_argument("--tls-key", type=Path, help="client key (mutual TLS)")
    p.add_argument("--tls-server-name", help="name to expect in the service's certificate")


@dataclass(frozen=True)
class Target:
    addresses: list[str]
    token_file: Path | None
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    tls_server_name: str | None

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert or self.tls_server_name)


def run(args: argparse.Namespace) -> int:
    repo: Path = args.ipfs_path.expanduser().resolve()
    if (repo / "config").exists():
        raise ConfigError(f"{repo} already holds a Kubo repo; kubo-init only creates new ones")
    ipfs = find_ipfs(args.ipfs)
    target = target_from_args(args)
    info = service_info(target)
    if args.dataset and args.dataset != info.dataset:
        raise ConfigError(f"the service serves dataset {info.dataset!r}, not {args.dataset!r}")
    if info.read_only and not has_key(target, EMPTY_DIR_KEY):
        raise ConfigError(f"{target.addresses[0]} is read-only and dataset {info.dataset!r} "
                          "has no blocks yet: initialize an upload node on it first")
    profiles = [p for arg in args.profile for p in arg.split(",") if p] + [PROFILE]
    init_repo(ipfs, repo, target, info.dataset, profiles)
    check_repo(repo, info.dataset, target.addresses)
    check_opens(ipfs, repo, "the new repo")
    role = "retrieval node (read-only service)" if info.read_only else "upload node"
    print(f"created Kubo repo {repo} ({role})\n"
          f"  /blocks   walrusds dataset {info.dataset!r} ({info.dataset_id}) at "
          f"{', '.join(target.addresses)}\n"
          f"  the rest  local (keys, pins, MFS root; see {repo / 'datastore_spec'})\n"
          f"  start:    IPFS_PATH={repo} {ipfs} daemon")
    return 0


def target_from_args(args: argparse.Namespace) -> Target:
    """The service to talk to, from ``--addr`` (repeated or comma-separated) and the options of
    :func:`add_credential_arguments`; file names are made absolute."""
    target = Target(
        addresses=[a.strip() for arg in args.addr for a in arg.split(",") if a.strip()],
        token_file=_absolute(args.token_file), tls_ca=_absolute(args.tls_ca),
        tls_cert=_absolute(args.tls_cert), tls_key=_absolute(args.tls_key),
        tls_server_name=args.tls_server_name)
    if bool(target.tls_cert) != bool(target.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together (mutual TLS needs both)")
    return target


def init_repo(ipfs: Path, repo: Path, target: Target, dataset: str,
              profiles: list[str], *extra: str) -> None:
    """``ipfs-walrus init --profile PROFILES`` at ``repo``, the walrusds profile reading the
    target and dataset from the environment (:func:`init_env`); ``extra`` are more init flags."""
    init = subprocess.run([str(ipfs), "init", "--profile", ",".join(profiles), *extra],
                          env=init_env(repo, target, dataset), capture_output=True,
                          text=True, timeout=INIT_TIMEOUT, check=False)
    if init.returncode != 0:
        raise ConfigError(f"{ipfs.name} init failed: {(init.stderr or init.stdout).strip()}")


def check_opens(ipfs: Path, repo: Path, what: str) -> None:
    """Open ``repo`` once through Kubo (``repo stat --size-only``), which checks
    ``datastore_spec`` against the config and connects the plugin to the service."""
    stat = subprocess.run([str(ipfs), "repo", "stat", "--size-only"], env=init_env(repo),
                          capture_output=True, text=True, timeout=60, check=False)
    if stat.returncode != 0:
        raise ConfigError(f"{what} does not open: {stat.stderr.strip()}")


def find_ipfs(flag: Path | None) -> Path:
    """The ipfs-walrus binary: --ipfs, $WALRUSDS_IPFS, this checkout's bin/, then PATH."""
    candidates: list[tuple[str, Path]] = []
    if flag is not None:
        candidates.append(("--ipfs", flag))
    elif env := os.environ.get("WALRUSDS_IPFS"):
        candidates.append(("$WALRUSDS_IPFS", Path(env)))
    else:
        candidates.append(("this checkout", Path(__file__).resolve().parents[2] / "bin" /
                           "ipfs-walrus"))
        if found := shutil.which("ipfs-walrus"):
            candidates.append(("PATH", Path(found)))
    for _, path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    where, path = candidates[0]
    raise ConfigError(f"no ipfs-walrus binary at {path} ({where}); build it with `make shim` "
                      "or pass --ipfs")


def _absolute(path: Path | None) -> Path | None:
    return path.expanduser().resolve() if path is not None else None


def target_channel(addr: str, target: Target) -> grpc.Channel:
    """A channel to ``addr`` with the target's TLS settings (plaintext without them)."""
    options = channel_options()
    if not target.uses_tls:
        return grpc.insecure_channel(addr, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=target.tls_ca.read_bytes() if target.tls_ca else None,
        private_key=target.tls_key.read_bytes() if target.tls_key else None,
        certificate_chain=target.tls_cert.read_bytes() if target.tls_cert else None)
    if target.tls_server_name:
        options.append(("grpc.ssl_target_name_override", target.tls_server_name))
    return grpc.secure_channel(addr, creds, options=options)


def target_metadata(target: Target) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the target's token, if it has one."""
    if target.token_file is None:
        return ()
    return token_metadata(read_secret_file(str(target.token_file), "token"))


def rpc_failure(addr: str, exc: grpc.RpcError) -> Exception:
    """The one-line error for a failed call to ``addr``: a refused token or unreachable."""
    code, details = exc.code(), exc.details()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(f"{addr} refused the token: {details} (see --token-file)")
    return Unavailable(f"cannot reach walrusds at {addr}: {code.name}: {details}")


def service_info(target: Target) -> pb.InfoResponse:
    """Info from every address; they must all serve the same dataset."""
    answers: list[tuple[str, pb.InfoResponse]] = []
    for addr in target.addresses:
        with target_channel(addr, target) as channel:
            try:
                info = stub(channel).Info(pb.InfoRequest(), timeout=10,
                                          metadata=target_metadata(target))
            except grpc.RpcError as exc:
                raise rpc_failure(addr, exc) from None
        answers.append((addr, info))
    first_addr, first = answers[0]
    for addr, info in answers[1:]:
        if info.dataset_id != first.dataset_id:
            raise ConfigError(f"{first_addr} and {addr} serve different datasets "
                              f"({first.dataset!r} {first.dataset_id} and {info.dataset!r} "
                              f"{info.dataset_id}); list addresses of one dataset only")
    return first


def has_key(target: Target, key: bytes) -> bool:
    addr = target.addresses[0]
    with target_channel(addr, target) as channel:
        try:
            return bool(stub(channel).Has(pb.HasRequest(key=key), timeout=10,
                                          metadata=target_metadata(target)).exists)
        except grpc.RpcError as exc:
            raise rpc_failure(addr, exc) from None


def init_env(repo: Path, target: Target | None = None, dataset: str = "") -> dict[str, str]:
    """The environment of ipfs-walrus: IPFS_PATH and, for init, the profile's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_WALRUSDS_")}
    env["IPFS_PATH"] = str(repo)
    if target is None:
        return env
    env["IPFS_WALRUSDS_ADDRESSES"] = ",".join(target.addresses)
    env["IPFS_WALRUSDS_DATASET"] = dataset
    for name, value in (("TOKEN_FILE", target.token_file), ("TLS_CA_FILE", target.tls_ca),
                        ("TLS_CERT_FILE", target.tls_cert), ("TLS_KEY_FILE", target.tls_key),
                        ("TLS_SERVER_NAME", target.tls_server_name)):
        if value:
            env[f"IPFS_WALRUSDS_{name}"] = str(value)
    return env


def check_repo(repo: Path, dataset: str, addresses: list[str]) -> None:
    """Check what Kubo wrote: /blocks on walrusds in the config, only the dataset in the spec."""
    spec = json.loads((repo / "datastore_spec").read_text())
    want = {"dataset": dataset, "mountpoint": BLOCKS_MOUNT, "type": "walrusds"}
    blocks = [m for m in spec.get("mounts", []) if m.get("mountpoint") == BLOCKS_MOUNT]
    if blocks != [want]:
        raise ConfigError(f"{repo / 'datastore_spec'} mounts /blocks as {blocks}, want {want}")
    if any(m.get("type") == "walrusds" and m.get("mountpoint") != BLOCKS_MOUNT
           for m in spec["mounts"]):
        raise ConfigError("walrusds must be mounted at /blocks only: everything on Walrus is "
                          "public")
    config = json.loads((repo / "config").read_text())
    mounts = config["Datastore"]["Spec"]["mounts"]
    child = next(m for m in mounts if m.get("mountpoint") == BLOCKS_MOUNT)
    if child.get("addresses") != addresses:
        raise ConfigError(f"{repo / 'config'} lists {child.get('addresses')} for /blocks, "
                          f"want {addresses}")
