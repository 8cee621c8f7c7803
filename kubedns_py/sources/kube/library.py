"""The parts of kubernetes-asyncio serve uses: configuration, authentication and the REST client.

Importing ``kubernetes_asyncio.client`` runs package ``__init__`` files that load about 1,000 generated
model and API classes: 36 MiB of a process that reads the API's raw JSON and never uses them. Here
those package modules are created without running their code, and run it the first time anything
else is asked of them, so a program that does use the models (or the watch helper) still gets them
whole. When the package is already loaded, it is used as it is.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

PACKAGES = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")


def _deferred(name: str) -> ModuleType:
    """The package ``name`` as a module whose own code runs when something that is not one of its
    submodules is first asked of it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no package {name}", name=name)
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    running = threading.Lock()

    def run_then_get(attribute: str) -> Any:
        if "." not in attribute and importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")  # a submodule: load it alone
        with running:
            if module.__dict__.get("__getattr__") is run_then_get:
                del module.__dict__["__getattr__"]  # from now on a missing attribute is missing
                try:
                    loader.exec_module(module)
                except BaseException:
                    module.__dict__["__getattr__"] = run_then_get  # the next use tries again
                    raise
        return getattr(module, attribute)

    module.__dict__["__getattr__"] = run_then_get
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


if PACKAGES[0] not in sys.modules:
    for package in PACKAGES:
        _deferred(package)

from kubernetes_asyncio.client.api_client import ApiClient  # noqa: E402
from kubernetes_asyncio.client.configuration import Configuration  # noqa: E402

# kube_config asks the client package for these two; answered, they leave the rest of it unloaded.
_client = sys.modules["kubernetes_asyncio.client"]
if "__getattr__" in _client.__dict__:
    _client.__dict__.update(ApiClient=ApiClient, Configuration=Configuration)

from kubernetes_asyncio.config import incluster_config, kube_config  # noqa: E402

__all__ = ["ApiClient", "Configuration", "incluster_config", "kube_config"]
