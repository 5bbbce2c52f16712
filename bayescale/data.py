"""Validate a table of training runs into :class:`ScalingData`.

The data contract (``DESIGN.md``, "Data contract"):

* ``N`` (parameters), ``loss`` (nats/token) and ``D`` (training tokens seen) are required;
  ``D`` may be left out when ``C`` (training FLOPs) is given, and is then ``C / (6 N)``.
* ``U`` (unique tokens available) is optional and defaults to ``D`` (one epoch). ``U > D`` is
  accepted: laws use ``U_eff = min(U, D)`` (Muennighoff et al. 2023, arXiv:2305.16264).
* ``family`` is optional (default one family named ``"all"``); other columns are kept.
* Quantities may be written ``"2.8B"``, ``"70M"``, ``"1.4T"``, ``"350k"``, ``"6,000"``.
* Integer columns become float64 before any arithmetic: ``6 N D`` overflows int64 past
  9.2e18 FLOPs.

Bad input raises :class:`DataError` with a one-line message naming the column and the 0-based
row positions. This module imports only numpy, pandas and the standard library, so that a bad
file fails before JAX is imported.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_COLUMNS",
    "DataError",
    "DataWarning",
    "ScalingData",
    "new_points",
    "parse_quantity",
    "validate",
]

#: Canonical column names, in the order of :attr:`ScalingData.frame`.
CANONICAL_COLUMNS: tuple[str, ...] = ("N", "D", "U", "loss", "family", "C")
#: Name of the single family used when the table has no ``family`` column.
DEFAULT_FAMILY = "all"
#: Column that keeps a user-supplied ``C`` (the canonical ``C`` is always ``6 N D``).
C_INPUT_COLUMN = "C_input"
#: Columns whose values must agree between pooled families (compared losses).
METADATA_COLUMNS: tuple[str, ...] = ("valset", "tokenizer")

_QUANTITY_COLUMNS = ("N", "D", "U", "C")
_MAX_ROWS_SHOWN = 10
_SUFFIX_EXPONENT = {"k": 3, "m": 6, "b": 9, "g": 9, "t": 12}
# Thousands separators only in groups of three, so that a decimal comma ("2,8B") is rejected
# instead of silently read as 28B.
_QUANTITY_RE = re.compile(
    r"""^\s*(?P<sign>[+-]?)
    (?P<mantissa>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)
    (?:[eE](?P<exponent>[+-]?\d+))?
    \s*(?P<suffix>[kKmMbBgGtT])?\s*$""",
    re.VERBOSE,
)
_SPECIAL_FLOATS = {
    "nan",
    "+nan",
    "-nan",
    "inf",
    "+inf",
    "-inf",
    "infinity",
    "+infinity",
    "-infinity",
}
_HOW_TO_WRITE = "write numbers like 1.2e9, 6,000 or with a suffix k, M, B/G, T as in '2.8B'"


#: Characters that str.splitlines() breaks at; escaped in messages so they stay one line.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


class DataError(ValueError):
    """Bad input data: the message is one line naming the column and the offending rows."""

    def __init__(self, message: object = "") -> None:
        # column names, family labels and paths are user text: a line break in one must not
        # split the message (escape it as repr would)
        text = str(message)
        super().__init__("".join(repr(ch)[1:-1] if ch in _LINE_BREAKS else ch for ch in text))


class DataWarning(UserWarning):
    """Suspicious but usable input data (duplicate rows, mixed validation sets, ...)."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _rows_text(rows: Iterable[int]) -> str:
    """Format 0-based row positions as ``"rows 3, 7, 12"``, truncated after ten."""
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_SHOWN])
    if len(rows) > _MAX_ROWS_SHOWN:
        return f"rows {shown} ... ({len(rows)} rows in all)"
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}"


def _column_error(column: str, problem: str, rows: Iterable[int], hint: str = "") -> DataError:
    note = f" ({hint})" if hint else ""
    return DataError(f"column '{column}': {problem} in {_rows_text(rows)}{note}")


def _one_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(text).__name__


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and np.isnan(value)


def _parse(value: Any, allow_suffix: bool) -> float:
    """Turn one cell into a float; missing cells become NaN; raise DataError otherwise."""
    if _is_missing(value):
        return float("nan")
    if isinstance(value, bool | np.bool_):
        raise DataError(f"cannot use the boolean {value!r} as a number")
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:  # an int beyond float64 (read_csv keeps 400-digit integers as int)
            return math.inf if value > 0 else -math.inf
    if not isinstance(value, str):
        raise DataError(f"cannot use {value!r} of type {type(value).__name__} as a number")
    text = value.strip()
    if not text:
        return float("nan")
    if text.lower() in _SPECIAL_FLOATS:
        return float(text)
    match = _QUANTITY_RE.match(text)
    if match is None or (match["suffix"] and not allow_suffix):
        raise DataError(f"cannot parse {value!r} as a number; {_HOW_TO_WRITE}")
    exponent_text = match["exponent"] or "0"
    if len(exponent_text.lstrip("+-0")) > 6:  # beyond any float (and int() refuses > 4300 digits)
        exponent_text = "-9999999" if exponent_text.startswith("-") else "9999999"
    exponent = int(exponent_text)
    if match["suffix"]:
        exponent += _SUFFIX_EXPONENT[match["suffix"].lower()]
    mantissa = match["mantissa"].replace(",", "")
    try:
        # Decimal keeps "2.8B" exactly 2.8e9 (2.8 * 1e9 in binary floats is not).
        number = float(Decimal(f"{match['sign']}{mantissa}e{exponent}"))
    except (InvalidOperation, OverflowError):  # pragma: no cover - the regex admits only numbers
        raise DataError(f"cannot parse {value!r} as a number; {_HOW_TO_WRITE}") from None
    return number


def parse_quantity(value: Any) -> float:
    """Parse a count such as ``"2.8B"`` into a float.

    Parameters
    ----------
    value : str or real number
        A number, or a string: plain (``"1.2e9"``), with thousands separators (``"6,000"``) or
        with a case-insensitive suffix ``k`` = 1e3, ``M`` = 1e6, ``B``/``G`` = 1e9,
        ``T`` = 1e12 (``"70M"``, ``"1.4T"``, ``"350k"``).

    Returns
    -------
    float
        The value; NaN for a missing value (``None``, NaN, empty string). Too-large values
        overflow to ``inf`` (``"1e400"``), which :func:`validate` then rejects.

    Raises
    ------
    DataError
        If the value is not a number in one of these forms.

    Examples
    --------
    >>> parse_quantity("2.8B")
    2800000000.0
    >>> parse_quantity("350k")
    350000.0
    """
    return _parse(value, allow_suffix=True)


# --------------------------------------------------------------------------------------------
# Reading and renaming the table
# --------------------------------------------------------------------------------------------


def _read_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    name = os.fspath(path)
    try:
        frame = pd.read_csv(path)
        # read_csv renames a repeated header name 'N' to 'N.1': look at the raw header
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
    except FileNotFoundError:
        raise DataError(f"cannot read '{name}': no such file") from None
    except IsADirectoryError:
        raise DataError(f"cannot read '{name}': it is a directory, not a CSV file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"cannot read '{name}': the file is empty") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read '{name}': not UTF-8 text (bad byte at position {exc.start})"
        ) from None
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        raise DataError(f"cannot read '{name}': {_one_line(exc)}") from None
    names = [n for n in header.tolist() if n != ""]  # blank names become 'Unnamed: k'
    duplicated = list(dict.fromkeys(n for n in names if names.count(n) > 1))
    if duplicated:
        listed = ", ".join(f"'{n}'" for n in duplicated)
        raise DataError(f"duplicate column names in '{name}': {listed}")
    return frame


def _mapping_to_frame(data: Mapping[str, Any]) -> pd.DataFrame:
    if all(np.ndim(value) == 0 for value in data.values()):
        return pd.DataFrame({key: [value] for key, value in data.items()})
    try:
        return pd.DataFrame(dict(data))
    except ValueError as exc:
        raise DataError(f"cannot make a table from the mapping: {_one_line(exc)}") from None


def _as_frame(data: Any) -> pd.DataFrame:
    """Accept a DataFrame, a path to a CSV file, or a mapping of columns."""
    if isinstance(data, pd.DataFrame):
        return data.copy()
    if isinstance(data, str | os.PathLike):
        return _read_csv(data)
    if isinstance(data, Mapping):
        return _mapping_to_frame(data)
    raise DataError(
        f"expected a pandas DataFrame or a path to a CSV file, got {type(data).__name__}"
    )


def _check_unique_columns(frame: pd.DataFrame, when: str) -> None:
    labels = pd.Index(frame.columns)
    duplicated = labels[labels.duplicated()].unique()
    if len(duplicated):
        names = ", ".join(f"'{name}'" for name in duplicated)
        raise DataError(f"duplicate column names {when}: {names}")


def _rename(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    """Rename user columns to canonical names; refuse ambiguous mappings."""
    _check_unique_columns(frame, "in the input")
    if not columns:
        return frame
    present = list(frame.columns)
    targets: dict[str, str] = {}
    for canonical, user in columns.items():
        if canonical not in CANONICAL_COLUMNS:
            raise DataError(
                f"columns= maps unknown name '{canonical}'; canonical names are "
                + ", ".join(CANONICAL_COLUMNS)
            )
        if user not in present:
            raise DataError(
                f"columns= maps {canonical} to '{user}', which is not a column; columns "
                f"present: {', '.join(map(str, present))}"
            )
        if user in targets:
            raise DataError(f"columns= maps both {targets[user]} and {canonical} to '{user}'")
        if user != canonical and canonical in present:
            raise DataError(
                f"columns= maps {canonical} to '{user}' but a column '{canonical}' exists "
                f"too; drop or rename one of them"
            )
        targets[user] = canonical
    renamed = frame.rename(columns=targets)
    _check_unique_columns(renamed, "after renaming")
    return renamed


def _require(frame: pd.DataFrame, required: Sequence[str]) -> None:
    for column in required:
        if column not in frame.columns:
            _raise_missing_column(frame, column)


def _raise_missing_column(frame: pd.DataFrame, column: str) -> None:
    present = ", ".join(map(str, frame.columns)) or "(none)"
    raise DataError(
        f"missing required column '{column}'; columns present: {present} "
        f"(map yours with columns={{'{column}': '<your column>'}})"
    )


# --------------------------------------------------------------------------------------------
# Converting and checking columns
# --------------------------------------------------------------------------------------------


def _to_float(frame: pd.DataFrame, column: str, allow_suffix: bool = True) -> np.ndarray:
    """Column as a float64 array (NaN where missing); DataError naming non-numeric rows."""
    series = frame[column]
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(f"column '{column}': booleans are not numbers")
    if pd.api.types.is_numeric_dtype(dtype):
        # Cast before any arithmetic: int64 products overflow silently.
        return np.array(series.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
    values = np.empty(len(series), dtype=np.float64)
    bad: list[int] = []
    for position, cell in enumerate(series.tolist()):
        try:
            values[position] = _parse(cell, allow_suffix)
        except DataError:
            bad.append(position)
    if bad:
        example = series.iloc[bad[0]]
        hint = _HOW_TO_WRITE if allow_suffix else "write plain numbers like 2.75"
        raise _column_error(column, "not a number", bad, f"e.g. {example!r}; {hint}")
    return values


def _check_finite(column: str, values: np.ndarray, missing_hint: str = "") -> None:
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        raise _column_error(column, "missing value (NaN)", missing, missing_hint)
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise _column_error(column, "infinite value", infinite, "too large for float64?")


def _check_positive(column: str, values: np.ndarray) -> None:
    bad = np.flatnonzero(values <= 0)
    if bad.size:
        raise _column_error(column, "value <= 0", bad, f"e.g. {values[bad[0]]:g}; must be > 0")


def _checked(column: str, values: np.ndarray, missing_hint: str = "") -> np.ndarray:
    _check_finite(column, values, missing_hint)
    _check_positive(column, values)
    return values


def _tokens(frame: pd.DataFrame, N: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return D (filled as C / (6 N) where D is missing) and the user's C, if any."""
    given_C = None
    if "C" in frame.columns:
        given_C = _to_float(frame, "C")
        # C may be blank where D is given; where it is given it must be usable.
        usable = np.where(np.isnan(given_C), 1.0, given_C)
        _check_finite("C", usable)
        _check_positive("C", usable)
    if "D" not in frame.columns:
        _check_finite("C", given_C, "there is no D column, so every row needs C")
        return _checked("D", given_C / (6.0 * N)), given_C
    D = _to_float(frame, "D")
    if given_C is not None:
        fill = np.isnan(D) & ~np.isnan(given_C)
        D[fill] = given_C[fill] / (6.0 * N[fill])
    return _checked("D", D, "and no C to derive D = C/(6N) from"), given_C


def _unique_tokens(frame: pd.DataFrame, D: np.ndarray) -> np.ndarray:
    if "U" not in frame.columns:
        return D.copy()
    return _checked("U", _to_float(frame, "U"), "leave the U column out for one-epoch runs")


def _family_labels(frame: pd.DataFrame) -> pd.Series | None:
    if "family" not in frame.columns:
        return None
    series = frame["family"]
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise _column_error("family", "missing value", missing)
    return series.astype(str)


def _check_family_sizes(labels: pd.Series, min_runs: int) -> None:
    positions = pd.Series(np.arange(len(labels)), index=labels.to_numpy())
    small = []
    for family, rows in positions.groupby(level=0, sort=False):
        if len(rows) < min_runs:
            small.append(f"'{family}' has {len(rows)} ({_rows_text(rows.to_numpy())})")
    if small:
        raise DataError(
            f"column 'family': every family needs at least {min_runs} runs for this "
            f"hierarchy; {'; '.join(small)}"
        )


def _warn_duplicates(frame: pd.DataFrame) -> None:
    duplicated = frame.duplicated(subset=["N", "D", "U", "family", "loss"], keep=False)
    rows = np.flatnonzero(duplicated.to_numpy())
    if rows.size:
        warnings.warn(
            f"duplicate runs (same N, D, U, family and loss) in {_rows_text(rows)}; "
            "each copy counts as an independent observation",
            DataWarning,
            stacklevel=3,
        )


def _warn_metadata(frame: pd.DataFrame) -> None:
    for column in METADATA_COLUMNS:
        if column not in frame.columns:
            continue
        values = frame[column].astype(str)
        if values.nunique() <= 1:
            continue
        per_family = values.groupby(frame["family"], sort=False).unique()
        listed = "; ".join(
            f"{family}: {', '.join(map(str, vals))}" for family, vals in per_family.items()
        )
        warnings.warn(
            f"column '{column}' differs between rows ({listed}); losses of different "
            "families are only comparable on the same validation set with the same tokenizer",
            DataWarning,
            stacklevel=3,
        )


def _canonical_frame(
    original: pd.DataFrame,
    arrays: Mapping[str, Any],
    given_C: np.ndarray | None,
    canonical: Sequence[str],
) -> pd.DataFrame:
    """Canonical columns first, then the user's other columns, on the user's index."""
    out = pd.DataFrame({name: arrays[name] for name in canonical}, index=original.index)
    used = {*canonical, "C"}
    extras = [c for c in original.columns if c not in used]
    out = pd.concat([out, original[extras]], axis=1) if extras else out
    if given_C is not None and C_INPUT_COLUMN not in out.columns:
        out[C_INPUT_COLUMN] = given_C
    return out


# --------------------------------------------------------------------------------------------
# ScalingData
# --------------------------------------------------------------------------------------------


def _float_vector(name: str, value: Any) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise DataError(f"ScalingData.{name} must be numeric") from None
    if array.ndim != 1:
        raise DataError(f"ScalingData.{name} must be 1-D, got shape {array.shape}")
    _checked(name, array)
    return array


def _index_vector(value: Any, n_rows: int, n_families: int) -> np.ndarray:
    array = np.array(value, copy=True)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise DataError(
            f"ScalingData.family_idx must be a 1-D integer array, got {array.dtype} "
            f"with shape {array.shape}"
        )
    if array.shape[0] != n_rows:
        raise DataError(f"ScalingData.family_idx has {array.shape[0]} rows, expected {n_rows}")
    bad = np.flatnonzero((array < 0) | (array >= n_families))
    if bad.size:
        raise _column_error("family_idx", f"must lie in 0..{n_families - 1}", bad)
    return array.astype(np.int64)


@dataclass(frozen=True, eq=False)
class ScalingData:
    """A validated table of training runs (read-only arrays plus the canonical frame).

    Build it with :func:`validate`; the constructor checks shapes and values again.

    Parameters
    ----------
    N : numpy.ndarray
        Parameters per run, float64, > 0.
    D : numpy.ndarray
        Training tokens seen, float64, > 0.
    U : numpy.ndarray or None
        Unique tokens available, float64, > 0; ``None`` means ``D`` (one epoch).
    loss : numpy.ndarray
        Final loss, nats/token, float64, > 0.
    family_idx : numpy.ndarray
        Integer family index per run, in ``0 .. len(families) - 1``.
    families : tuple of str
        Family names, in order of first appearance.
    frame : pandas.DataFrame or None
        Canonical table (columns N, D, U, loss, family, C, then the user's extra columns);
        built from the arrays when ``None``.
    """

    N: np.ndarray
    D: np.ndarray
    U: np.ndarray | None
    loss: np.ndarray
    family_idx: np.ndarray
    families: tuple[str, ...]
    frame: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        arrays = {"N": self.N, "D": self.D, "U": self.D if self.U is None else self.U}
        arrays["loss"] = self.loss
        checked = {name: _float_vector(name, value) for name, value in arrays.items()}
        n_rows = checked["N"].shape[0]
        if n_rows == 0:
            raise DataError("ScalingData needs at least one run")
        for name, array in checked.items():
            if array.shape[0] != n_rows:
                raise DataError(f"ScalingData.{name} has {array.shape[0]} rows, expected {n_rows}")
        families = self._checked_families()
        family_idx = _index_vector(self.family_idx, n_rows, len(families))
        for name, array in {**checked, "family_idx": family_idx}.items():
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "families", families)
        object.__setattr__(self, "frame", self._checked_frame(n_rows))

    def _checked_families(self) -> tuple[str, ...]:
        families = tuple(self.families)
        if not families or not all(isinstance(f, str) for f in families):
            raise DataError("ScalingData.families must be a non-empty tuple of str")
        if len(set(families)) != len(families):
            raise DataError(f"ScalingData.families has repeated names: {families}")
        return families

    def _checked_frame(self, n_rows: int) -> pd.DataFrame:
        if self.frame is None:
            labels = np.asarray(self.families, dtype=object)[self.family_idx]
            arrays = {
                "N": self.N,
                "D": self.D,
                "U": self.U,
                "loss": self.loss,
                "family": labels,
                "C": self.C,
            }
            return _canonical_frame(
                pd.DataFrame(index=range(n_rows)), arrays, None, CANONICAL_COLUMNS
            )
        if not isinstance(self.frame, pd.DataFrame) or len(self.frame) != n_rows:
            raise DataError(f"ScalingData.frame must be a DataFrame with {n_rows} rows")
        missing = [c for c in CANONICAL_COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataError(f"ScalingData.frame lacks columns {', '.join(missing)}")
        return self.frame

    @property
    def n_rows(self) -> int:
        """Number of runs."""
        return int(self.N.shape[0])

    @property
    def n_families(self) -> int:
        """Number of families."""
        return len(self.families)

    @property
    def C(self) -> np.ndarray:
        """Training compute ``C = 6 N D`` in FLOPs (float64)."""
        return 6.0 * self.N * self.D

    @property
    def log_N0(self) -> float:
        """Natural log of the geometric mean of ``N``: the data's reference scale."""
        return float(np.mean(np.log(self.N)))

    @property
    def log_D0(self) -> float:
        """Natural log of the geometric mean of ``D``: the data's reference scale."""
        return float(np.mean(np.log(self.D)))

    @property
    def compute_range(self) -> tuple[float, float]:
        """Smallest and largest ``C = 6 N D`` in the data, FLOPs."""
        C = self.C
        return float(C.min()), float(C.max())

    def to_frame(self) -> pd.DataFrame:
        """Return a copy of the canonical table (N, D, U, loss, family, C, extra columns)."""
        return self.frame.copy()

    def take(self, rows: Sequence[int] | np.ndarray) -> ScalingData:
        """Select runs by position or boolean mask, keeping every family and its index.

        Families with no selected run stay in :attr:`families`, so indices keep their
        meaning across train/test splits.
        """
        rows = np.asarray(rows)
        positions = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        return ScalingData(
            N=self.N[positions],
            D=self.D[positions],
            U=self.U[positions],
            loss=self.loss[positions],
            family_idx=self.family_idx[positions],
            families=self.families,
            frame=self.frame.iloc[positions],
        )


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _prepared(data: Any, columns: Mapping[str, str] | None) -> pd.DataFrame:
    frame = _rename(_as_frame(data), columns)
    if len(frame) == 0:
        present = ", ".join(map(str, frame.columns)) or "(none)"
        raise DataError(f"the table has no rows (columns present: {present})")
    return frame


def _require_tokens(frame: pd.DataFrame) -> None:
    if "D" not in frame.columns and "C" not in frame.columns:
        present = ", ".join(map(str, frame.columns))
        raise DataError(
            f"missing required column 'D' (or 'C' to derive D = C/(6N)); columns present: "
            f"{present} (map yours with columns={{'D': '<your column>'}})"
        )


def validate(
    df: pd.DataFrame | str | os.PathLike[str] | Mapping[str, Any],
    columns: Mapping[str, str] | None = None,
    min_runs_per_family: int = 1,
    check_duplicates: bool = True,
) -> ScalingData:
    """Check a table of training runs and return it as :class:`ScalingData`.

    Parameters
    ----------
    df : pandas.DataFrame, str, os.PathLike or Mapping
        The runs, or a path to a CSV file of them (UTF-8). Columns: ``N`` (parameters),
        ``loss`` (nats/token), ``D`` (training tokens seen; optional when ``C`` is given),
        optional ``U`` (unique tokens, default ``D``), ``family`` (default ``"all"``) and
        ``C`` (FLOPs, used as ``D = C / (6 N)`` where ``D`` is missing). Other columns are
        kept and ignored. ``N``, ``D``, ``U`` and ``C`` accept strings like ``"2.8B"``.
    columns : Mapping[str, str], optional
        Canonical name -> your column name, e.g. ``{"N": "params", "D": "tokens"}``.
    min_runs_per_family : int, default 1
        Smallest number of runs a family may have (the hierarchy may need more).
    check_duplicates : bool, default True
        Warn (:class:`DataWarning`) about repeated runs (same N, D, U, family and loss).

    Returns
    -------
    ScalingData
        Float64 arrays, family index (families in order of first appearance) and the
        canonical frame. Its ``C`` column is ``6 N D``; a user-supplied ``C`` is kept as
        ``C_input``.

    Raises
    ------
    DataError
        With a one-line message naming the column and the 0-based row positions: missing
        column, unreadable file, empty table, duplicate column names, non-numeric values,
        NaN or infinite values, values <= 0, families with too few runs.

    Warns
    -----
    DataWarning
        Duplicate runs; ``valset`` or ``tokenizer`` columns that differ between rows (losses
        are comparable only on the same validation set with the same tokenizer).
    """
    if min_runs_per_family < 1:
        raise ValueError(f"min_runs_per_family must be >= 1, got {min_runs_per_family}")
    frame = _prepared(df, columns)
    _require(frame, ("N", "loss"))
    _require_tokens(frame)
    N = _checked("N", _to_float(frame, "N"))
    D, given_C = _tokens(frame, N)
    U = _unique_tokens(frame, D)
    loss = _checked("loss", _to_float(frame, "loss", allow_suffix=False))
    labels = _family_labels(frame)
    if labels is None:
        labels = pd.Series([DEFAULT_FAMILY] * len(frame), index=frame.index, dtype=str)
    _check_family_sizes(labels, min_runs_per_family)
    codes, uniques = pd.factorize(labels, sort=False)
    arrays = {"N": N, "D": D, "U": U, "loss": loss, "family": labels.to_numpy(), "C": 6.0 * N * D}
    canonical = _canonical_frame(frame, arrays, given_C, CANONICAL_COLUMNS)
    canonical["family"] = canonical["family"].astype(str)
    if check_duplicates:
        _warn_duplicates(canonical)
    _warn_metadata(canonical)
    return ScalingData(
        N=N,
        D=D,
        U=U,
        loss=loss,
        family_idx=codes.astype(np.int64),
        families=tuple(str(f) for f in uniques),
        frame=canonical,
    )


def new_points(
    df: pd.DataFrame | str | os.PathLike[str] | Mapping[str, Any],
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check the inputs of a prediction (no loss needed).

    Parameters
    ----------
    df : pandas.DataFrame, str, os.PathLike or Mapping
        Points to predict: ``N`` and ``D`` (or ``C``, then ``D = C / (6 N)``) required;
        ``U`` optional (default ``D``); ``family`` optional. A mapping of scalars, e.g.
        ``{"N": 7e10, "D": "1.4T"}``, is one point.
    columns : Mapping[str, str], optional
        Canonical name -> your column name.

    Returns
    -------
    pandas.DataFrame
        Float64 columns ``N``, ``D``, ``U``, ``C`` (= 6 N D), then ``family`` (str) when
        given, then the other input columns; the input's index. Without a ``family`` column
        the fit's family is used if it has exactly one.

    Raises
    ------
    DataError
        As in :func:`validate`.
    """
    frame = _prepared(df, columns)
    _require(frame, ("N",))
    _require_tokens(frame)
    N = _checked("N", _to_float(frame, "N"))
    D, given_C = _tokens(frame, N)
    U = _unique_tokens(frame, D)
    arrays: dict[str, Any] = {"N": N, "D": D, "U": U, "C": 6.0 * N * D}
    canonical = ["N", "D", "U", "C"]
    labels = _family_labels(frame)
    if labels is not None:
        arrays["family"] = labels.to_numpy()
        canonical.append("family")
    out = _canonical_frame(frame, arrays, given_C, canonical)
    if labels is not None:
        out["family"] = out["family"].astype(str)
    return out


def extrapolation_decades(N: Any, D: Any, compute_range: tuple[float, float]) -> np.ndarray:
    """Decades of compute (C = 6ND) outside ``compute_range``; 0 inside it."""
    logc = np.log10(6.0 * np.asarray(N, dtype=np.float64) * np.asarray(D, dtype=np.float64))
    lo, hi = np.log10(compute_range)
    return np.maximum(0.0, np.maximum(logc - hi, lo - logc))
