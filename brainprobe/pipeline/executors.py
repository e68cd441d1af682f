"""Executors: run a list of independent shard tasks in-process or on a Ray cluster.

A task is a module-level function plus keyword arguments made of plain values (paths, keys,
settings), so it pickles; it reads its inputs from the content-addressed cache and writes its
output there. Each task sets its own torch thread count, so a shard computes the same bits
wherever it runs.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from brainprobe._progress import progress
from brainprobe.errors import ConfigError


class LocalExecutor:
    """Run tasks one after another in this process (the default)."""

    kind = "local"

    def map(self, fn: Callable[..., Any], tasks: Sequence[dict[str, Any]], desc: str = "") -> list[Any]:
        return [fn(**t) for t in progress(tasks, total=len(tasks), desc=desc)]

    def close(self) -> None:
        pass


class RayExecutor:
    """Run tasks as Ray tasks, on the cluster at ``address`` or on a local cluster.

    Parameters
    ----------
    address
        ``None`` starts a local cluster with ``workers * threads`` CPUs; otherwise passed to
        ``ray.init`` (``"auto"``, ``"ray://head:10001"``).
    workers
        Concurrent tasks on a local cluster.
    threads
        CPUs each task reserves (and its torch thread count).
    gpus
        GPUs each task reserves (1 for cuda runs; fractions share a GPU).
    """

    kind = "ray"

    def __init__(self, address: str | None, workers: int, threads: int, gpus: float = 0.0) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "executor: ray needs the optional Ray extra; install it with pip install 'brainprobe[ray]'"
            ) from None
        self._ray = ray
        self.threads = threads
        self.gpus = gpus
        env = {k: os.environ[k] for k in ("BRAINPROBE_HOME", "BRAINPROBE_PROGRESS") if k in os.environ}
        self._started = not ray.is_initialized()
        if self._started:
            kwargs: dict[str, Any] = dict(
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": env} if env else None,
            )
            if address is None:
                kwargs.update(num_cpus=workers * threads, num_gpus=None)
            else:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except ConnectionError as err:
                raise ConfigError(f"executor.address: cannot reach the Ray cluster at {address!r} ({err})") from None

    def map(self, fn: Callable[..., Any], tasks: Sequence[dict[str, Any]], desc: str = "") -> list[Any]:
        ray = self._ray
        remote = ray.remote(num_cpus=self.threads, num_gpus=self.gpus, max_retries=2)(fn)
        refs = [remote.remote(**t) for t in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list[Any] = [None] * len(refs)
        pending = list(refs)
        bar = progress(range(len(refs)), total=len(refs), desc=desc)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[index[ref]] = ray.get(ref)
                next(bar, None)
        return out

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(kind: str, *, address: str | None, workers: int, threads: int, gpus: float) -> LocalExecutor | RayExecutor:
    """The executor named in the config."""
    if kind == "local":
        return LocalExecutor()
    return RayExecutor(address, workers, threads, gpus)
