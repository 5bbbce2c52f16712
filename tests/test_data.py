"""Tests of the data contract: bayescale.data.validate, new_points, parse_quantity."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.data import (
    DataError,
    DataWarning,
    ScalingData,
    new_points,
    parse_quantity,
    validate,
)

REPO = Path(__file__).resolve().parents[1]


def runs(n: int = 6, **overrides) -> pd.DataFrame:
    """A small valid table of runs; columns may be overridden or added."""
    columns = {
        "N": np.linspace(1e8, 6e8, n),
        "D": np.linspace(2e9, 7e9, n),
        "loss": np.linspace(3.5, 3.0, n),
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        validate(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------- parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.8B", 2.8e9),
        ("70M", 70e6),
        ("1.4T", 1.4e12),
        ("350k", 350e3),
        ("350K", 350e3),
        ("2g", 2e9),
        ("1e9", 1e9),
        ("1.2e9", 1.2e9),
        ("6,000", 6000.0),
        ("1,234,567.5", 1234567.5),
        (" 2.8 b ", 2.8e9),
        (".5M", 5e5),
        (7, 7.0),
        (np.int64(7), 7.0),
        (2.5, 2.5),
    ],
)
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


def test_parse_quantity_is_exact_for_suffixes():
    # 2.8 * 1e9 in binary floats is 2799999999.9999995; the parser must not do that.
    assert parse_quantity("2.8B") == 2_800_000_000.0
    assert parse_quantity("8.7B") == 8_700_000_000.0


@pytest.mark.parametrize("bad", ["abc", "2.8X", "2,8B", "1B5", "B", "--1", True, [1]])
def test_parse_quantity_rejects(bad):
    with pytest.raises(DataError, match="cannot"):
        parse_quantity(bad)


def test_parse_quantity_missing_and_overflow():
    assert np.isnan(parse_quantity(None))
    assert np.isnan(parse_quantity(""))
    assert parse_quantity("1e400") == np.inf


# ---------------------------------------------------------------------------- valid inputs


def test_validate_basic_arrays_and_frame():
    df = runs(extra=list("abcdef"))
    data = validate(df)
    assert isinstance(data, ScalingData)
    assert data.n_rows == 6 and data.n_families == 1
    assert data.families == ("all",)
    for name in ("N", "D", "U", "loss"):
        array = getattr(data, name)
        assert array.dtype == np.float64 and array.shape == (6,)
        assert not array.flags.writeable
    assert data.family_idx.dtype.kind == "i"
    np.testing.assert_array_equal(data.U, data.D)
    np.testing.assert_allclose(data.C, 6 * df["N"] * df["D"], rtol=1e-15)
    frame = data.to_frame()
    assert list(frame.columns) == ["N", "D", "U", "loss", "family", "C", "extra"]
    assert frame["extra"].tolist() == list("abcdef")
    frame.loc[0, "N"] = -1.0  # a copy: the data stay as they were
    assert data.N[0] > 0


def test_reference_scale_and_compute_range():
    df = runs(N=[1e8, 1e10], D=[1e9, 1e11], loss=[3.0, 2.0])
    data = validate(df)
    assert data.log_N0 == pytest.approx(np.log(1e9))
    assert data.log_D0 == pytest.approx(np.log(1e10))
    assert data.compute_range == pytest.approx((6e17, 6e21))


def test_int64_columns_do_not_overflow():
    N = np.array([70_000_000_000, 400_000_000], dtype=np.int64)
    D = np.array([1_400_000_000_000, 8_000_000_000], dtype=np.int64)
    assert 6 * float(N[0]) * float(D[0]) > 2**63  # int64 arithmetic would wrap
    data = validate(pd.DataFrame({"N": N, "D": D, "loss": [2.0, 3.0]}))
    expected = np.array([6.0 * float(n) * float(d) for n, d in zip(N, D, strict=True)])
    np.testing.assert_allclose(data.C, expected, rtol=1e-12)
    np.testing.assert_allclose(data.frame["C"], expected, rtol=1e-12)
    assert (data.C > 0).all()


def test_python_big_ints_in_object_column():
    big = 6 * 70_000_000_000 * 1_400_000_000_000  # beyond int64
    df = pd.DataFrame({"N": [70_000_000_000], "C": pd.Series([big], dtype=object), "loss": [2.0]})
    data = validate(df)
    assert data.D[0] == pytest.approx(1.4e12, rel=1e-12)


def test_quantity_strings_in_columns():
    df = pd.DataFrame(
        {"N": ["2.8B", "70M"], "D": ["1.4T", "6,000"], "U": ["350k", "1e9"], "loss": [2.0, 3.0]}
    )
    data = validate(df)
    np.testing.assert_array_equal(data.N, [2.8e9, 70e6])
    np.testing.assert_array_equal(data.D, [1.4e12, 6000.0])
    np.testing.assert_array_equal(data.U, [350e3, 1e9])


def test_columns_mapping_renames():
    df = pd.DataFrame(
        {"params": [1e8, 2e8], "tokens": [1e9, 2e9], "val": [3.0, 2.9], "data": ["x", "y"]}
    )
    data = validate(df, columns={"N": "params", "D": "tokens", "loss": "val", "family": "data"})
    assert data.families == ("x", "y")
    np.testing.assert_array_equal(data.N, [1e8, 2e8])


def test_D_from_C_where_missing():
    df = pd.DataFrame(
        {
            "N": [1e8, 2e8, 4e8],
            "D": [np.nan, 5e9, np.nan],
            "C": [6e17, 1e30, 2.4e19],
            "loss": [3.0, 2.9, 2.8],
        }
    )
    data = validate(df)
    np.testing.assert_allclose(data.D, [1e9, 5e9, 1e10], rtol=1e-15)
    # The canonical C is always 6ND; the user's C is kept for reference.
    np.testing.assert_allclose(data.frame["C"], [6e17, 6e18, 2.4e19], rtol=1e-15)
    np.testing.assert_array_equal(data.frame["C_input"], df["C"])


def test_D_from_C_without_D_column():
    data = validate(pd.DataFrame({"N": [1e8, 2e8], "C": [6e17, 2.4e18], "loss": [3.0, 2.9]}))
    np.testing.assert_allclose(data.D, [1e9, 2e9], rtol=1e-15)
    np.testing.assert_array_equal(data.U, data.D)


def test_U_larger_than_D_is_accepted():
    data = validate(runs(n=2, U=[1e12, 1e12]))
    np.testing.assert_array_equal(data.U, [1e12, 1e12])
    assert (data.U > data.D).all()


def test_families_in_order_of_first_appearance():
    df = runs(family=["b", "a", "b", 3, "a", "b"])
    data = validate(df)
    assert data.families == ("b", "a", "3")
    np.testing.assert_array_equal(data.family_idx, [0, 1, 0, 2, 1, 0])
    assert data.frame["family"].tolist() == ["b", "a", "b", "3", "a", "b"]


def test_min_runs_per_family():
    df = runs(family=["a", "a", "a", "b", "c", "c"])
    assert validate(df, min_runs_per_family=1).n_families == 3
    message = error_of(df, min_runs_per_family=2)
    assert "family" in message and "'b'" in message and "row 3" in message
    assert "'a'" not in message and "'c'" not in message
    message = error_of(df, min_runs_per_family=3)
    assert "'b' has 1 (row 3)" in message and "'c' has 2 (rows 4, 5)" in message


def test_duplicate_rows_warn_and_can_be_silenced():
    df = runs(n=4)
    df = pd.concat([df, df.iloc[[1]]], ignore_index=True)
    with pytest.warns(DataWarning, match=r"rows 1, 4"):
        data = validate(df)
    assert data.n_rows == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(df, check_duplicates=False)


def test_same_point_other_family_is_not_duplicate():
    df = pd.concat([runs(n=2, family="a"), runs(n=2, family="b")], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validate(df).n_families == 2


@pytest.mark.parametrize("column", ["valset", "tokenizer"])
def test_metadata_that_differs_between_families_warns(column):
    df = runs(family=["a"] * 3 + ["b"] * 3, **{column: ["x"] * 3 + ["y"] * 3})
    with pytest.warns(DataWarning, match=column) as record:
        validate(df)
    assert "comparable" in str(record[0].message)


def test_metadata_that_agrees_does_not_warn():
    df = runs(family=["a"] * 3 + ["b"] * 3, valset="c4_val", tokenizer="gpt2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(df)


def test_csv_path(tmp_path):
    path = tmp_path / "runs.csv"
    runs().to_csv(path, index=False)
    assert validate(path).n_rows == 6
    assert validate(str(path)).n_rows == 6


def test_input_index_is_kept():
    df = runs(n=3).set_axis(["r1", "r2", "r3"])
    assert validate(df).frame.index.tolist() == ["r1", "r2", "r3"]


def test_input_is_not_modified():
    df = runs(N=["1B"] * 6)
    before = df.copy()
    validate(df)
    pd.testing.assert_frame_equal(df, before)


# ---------------------------------------------------------------------------- errors


def test_nan_in_loss_names_column_and_row():
    df = runs()
    df.loc[3, "loss"] = np.nan
    message = error_of(df)
    assert "'loss'" in message and "row 3" in message


@pytest.mark.parametrize("column", ["N", "D", "U", "loss"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite(column, value):
    df = runs(U=np.linspace(2e9, 7e9, 6))
    df[column] = df[column].astype(float)
    df.loc[[2, 4], column] = value
    message = error_of(df)
    assert f"'{column}'" in message and "rows 2, 4" in message


@pytest.mark.parametrize("column", ["N", "D", "U", "loss"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive(column, value):
    df = runs(U=np.linspace(2e9, 7e9, 6))
    df.loc[5, column] = value
    message = error_of(df)
    assert f"'{column}'" in message and "row 5" in message and "> 0" in message


def test_non_positive_C():
    df = pd.DataFrame({"N": [1e8, 1e8], "C": [6e17, -1.0], "loss": [3.0, 2.9]})
    message = error_of(df)
    assert "'C'" in message and "row 1" in message


def test_overflowing_string_is_caught_as_infinite():
    message = error_of(runs(n=3, N=["1e8", "1e400", "2e8"]))
    assert "'N'" in message and "row 1" in message and "infinite" in message


def test_non_numeric_names_column_rows_and_example():
    message = error_of(runs(N=["1e8", "big", "2e8", "3e8", "x", "4e8"]))
    assert "'N'" in message and "rows 1, 4" in message and "'big'" in message


def test_suffix_not_accepted_for_loss():
    message = error_of(runs(n=2, loss=["2.5", "3k"]))
    assert "'loss'" in message and "row 1" in message


def test_boolean_column_is_not_numeric():
    assert "'loss'" in error_of(runs(n=2, loss=[True, False]))


def test_many_bad_rows_are_truncated():
    df = runs(n=25)
    df["loss"] = np.nan
    message = error_of(df)
    assert "rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... (25 rows in all)" in message
    assert "10," not in message


@pytest.mark.parametrize("column", ["N", "loss"])
def test_missing_required_column_lists_present_ones(column):
    df = runs(extra=1).drop(columns=column)
    message = error_of(df)
    assert f"'{column}'" in message and "columns present" in message and "extra" in message


def test_missing_D_and_C():
    message = error_of(runs().drop(columns="D"))
    assert "'D'" in message and "'C'" in message and "columns present: N, loss" in message


def test_missing_D_value_without_C():
    df = runs()
    df.loc[2, "D"] = np.nan
    message = error_of(df)
    assert "'D'" in message and "row 2" in message and "C" in message


def test_missing_D_and_C_value_in_same_row():
    df = pd.DataFrame(
        {"N": [1e8, 1e8], "D": [1e9, np.nan], "C": [np.nan, np.nan], "loss": [3.0, 2.9]}
    )
    message = error_of(df)
    assert "'D'" in message and "row 1" in message


def test_C_column_with_gap_and_no_D():
    df = pd.DataFrame({"N": [1e8, 1e8], "C": [6e17, np.nan], "loss": [3.0, 2.9]})
    message = error_of(df)
    assert "'C'" in message and "row 1" in message


def test_missing_family_value():
    df = runs(family=["a", None, "a", "a", "b", "b"])
    message = error_of(df)
    assert "'family'" in message and "row 1" in message


def test_empty_table():
    assert "no rows" in error_of(runs().iloc[:0])
    assert "no rows" in error_of(pd.DataFrame())


def test_not_a_table():
    assert "DataFrame" in error_of([1, 2, 3])
    assert "DataFrame" in error_of(None)


def test_duplicate_column_names_in_input():
    df = pd.DataFrame([[1e8, 1e9, 3.0, 1.0]], columns=["N", "D", "loss", "loss"])
    message = error_of(df)
    assert "duplicate column" in message and "'loss'" in message


def test_mapped_and_canonical_column_both_present():
    df = runs(params=np.linspace(1e8, 6e8, 6))
    message = error_of(df, columns={"N": "params"})
    assert "'params'" in message and "'N'" in message


def test_two_names_mapped_to_one_column():
    df = runs().rename(columns={"N": "x"})
    message = error_of(df, columns={"N": "x", "D": "x"})
    assert "'x'" in message


def test_mapping_to_absent_column_or_unknown_name():
    assert "'params'" in error_of(runs(), columns={"N": "params"})
    assert "'Q'" in error_of(runs(), columns={"Q": "N"})


def test_min_runs_argument_is_checked():
    with pytest.raises(ValueError, match="min_runs_per_family"):
        validate(runs(), min_runs_per_family=0)


# ---------------------------------------------------------------------------- CSV read errors


def test_missing_file(tmp_path):
    message = error_of(tmp_path / "nope.csv")
    assert "nope.csv" in message and "no such file" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    message = error_of(path)
    assert "empty.csv" in message and "empty" in message


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("N,D,loss\n")
    assert "no rows" in error_of(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"N,D,loss,note\n1e8,1e9,3.0,caf\xe9\xff\n")
    message = error_of(path)
    assert "latin.csv" in message and "UTF-8" in message


def test_parser_error(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("N,D,loss\n1e8,1e9,3.0\n1e8,1e9,3.0,4,5\n")
    message = error_of(path)
    assert "ragged.csv" in message


def test_directory_instead_of_file(tmp_path):
    assert str(tmp_path) in error_of(tmp_path)


# ---------------------------------------------------------------------------- ScalingData


def test_scaling_data_checks_shapes_and_values():
    ok = dict(
        N=[1e8, 2e8], D=[1e9, 2e9], U=None, loss=[3.0, 2.9], family_idx=[0, 0], families=("all",)
    )
    data = ScalingData(**ok)
    np.testing.assert_array_equal(data.U, data.D)
    assert list(data.frame.columns) == ["N", "D", "U", "loss", "family", "C"]
    with pytest.raises(DataError, match="rows"):
        ScalingData(**{**ok, "D": [1e9]})
    with pytest.raises(DataError, match="1-D"):
        ScalingData(**{**ok, "N": [[1e8, 2e8]]})
    with pytest.raises(DataError, match="family_idx"):
        ScalingData(**{**ok, "family_idx": [0, 1]})
    with pytest.raises(DataError, match="family_idx"):
        ScalingData(**{**ok, "family_idx": [0.0, 0.0]})
    with pytest.raises(DataError, match="loss"):
        ScalingData(**{**ok, "loss": [3.0, -1.0]})
    with pytest.raises(DataError, match="families"):
        ScalingData(**{**ok, "families": ("a", "a")})


def test_scaling_data_is_frozen():
    data = validate(runs())
    with pytest.raises(AttributeError):
        data.N = np.ones(6)  # type: ignore[misc]
    with pytest.raises(ValueError):
        data.N[0] = 1.0


def test_take_keeps_families():
    data = validate(runs(family=["a", "a", "b", "b", "c", "c"]))
    part = data.take(data.family_idx != 1)
    assert part.families == ("a", "b", "c")
    np.testing.assert_array_equal(part.family_idx, [0, 0, 2, 2])
    assert part.n_rows == 4 and len(part.frame) == 4


# ---------------------------------------------------------------------------- new_points


def test_new_points_from_scalars_and_strings():
    out = new_points({"N": "70B", "D": "1.4T"})
    assert list(out.columns) == ["N", "D", "U", "C"]
    assert out["C"].iloc[0] == pytest.approx(6 * 70e9 * 1.4e12, rel=1e-15)
    assert out["U"].iloc[0] == out["D"].iloc[0]
    assert (out.dtypes[["N", "D", "U", "C"]] == np.float64).all()


def test_new_points_from_C_with_family_and_extras():
    df = pd.DataFrame(
        {
            "params": [1e9, 2e9],
            "C": [6e19, 2.4e20],
            "family": ["c4", "c4"],
            "label": ["p", "q"],
            "loss": [9.0, 9.0],
        }
    )
    out = new_points(df, columns={"N": "params"})
    np.testing.assert_allclose(out["D"], [1e10, 2e10], rtol=1e-15)
    assert out.columns[:5].tolist() == ["N", "D", "U", "C", "family"]
    assert out["label"].tolist() == ["p", "q"]
    assert "loss" in out.columns  # kept, not validated


def test_new_points_errors():
    with pytest.raises(DataError, match=r"'D'.*columns present"):
        new_points(pd.DataFrame({"N": [1e9]}))
    with pytest.raises(DataError, match=r"'N'.*row 1"):
        new_points(pd.DataFrame({"N": [1e9, -1.0], "D": [1e10, 1e10]}))
    with pytest.raises(DataError, match=r"'U'.*row 0"):
        new_points(pd.DataFrame({"N": [1e9], "D": [1e10], "U": [np.nan]}))


# ---------------------------------------------------------------------------- import hygiene


def test_data_and_datasets_do_not_import_jax():
    code = (
        "import importlib, sys\n"
        "importlib.import_module('bayescale.data')\n"
        "importlib.import_module('bayescale.datasets')\n"
        "heavy = [m for m in ('jax', 'numpyro', 'arviz') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert result.returncode == 0, result.stderr
