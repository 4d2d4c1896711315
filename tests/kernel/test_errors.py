"""Every exception TraceHub defines derives from tracehub.errors.TraceHubError (the chaincode,
which imports nothing of the hub, keeps its own root), is named ``...Error``, and no two share a
name: one error, one name, one place."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import defaultdict
from types import ModuleType

from tracehub.errors import TraceHubError

#: Every package of the hub; the chaincode is checked for names only.
PACKAGES = ("tracehub", "certs", "ingest", "alerts", "commerce", "gateway", "edge", "demo", "api")
OWN_ROOT = ("chaincode",)


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    names = [
        info.name
        for info in pkgutil.walk_packages(root.__path__, f"{package}.")
        if info.name.rsplit(".", 1)[-1] != "__main__"  # entry points run when imported
    ]
    return [root, *(importlib.import_module(name) for name in sorted(names))]


def _exceptions(packages: tuple[str, ...]) -> list[type[BaseException]]:
    found = []
    for package in packages:
        for module in _modules(package):
            for value in vars(module).values():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                ):
                    found.append(value)
    return found


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_exception_derives_from_tracehub_error() -> None:
    strays = [_where(c) for c in _exceptions(PACKAGES) if not issubclass(c, TraceHubError)]
    assert not strays, f"not TraceHubErrors: {strays}"


def test_exception_names_end_in_error_and_are_unique() -> None:
    classes = _exceptions(PACKAGES + OWN_ROOT)
    assert len(classes) > 20  # the walk found the packages' modules
    badly_named = [_where(c) for c in classes if not c.__name__.endswith("Error")]
    assert not badly_named, f"names not ending in Error: {badly_named}"
    homes: dict[str, list[str]] = defaultdict(list)
    for cls in classes:
        homes[cls.__name__].append(_where(cls))
    shared = {name: where for name, where in homes.items() if len(where) > 1}
    assert not shared, f"names defined more than once: {shared}"


def test_the_chaincode_keeps_its_own_root() -> None:
    classes = _exceptions(OWN_ROOT)
    assert classes
    assert not [c for c in classes if issubclass(c, TraceHubError)]
