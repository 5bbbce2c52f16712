"""Real training runs: bundled with bayescale, or read from a local shared data folder.

::

    from bayescale import datasets
    datasets.names()                       # one line per dataset, marked bundled or shared
    df = datasets.load("chinchilla")       # canonical columns N, D, U, loss, family, C
    print(datasets.citation("chinchilla"))
    xl = datasets.load("xlstm")            # not bundled: read from shared/data/xlstm_scaling_laws

Every frame carries ``df.attrs["name"]``, ``["citation"]``, ``["license"]``, ``["source"]``,
``["notes"]`` (caveats: compute definition, checkpoints, units), ``["law"]`` (suggested law),
``["family"]`` (what the family column means), ``["heldout"]`` (the paper's held-out split, if
any), ``["units"]`` (of ``loss``), ``["bundled"]`` and ``["location"]``. ``CITATIONS.md`` next to
this file says the same in prose, with the table of which shared folders have a loader and why;
``_build.py`` regenerates the bundled CSVs from the source copies. Canonical ``C`` is ``6 N D``
everywhere; losses are in nats/token except where ``attrs["units"]`` says otherwise.

Datasets whose license does not allow redistribution are never downloaded: they are read from
``root``, else the folder named by the environment variable ``BAYESCALE_SHARED_DATA``, else a
``shared/data`` folder above the repository root or the current directory.
"""

from __future__ import annotations

import os
import warnings
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data import DataError, DataWarning

from ._bundled import BUNDLED
from ._core import ENV_VAR, Dataset, shared_folder
from ._shared import REFUSED, SHARED

__all__ = ["ENV_VAR", "citation", "describe", "load", "names", "refused"]

_FLOAT_COLUMNS = ("N", "D", "U", "loss", "C")
_REGISTRY: dict[str, Dataset] = {**BUNDLED, **SHARED}


def _entry(name: str) -> Dataset:
    if isinstance(name, str) and name in REFUSED:
        raise DataError(REFUSED[name])
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown dataset {name!r}; valid names: {', '.join(_REGISTRY)} "
            f"(no loader, see refused(): {', '.join(REFUSED)})"
        ) from None


def _options(entry: Dataset, given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(entry.options))
    if unknown:
        valid = ", ".join(entry.options) or "none"
        raise DataError(
            f"dataset '{entry.name}' has no option {', '.join(unknown)}; options: {valid}"
        )
    return {**entry.options, **given}


def _short_license(entry: Dataset) -> str:
    return entry.license.split(":")[0]


def _read(entry: Dataset, root: str | os.PathLike | None) -> tuple[pd.DataFrame, str]:
    """The entry's full table (before options) and where it was read from."""
    if entry.bundled:
        with resources.as_file(resources.files(__name__) / entry.file) as path:
            frame = pd.read_csv(path)
        location = "bundled with bayescale"
    else:
        folder = shared_folder(entry.name, entry.folder, root, _short_license(entry))
        frame = entry.read(folder)
        location = str(folder)
    for column in _FLOAT_COLUMNS:
        frame[column] = frame[column].astype(np.float64)
    frame["family"] = frame["family"].astype(str)
    return frame, location


def load(name: str, **options: Any) -> pd.DataFrame:
    """Load a dataset as a pandas DataFrame.

    Parameters
    ----------
    name : str
        One of :func:`names`. Bundled: ``"chinchilla"``, ``"datablations"``,
        ``"datablations_all"``, ``"datablations_curves"``, ``"gadre"``, ``"gemstones"``.
        Read from the shared data folder: ``"xlstm"``, ``"llama3_isoflops"``, ``"steplaw"``.
    **options
        ``chinchilla``: ``epoch_subset=True`` keeps the 240 runs Besiroglu et al. (2024)
        fit (drops the 5 highest losses). ``datablations_curves``: ``curves=True`` returns
        every checkpoint instead of each run's last one, with a :class:`DataWarning`.
        ``gemstones``: ``schedule="cooldown"`` (default; the 199 annealed runs),
        ``"constant_lr"`` or ``"constant_lr_half"`` (checkpoints of one run per shape, with a
        :class:`DataWarning`). ``xlstm``: ``split="train"`` (default), ``"test"`` (the paper's
        held-out run) or ``"all"``; ``paper_only=False`` adds the runs the paper excluded.
        ``steplaw``: ``suspect=True`` keeps the D = 1e13 cell (with a :class:`DataWarning`).
        Shared datasets: ``root``, the ``shared/data`` folder (default: the environment
        variable ``BAYESCALE_SHARED_DATA``, else ``shared/data`` above the repository root or
        the current directory).

    Returns
    -------
    pandas.DataFrame
        Columns ``N``, ``D``, ``U``, ``loss``, ``family``, ``C`` (``6 N D``; float64 except
        ``family``) and dataset-specific extras; a fresh RangeIndex. ``attrs`` holds
        ``name``, ``citation``, ``license``, ``source``, ``notes``, ``law``, ``family``,
        ``heldout``, ``units``, ``bundled`` (bool) and ``location``.

    Raises
    ------
    DataError
        Unknown name (the message lists the valid ones), a shared folder without a loader (one
        line saying why), an unknown option or option value, or a shared dataset whose folder
        cannot be found (one line saying what to set).

    Warns
    -----
    DataWarning
        ``llama3_isoflops`` on every load (loss units not stated), and the options above that
        return checkpoints or suspect rows.
    """
    entry = _entry(name)
    chosen = _options(entry, options)
    frame, location = _read(entry, chosen.get("root"))
    if entry.select is not None:
        frame = entry.select(frame, chosen)
    frame = frame.reset_index(drop=True)
    frame.attrs.update(
        name=entry.name,
        citation=entry.citation,
        license=entry.license,
        source=entry.source,
        notes=entry.notes,
        law=entry.law,
        family=entry.family,
        heldout=entry.heldout,
        units=entry.units,
        bundled=entry.bundled,
        location=location,
    )
    return frame


def _where(entry: Dataset) -> str:
    return "bundled" if entry.bundled else f"not bundled: needs shared/data/{entry.folder}/"


def names() -> pd.Series:
    """Dataset names, each with a one-line description marked bundled or shared.

    Returns
    -------
    pandas.Series
        Indexed by name (index name ``"name"``); each value is the description followed by
        ``[bundled]`` or ``[not bundled: needs shared/data/<folder>/]``.
    """
    series = pd.Series(
        {name: f"{entry.description} [{_where(entry)}]" for name, entry in _REGISTRY.items()},
        name="description",
    )
    series.index.name = "name"
    return series


def refused() -> pd.Series:
    """Shared data folders without a loader, each with the one-line reason ``load`` raises.

    Returns
    -------
    pandas.Series
        Indexed by name (index name ``"name"``), values the reasons.
    """
    series = pd.Series(REFUSED, name="reason")
    series.index.name = "name"
    return series


def citation(name: str) -> str:
    """Return the citation of a dataset (paper, and the digitizer where relevant)."""
    return _entry(name).citation


def _found(entry: Dataset) -> bool:
    try:
        shared_folder(entry.name, entry.folder, license=_short_license(entry))
    except DataError:
        return False
    return True


def describe() -> pd.DataFrame:
    """One row per dataset: name, rows, families, description, citation, license, bundled, available.

    ``rows`` and ``families`` are those of the default load; for a shared dataset whose folder
    cannot be found (``available`` False) ``rows`` is the documented count and ``families`` is
    empty. ``families`` lists the family names, comma-separated.
    """
    rows = []
    for name, entry in _REGISTRY.items():
        available = entry.bundled or _found(entry)
        if available:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                frame = load(name)
            count, families = len(frame), ", ".join(pd.unique(frame["family"]))
        else:
            count, families = entry.rows, ""
        rows.append(
            {
                "name": name,
                "rows": count,
                "families": families,
                "description": entry.description,
                "citation": entry.citation,
                "license": entry.license,
                "bundled": entry.bundled,
                "available": available,
            }
        )
    return pd.DataFrame(rows)
