"""The dataset record and the lookup of the shared data folder (no pandas work beyond reading).

A dataset is either *bundled* (a CSV in this package, read with :mod:`importlib.resources`) or
*shared*: its license does not let the package redistribute it, so it is read from a local copy
of the project's ``shared/data`` folder, never downloaded. :func:`shared_folder` finds that copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayescale.data import DataError

#: Environment variable naming the folder that holds the shared ladders (``shared/data``).
ENV_VAR = "BAYESCALE_SHARED_DATA"
# bayescale/datasets/_core.py -> the repository root (or site-packages' parent when installed)
_REPO_ROOT = Path(__file__).resolve().parents[2]

Selector = Callable[[pd.DataFrame, Mapping[str, Any]], pd.DataFrame]


@dataclass(frozen=True)
class Dataset:
    """One dataset: where it lives, its provenance, and how to read it.

    Attributes
    ----------
    name, description, citation, license, source, notes : str
        Registry name, one-line description, paper citation, license note, upstream file
        (repository and commit) and caveats; ``notes`` names the traps (compute definition,
        checkpoints, units).
    law : str
        Suggested law, a name of :func:`bayescale.law_names`.
    family : str
        What the ``family`` column means.
    heldout : str
        The held-out split the paper defines, or ``"none defined by the paper; ..."``.
    rows : int
        Rows of the default load (what :func:`bayescale.datasets.describe` reports when a
        shared dataset's folder is absent).
    units : str
        Units of ``loss``; ``"nats/token"`` unless stated otherwise.
    file : str or None
        Bundled CSV next to this module; None for a shared dataset.
    folder : str or None
        Folder under ``shared/data`` for a shared dataset; None when bundled.
    read : callable or None
        ``read(folder_path) -> DataFrame`` for a shared dataset: canonical columns first.
    options : mapping
        Options :func:`bayescale.datasets.load` accepts, with their defaults.
    select : callable or None
        ``select(frame, options) -> frame``: applies the options (and warns where needed).
    """

    name: str
    description: str
    citation: str
    license: str
    source: str
    notes: str
    law: str
    family: str
    heldout: str
    rows: int
    units: str = "nats/token"
    file: str | None = None
    folder: str | None = None
    read: Callable[[Path], pd.DataFrame] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    select: Selector | None = None

    @property
    def bundled(self) -> bool:
        """True when the data ships inside the package."""
        return self.folder is None


def _candidates(root: str | os.PathLike | None) -> tuple[list[Path], str]:
    """Folders that may hold the shared ladders, and how they were chosen (for messages)."""
    if root is not None:
        return [Path(root)], f"root={os.fspath(root)!r}"
    env = os.environ.get(ENV_VAR)
    if env:
        return [Path(env)], f"{ENV_VAR}={env!r}"
    starts = (_REPO_ROOT, Path.cwd().resolve())
    found: list[Path] = []
    for start in starts:
        for base in (start, *start.parents):
            path = base / "shared" / "data"
            if path not in found:
                found.append(path)
    return found, "shared/data above the repository root or the current directory"


def shared_folder(
    name: str, folder: str, root: str | os.PathLike | None = None, license: str = "none stated"
) -> Path:
    """Return the local copy of ``shared/data/<folder>``.

    Parameters
    ----------
    name : str
        Dataset name, for the error message.
    folder : str
        Folder name under ``shared/data`` (e.g. ``"xlstm_scaling_laws"``).
    root : path-like, optional
        The ``shared/data`` folder (or ``<folder>`` itself). When None, the environment variable
        ``BAYESCALE_SHARED_DATA`` is used; when that is unset too, ``shared/data`` is looked for
        in the repository root, the current directory and each of their parents.
    license : str, default "none stated"
        The dataset's license in a few words, for the error message.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    DataError
        The folder is nowhere to be found (one line saying what to set). Nothing is downloaded.
    """
    bases, how = _candidates(root)
    for base in bases:
        if (base / folder).is_dir():
            return base / folder
        if base.name == folder and base.is_dir():
            return base
    raise DataError(
        f"dataset '{name}' is not bundled (license: {license}) and {folder}/ was not "
        f"found ({how}); set {ENV_VAR} to the shared/data folder that holds {folder}/, or pass "
        f"root=..."
    )


def read_source(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a shared source CSV, checking that it has the columns the loader uses.

    Raises
    ------
    DataError
        The file is missing or lacks one of ``columns``.
    """
    if not path.is_file():
        raise DataError(f"{path.parent.name}/ has no {path.name} (expected at {path})")
    frame = pd.read_csv(path)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}")
    return frame
