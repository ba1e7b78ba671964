"""Where attn-mlir's tools (``attn-compile``, ``attn-opt``) and runtime libraries are.

A tool is looked up in this order; the first that exists is used:

1. its own environment variable, the path of the tool itself (``ATTN_COMPILE``, ``ATTN_OPT``);
2. ``$ATTN_MLIR_PREFIX/bin``: an install prefix (``cmake --install``) or a build tree;
3. the prefix this package is installed in: ``cmake --install`` puts the package at
   ``<prefix>/python/attn``, beside ``<prefix>/bin`` and ``<prefix>/lib``;
4. ``PATH`` (``shutil.which``);
5. for development, the build tree of the source tree this package is in (``<repo>/build``).

``ToolNotFoundError`` lists every place tried. Libraries (``lib/``) are looked up in the same
prefixes, or beside the tool found.
"""

import os
import shutil

PREFIX_ENV = "ATTN_MLIR_PREFIX"
TOOL_ENVS = {"attn-compile": "ATTN_COMPILE", "attn-opt": "ATTN_OPT"}

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ToolNotFoundError(FileNotFoundError):
    """No tool of that name in any place of the search order; the message lists them."""


def _is_executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _install_prefix():
    """``<prefix>`` if this package is ``<prefix>/python/attn`` (the CMake install layout)."""
    python_dir = os.path.dirname(_PACKAGE_DIR)
    if os.path.basename(python_dir) != "python":
        return None
    return os.path.dirname(python_dir)


def _source_build_tree():
    """``<repo>/build`` if this package is the source tree's ``python/attn``."""
    prefix = _install_prefix()
    if prefix is None or not os.path.isfile(os.path.join(prefix, "CMakeLists.txt")):
        return None
    return os.path.join(prefix, "build")


def _places(name):
    """(description, path of the tool) in search order; None paths are skipped."""
    env = TOOL_ENVS.get(name)
    places = []
    if env:
        places.append((f"${env}", os.environ.get(env) or None))
    prefix = os.environ.get(PREFIX_ENV)
    places.append((f"${PREFIX_ENV}/bin", prefix and os.path.join(prefix, "bin", name)))
    installed = _install_prefix()
    places.append(("the install prefix of the package",
                   installed and os.path.join(installed, "bin", name)))
    places.append(("PATH", shutil.which(name)))
    build = _source_build_tree()
    places.append(("the source tree's build/bin", build and os.path.join(build, "bin", name)))
    return places


def find_tool(name):
    """Absolute path of tool ``name`` (see the module docstring for the order)."""
    tried = []
    for description, path in _places(name):
        if path is None:
            continue
        if _is_executable(path):
            return os.path.abspath(path)
        tried.append(f"{description}: {path}")
    env = TOOL_ENVS.get(name)
    hint = f"set {env} to the tool or " if env else "set "
    raise ToolNotFoundError(
        f"{name} not found ({'; '.join(tried) or 'no candidate'}; not on PATH); "
        f"{hint}{PREFIX_ENV} to an attn-mlir install prefix or build tree")


def find_library(names, tool="attn-compile"):
    """Absolute path of the first of the library file ``names`` found in ``lib/`` of the
    prefixes of the search order, or of the prefix of ``tool``."""
    prefixes = [os.environ.get(PREFIX_ENV), _install_prefix()]
    try:
        prefixes.append(os.path.dirname(os.path.dirname(find_tool(tool))))
    except ToolNotFoundError:
        pass
    prefixes.append(_source_build_tree())
    tried = []
    for prefix in filter(None, prefixes):
        for name in names:
            path = os.path.join(prefix, "lib", name)
            if os.path.isfile(path):
                return os.path.abspath(path)
            tried.append(path)
    raise ToolNotFoundError(f"none of {', '.join(names)} found (tried {', '.join(tried)}); "
                            f"set {PREFIX_ENV} to an attn-mlir install prefix or build tree")
