"""The path cache: contraction trees and slicings kept by network structure.

A :class:`PathCache` is owned by a plan. It keeps the trees it has found in memory and, when
given a directory, as JSON files named by the network's structure key
(:meth:`~qrnn_tn.backends.tensornet.network.StepNetwork.key`): ``{key}.json`` holds the SSA
path, ``{key}.slice{target}.json`` the sliced indices for a target size. Later plans, other
ranks and other workers sharing the directory then do no search. Files are written atomically;
an entry is checked against the network before use (a path that contracts its tensors, each
exactly once; sliced indices that exist, are not outputs and reach the target) and one that is
not is warned about (:class:`PathCacheWarning`), searched again and replaced.

cotengra's ``ReusableHyperOptimizer`` keeps its paths in a ``DiskDict`` of pickles, read
without checks, around one ``HyperOptimizer``; the search here combines several optimisers
(:mod:`~qrnn_tn.backends.tensornet.search`) and a cache directory may be shared or damaged,
so the entries are plain, validated JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cotengra as ctg

from qrnn_tn.backends.tensornet.network import StepNetwork
from qrnn_tn.backends.tensornet.search import symbols

__all__ = ["PathCache", "PathCacheWarning"]


class PathCacheWarning(UserWarning):
    """A path-cache entry was unusable (damaged, or for another network) or unwritable.

    The tree is searched again, and the run goes on.
    """


class PathCache:
    """Contraction trees and slicings of one plan, in memory and optionally on disk.

    Parameters
    ----------
    directory
        Where the entries are kept across processes; ``None`` keeps them in memory only.

    Attributes
    ----------
    searches
        The path and slicing searches this cache has run (hits excluded).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.searches = 0
        self._trees: dict[tuple[str, int | None], ctg.ContractionTree] = {}

    def tree(
        self, net: StepNetwork, search: Callable[[], ctg.ContractionTree]
    ) -> ctg.ContractionTree:
        """Return the unsliced tree of ``net``: from memory, then disk, then ``search()``."""
        key = net.key()
        if (key, None) in self._trees:
            return self._trees[(key, None)]
        path = self._path(f"{key}.json")
        data = _read(path) if path else None
        ssa = None
        if path and data is not None:
            ssa = _valid_ssa_path(data, len(net.leaves))
            if ssa is None:
                what = f"is not a contraction path of this network's {len(net.leaves)} tensors"
                _invalid(path, what)
        if ssa is not None:
            inputs, output, sizes = symbols(net)
            tree = ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=ssa)
        else:
            self.searches += 1
            tree = search()
            if path:
                _write(path, {"ssa_path": [list(p) for p in tree.get_ssa_path()]})
        self._trees[(key, None)] = tree
        return tree

    def sliced(
        self,
        net: StepNetwork,
        tree: ctg.ContractionTree,
        target_size: int,
        max_slices: int | None,
        search: Callable[[], ctg.ContractionTree],
    ) -> ctg.ContractionTree:
        """Return ``tree`` sliced to ``target_size``: from memory, then disk, then ``search()``.

        A disk entry is used when its indices bring the tree to ``target_size`` or, as a
        failed search's result would, past ``max_slices`` slices.
        """
        key = net.key()
        if (key, target_size) in self._trees:
            return self._trees[(key, target_size)]
        path = self._path(f"{key}.slice{target_size}.json")
        data = _read(path) if path else None
        sliced = None
        if path and data is not None:
            sliced = _cached_slicing(data, net, tree, target_size, max_slices)
            if sliced is None:
                _invalid(path, f"is not a slicing of this network to {target_size} elements")
        if sliced is None:
            self.searches += 1
            sliced = search()
            if path:
                index = {ctg.get_symbol(i): i for i in net.size_dict}
                _write(path, {"sliced": [index[ix] for ix in sliced.sliced_inds]})
        self._trees[(key, target_size)] = sliced
        return sliced

    def _path(self, name: str) -> Path | None:
        return self.directory / name if self.directory else None


def _read(path: Path) -> dict[str, Any] | None:
    """Return the entry at ``path`` (``{}`` if not an object), ``None`` if absent or unreadable.

    An unreadable entry is warned about.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as err:
        warnings.warn(
            f"path cache entry {path} is unreadable ({err}); searching again",
            PathCacheWarning,
            stacklevel=4,
        )
        return None
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically to ``path``.

    An unwritable cache directory only costs a warning (the run goes on uncached).
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(
            f"cannot write the path cache {path.parent} ({err}); running uncached",
            PathCacheWarning,
            stacklevel=4,
        )


def _valid_ssa_path(data: dict[str, Any], n: int) -> list[tuple[int, int]] | None:
    """Return the stored SSA path if it contracts ``n`` tensors into one, each exactly once."""
    steps = data.get("ssa_path")
    if not isinstance(steps, list) or len(steps) != max(n - 1, 0):
        return None
    alive = set(range(n))
    path = []
    for k, step in enumerate(steps):
        if not (
            isinstance(step, list)
            and len(step) == 2
            and all(type(i) is int for i in step)
            and step[0] != step[1]
            and all(i in alive for i in step)
        ):
            return None
        alive -= set(step)
        alive.add(n + k)
        path.append((step[0], step[1]))
    return path


def _invalid(path: Path, what: str) -> None:
    warnings.warn(
        f"path cache entry {path} {what}; searching again and replacing it",
        PathCacheWarning,
        stacklevel=4,
    )


def _cached_slicing(
    data: dict[str, Any],
    net: StepNetwork,
    tree: ctg.ContractionTree,
    target_size: int,
    max_slices: int | None,
) -> ctg.ContractionTree | None:
    """Return ``tree`` sliced on a cache entry's indices, or ``None`` if they do not fit.

    They fit if they are sliceable indices of ``net`` (not outputs) and reach
    ``target_size`` (or, as a failed search's result would, pass ``max_slices``).
    """
    names = data.get("sliced")
    if not isinstance(names, list) or not all(
        type(i) is int and i in net.size_dict and i not in net.output for i in names
    ):
        return None
    sliced = tree.copy()
    # ``tree`` may itself be sliced (the budget loop slices step by step): the stored
    # indices include its own, which must not be removed twice.
    for ix in dict.fromkeys(names):
        if ctg.get_symbol(ix) not in sliced.sliced_inds:
            sliced.remove_ind_(ctg.get_symbol(ix))
    failed = max_slices is not None and sliced.nslices > max_slices
    return sliced if sliced.max_size() <= target_size or failed else None
