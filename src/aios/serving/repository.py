"""The models one inference server holds: several models, several versions of each.

:meth:`ModelRepository.add` loads a :class:`ServedModel` (a bad file is refused with
the loader's reason before anything is served) and gives it a batcher and metrics;
:meth:`ModelRepository.get` finds a version, or the model's default: the version marked
``default``, else the highest (versions that are numbers compare as numbers).
:meth:`ModelRepository.remove` drains a version before it forgets it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from aios.errors import Busy, Conflict, InvalidInput, NotFound
from aios.names import is_name
from aios.serving.batching import Batcher, BatchingConfig
from aios.serving.metrics import ModelMetrics, ServingMetrics
from aios.serving.runtimes import ModelFormat, Runtime, Signature, load_runtime

__all__ = ["LoadedModel", "ModelRepository", "ServedModel"]


PLATFORMS: dict[str, str] = {
    "onnx": "onnxruntime_onnx",
    "sklearn": "sklearn",
    "torchscript": "pytorch_libtorch",
    "python": "python",
}
"""The ``platform`` of model metadata, in the names Triton and KServe use."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model version to serve: where its artifact is and how to run it.

    ``default`` makes this the version a request without one goes to; ``gpu`` asks the
    runtime for the GPU; ``threads`` bounds the runtime's thread pool.
    """

    name: str
    version: str
    fmt: ModelFormat
    path: Path
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    default: bool = False
    gpu: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        for what, value in (("model name", self.name), ("model version", self.version)):
            if not isinstance(value, str) or not is_name(value):
                raise InvalidInput(
                    f"{what} {value!r}: use letters, digits, '_', '.' or '-' (at most 128)"
                )

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(eq=False)
class LoadedModel:
    """A model version in the repository: its runtime, its batcher, its metrics."""

    served: ServedModel
    runtime: Runtime
    batcher: Batcher
    metrics: ModelMetrics

    @property
    def name(self) -> str:
        return self.served.name

    @property
    def version(self) -> str:
        return self.served.version

    @property
    def signature(self) -> Signature:
        return self.runtime.signature

    @property
    def platform(self) -> str:
        return PLATFORMS.get(self.served.fmt, self.served.fmt)

    @property
    def ready(self) -> bool:
        return not self.batcher.draining


def _version_order(version: str) -> tuple[int, int, str]:
    """Numbers after words, numbers by value: "2" < "10", "beta" < "1"."""
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


class ModelRepository:
    """Loaded model versions by name. Adding and getting are plain calls; removing and
    draining are coroutines, run on the server's event loop."""

    def __init__(self, metrics: ServingMetrics | None = None) -> None:
        self.metrics = metrics or ServingMetrics()
        self._models: dict[str, dict[str, LoadedModel]] = {}
        # Each model's default version, kept as versions come and go: every request
        # without a version looks it up.
        self._defaults: dict[str, LoadedModel] = {}
        self._draining = False

    def add(self, model: ServedModel) -> LoadedModel:
        """Loads ``model`` and serves it. Raises InvalidInput when it does not load,
        Conflict when this name and version are already served."""
        if self._draining:
            raise Busy("the server is shutting down")
        if model.version in self._models.get(model.name, {}):
            raise Conflict(f"model {model.ref} is already served")
        if model.default:
            for other in self._models.get(model.name, {}).values():
                if other.served.default:
                    raise Conflict(f"model {model.name} already has a default: {other.version}")
        runtime = load_runtime(model.fmt, model.path, gpu=model.gpu, threads=model.threads)
        batcher = Batcher(runtime, model.batching, label=f"model {model.ref}")
        metrics = self.metrics.model(model.name, model.version)
        batcher.observers.append(metrics.observe_batch)
        loaded = LoadedModel(model, runtime, batcher, metrics)
        versions = self._models.setdefault(model.name, {})
        versions[model.version] = loaded
        self._defaults[model.name] = versions[self._default_version(versions)]
        return loaded

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The version asked for, or the model's default; NotFound names what is missing."""
        if not version:
            default = self._defaults.get(name)
            if default is None:
                raise NotFound(f"unknown model {name!r}")
            return default
        versions = self._models.get(name)
        if not versions:
            raise NotFound(f"unknown model {name!r}")
        loaded = versions.get(version)
        if loaded is None:
            served = ", ".join(self.versions(name))
            raise NotFound(f"model {name!r} has no version {version!r} (it has {served})")
        return loaded

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` being served, oldest first."""
        return sorted(self._models.get(name, {}), key=_version_order)

    def models(self) -> list[LoadedModel]:
        """Every version of every model, by name then version."""
        return [
            self._models[name][version]
            for name in sorted(self._models)
            for version in self.versions(name)
        ]

    @property
    def ready(self) -> bool:
        """Whether the server should get traffic: not draining, every version ready."""
        return not self._draining and all(model.ready for model in self.models())

    def begin_drain(self) -> None:
        """Marks the whole server as going away (readiness turns false) without waiting;
        safe to call from a signal handler."""
        self._draining = True

    async def remove(self, name: str, version: str) -> None:
        """Drains ``name:version`` (queued requests are answered, new ones get Busy) and
        then stops serving it. Raises NotFound when it is not served."""
        loaded = self.get(name, version)
        await loaded.batcher.drain()
        versions = self._models[name]
        del versions[version]
        if versions:
            self._defaults[name] = versions[self._default_version(versions)]
        else:
            del self._models[name]
            del self._defaults[name]

    async def drain(self) -> None:
        """Drains every version at once: the graceful end of a server."""
        self._draining = True
        await asyncio.gather(*(model.batcher.drain() for model in self.models()))

    @staticmethod
    def _default_version(versions: dict[str, LoadedModel]) -> str:
        marked = [version for version, loaded in versions.items() if loaded.served.default]
        return marked[0] if marked else max(versions, key=_version_order)
