"""Ray's module names for ferry, so an unmodified Ray program runs on ferry.

``install()`` puts a finder at the front of ``sys.meta_path``. From then on,
in this process, ``import ray`` and the Ray modules ferry implements
(``ALIASES``) resolve to aliases of ferry's modules: ``ray.get`` *is*
``ferry.get``, ``ray.exceptions.RayActorError`` *is*
``ferry.exceptions.ActorDiedError``. Everything else under ``ray`` fails where
the program touches it, with an error that names the missing feature:

* a module (``import ray.data``, ``from ray import tune``) raises
  ``ModuleNotFoundError``;
* an attribute (``ray.get_runtime_context``, ``from ray.util import
  placement_group``) raises ``RayFeatureNotSupportedError``, an
  ``AttributeError`` and a ``FerryError``, or the ``ModuleNotFoundError``
  above when it is the target of a ``from`` import.

Both messages list what the enclosing Ray module does provide here and point
to docs/ray-compat.md. ``python -m ferry run --as-ray script.py`` and ``import
ferry.as_ray`` call ``install()``; nothing is ever installed as a package
named ``ray``, and worker processes never need the finder: an alias pickles
as the ferry module it stands for.

Thread contract: ``install`` and ``uninstall`` are meant for a program's
start (and tests); they are not synchronized with imports running on other
threads. The aliases themselves hold no mutable state of their own beyond
what the import system sets on any module.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any, Callable, Sequence

from ferry.exceptions import FerryError

# Ray's module name -> the ferry module that stands for it.
ALIASES: dict[str, str] = {
    "ray": "ferry",
    "ray.actor": "ferry.actor",
    "ray.exceptions": "ferry.exceptions",
    "ray.experimental": "ferry.experimental",
    "ray.experimental.collective": "ferry.experimental.collective",
    "ray.util": "ferry.util",
    "ray.util.scheduling_strategies": "ferry.util.scheduling_strategies",
}
_RAY_NAME_OF: dict[str, str] = {ferry_name: ray_name for ray_name, ferry_name in ALIASES.items()}
_DOC = "docs/ray-compat.md"


class RayFeatureNotSupportedError(FerryError, AttributeError):
    """A Ray program used a part of Ray's API that ferry does not implement.
    An ``AttributeError`` too, so ``hasattr(ray, name)`` and ``getattr(ray,
    name, default)`` keep working."""


def _is_ray_name(name: str) -> bool:
    return name == "ray" or name.startswith("ray.")


def _provided(ray_module: str) -> list[str]:
    """The public names the alias ``ray_module`` resolves, submodules as their
    full Ray names."""
    target = importlib.import_module(ALIASES[ray_module])
    names = getattr(target, "__all__", None)
    if names is None:
        names = [n for n, v in vars(target).items()
                 if not n.startswith("_") and getattr(v, "__module__", "").startswith("ferry")]
    attributes = sorted(n for n in names
                        if not isinstance(getattr(target, n, None), types.ModuleType))
    prefix = ray_module + "."
    modules = sorted(r for r in ALIASES if r.startswith(prefix) and "." not in r[len(prefix):])
    return attributes + modules


def unsupported_message(ray_name: str) -> str:
    """Why ``ray_name`` (a dotted name under ``ray``) does not resolve: what
    the nearest Ray module ferry implements provides instead."""
    parent = ray_name.rpartition(".")[0]
    while parent not in ALIASES:
        parent = parent.rpartition(".")[0]
    provided = ", ".join(_provided(parent))
    return (f"{ray_name} is not part of ferry's Ray-compatible surface (this program runs on "
            f"ferry as Ray); ferry implements, in {parent}: {provided}; see {_DOC}")


class RayAlias(types.ModuleType):
    """The module a Ray name (``ray``, ``ray.exceptions``, ...) resolves to:
    its attributes are those of the ferry module it stands for, the same
    objects; a name that module lacks raises RayFeatureNotSupportedError.
    Only the import system's own attributes (``__name__``, ``__spec__``,
    submodules it binds) live on the alias itself."""

    def __init__(self, name: str, target: types.ModuleType) -> None:
        super().__init__(name, target.__doc__)
        self.__dict__["__ferry_module__"] = target

    def __getattr__(self, name: str) -> Any:
        target: types.ModuleType = self.__dict__["__ferry_module__"]
        value = getattr(target, name, _MISSING)
        if isinstance(value, types.ModuleType):
            # A ferry submodule: its Ray alias, or missing when Ray's API has
            # no such module (ray.api, ray._private are not ferry's).
            ray_name = _RAY_NAME_OF.get(value.__name__)
            if ray_name is not None:
                return sys.modules.get(ray_name) or importlib.import_module(ray_name)
            value = _MISSING
        if value is _MISSING:
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
            raise RayFeatureNotSupportedError(unsupported_message(f"{self.__name__}.{name}"))
        return value

    def __dir__(self) -> list[str]:
        target: types.ModuleType = self.__dict__["__ferry_module__"]
        return sorted(set(dir(target)) | set(self.__dict__))

    def __repr__(self) -> str:
        target: types.ModuleType = self.__dict__["__ferry_module__"]
        return f"<module {self.__name__!r}: ferry's alias of {target.__name__!r}>"

    def __reduce__(self) -> tuple[Callable[[str], types.ModuleType], tuple[str]]:
        # Pickled (e.g. as a global of a remote class's method) as the ferry
        # module itself: a worker imports ferry, never `ray`.
        target: types.ModuleType = self.__dict__["__ferry_module__"]
        return importlib.import_module, (target.__name__,)


_MISSING = object()


class _RayFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers every name under ``ray``: an alias for those in ALIASES, a
    ModuleNotFoundError naming the module for the others."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not _is_ray_name(fullname):
            return None
        if fullname not in ALIASES:
            # No ``name=``: importlib drops a ModuleNotFoundError whose name
            # is the target of a ``from ray.x import y`` and raises a bare
            # "cannot import name" instead; this message says more.
            raise ModuleNotFoundError(unsupported_message(fullname))
        # Every alias is a package to the import system, so that ``from
        # ray.exceptions import Missing`` also reaches this finder.
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return RayAlias(spec.name, importlib.import_module(ALIASES[spec.name]))

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # an alias has no code of its own


_finder = _RayFinder()


def installed() -> bool:
    """Whether ``ray`` resolves to ferry in this process."""
    return _finder in sys.meta_path


def install() -> None:
    """Makes ``import ray`` (and ALIASES) resolve to ferry in this process
    from now on. Idempotent. Raises ImportError when Ray itself is already
    imported here: its modules and objects could not be replaced."""
    if installed():
        return
    real = sys.modules.get("ray")
    if real is not None and not isinstance(real, RayAlias):
        where = getattr(real, "__file__", None) or repr(real)
        raise ImportError(
            f"cannot run this program on ferry as Ray: Ray itself ({where}) is already imported "
            f"in this process. Install ferry's aliases before the first `import ray`: run it "
            f"with `python -m ferry run --as-ray`, or put `import ferry.as_ray` first ({_DOC})")
    sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Undoes ``install()``: removes the finder and the aliases imported so
    far from ``sys.modules``. Objects the program already holds stay valid."""
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in [n for n, m in sys.modules.items() if _is_ray_name(n) and isinstance(m, RayAlias)]:
        del sys.modules[name]
