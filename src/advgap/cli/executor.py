"""The `--executor` and `--ray-address` options that `advgap run` and `advgap mindist` share."""

from __future__ import annotations

import argparse

from advgap.errors import ConfigError
from advgap.experiment.executors import EXECUTORS, Executor, open_executor


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where tasks run: local processes (default) or a Ray cluster (extra advgap[ray])")
    p.add_argument("--ray-address", metavar="auto|HOST:PORT",
                   help="with --executor ray: the cluster's head (`ray start --head` prints it); "
                   "default: start a local cluster of --workers CPUs")


def executor_from_args(args: argparse.Namespace, workers: int) -> Executor:
    if args.ray_address is not None and args.executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    return open_executor(args.executor, workers, args.ray_address)
