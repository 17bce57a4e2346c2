"""Import only the parts of kubernetes_asyncio the operator uses.

`import kubernetes_asyncio.client` runs the package's `__init__`, which loads every generated
API class and model: about 60 MiB of a process that uses `ApiClient`, `Configuration`, the
exceptions and the kubeconfig loader only. `install()` registers the packages
`kubernetes_asyncio`, `kubernetes_asyncio.client` and `kubernetes_asyncio.client.models`
without running their `__init__`: submodules import as usual, `ApiClient` and `Configuration`
come from their own modules, and the first use of any other name (a generated API class, a
model) runs the real `__init__` then, so nothing a caller may use goes missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

# Names read from a lazy package, by the submodule that defines them.
LIGHT = {
    "kubernetes_asyncio.client": {
        "ApiClient": "api_client",
        "Configuration": "configuration",
        "ApiException": "exceptions",
    },
}
PACKAGES = ("kubernetes_asyncio", "kubernetes_asyncio.client", "kubernetes_asyncio.client.models")


def install() -> None:
    """Register the lazy packages, unless kubernetes_asyncio is imported already."""
    if any(name in sys.modules for name in PACKAGES):
        return
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return
        _register(name, spec)


def _register(name: str, spec: Any) -> None:
    module = importlib.util.module_from_spec(spec)
    loaded = False

    def load() -> None:
        nonlocal loaded
        if not loaded:
            loaded = True
            spec.loader.exec_module(module)

    def __getattr__(attr: str) -> Any:
        light = LIGHT.get(name, {}).get(attr)
        if light is not None:
            return getattr(importlib.import_module(f"{name}.{light}"), attr)
        if not loaded:
            try:
                return importlib.import_module(f"{name}.{attr}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{name}.{attr}":
                    raise
            load()
            if attr in module.__dict__:
                return module.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)


def loaded_everything() -> bool:
    """Whether the generated models were loaded (for tests and the benchmark)."""
    return "kubernetes_asyncio.client.models.v1_pod" in sys.modules
