"""Tests of the bundled datasets: row counts, provenance, and that each passes validate()."""

from __future__ import annotations

import re
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale import datasets
from bayescale.data import DataError, DataWarning, validate

ROWS = {
    "chinchilla": 245,
    "datablations": 182,
    "datablations_all": 296,
    "datablations_curves": 48,
    "gadre": 104,  # no row lacks loss_c4_val, so none is dropped
    "gemstones": 199,  # the cooldown runs; more in tests/test_ladders.py
}
# read from shared/data, not bundled: tested in tests/test_ladders.py
SHARED = ("xlstm", "llama3_isoflops", "steplaw")
ATTRS = ("name", "citation", "license", "source", "notes")
CITATIONS_MD = Path(datasets.__file__).with_name("CITATIONS.md")


def quiet_validate(frame: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return validate(frame)


def test_names_lists_every_dataset_with_one_line():
    listed = datasets.names()
    assert list(listed.index) == [*ROWS, *SHARED]
    for description in listed:
        assert description and "\n" not in description


@pytest.mark.parametrize(("name", "rows"), ROWS.items())
def test_load_row_count_attrs_and_validate(name, rows):
    frame = datasets.load(name)
    assert len(frame) == rows
    assert frame.index.equals(pd.RangeIndex(rows))
    assert list(frame.columns[:6]) == ["N", "D", "U", "loss", "family", "C"]
    for column in ("N", "D", "U", "loss", "C"):
        assert frame[column].dtype == np.float64
    for key in ATTRS:
        assert isinstance(frame.attrs[key], str) and frame.attrs[key]
    assert frame.attrs["name"] == name
    assert re.search(r"arXiv:\d{4}\.\d{5}", frame.attrs["citation"])
    data = quiet_validate(frame)
    assert data.n_rows == rows
    np.testing.assert_allclose(frame["C"], 6 * frame["N"] * frame["D"], rtol=1e-12)


@pytest.mark.parametrize("name", ROWS)
def test_citation_function_and_markdown_agree(name):
    text = datasets.citation(name)
    assert text == datasets.load(name).attrs["citation"]
    arxiv_ids = re.findall(r"arXiv:\d{4}\.\d{5}", text)
    markdown = CITATIONS_MD.read_text()
    assert f"## {name}" in markdown or f"and {name} (" in markdown
    for arxiv_id in arxiv_ids:
        assert arxiv_id in markdown


def test_describe():
    table = datasets.describe()
    assert list(table.columns) == [
        "name", "rows", "families", "description", "citation", "license", "bundled", "available"
    ]  # fmt: skip
    bundled = table[table["bundled"]]
    assert dict(zip(bundled["name"], bundled["rows"], strict=True)) == ROWS
    assert list(table.loc[~table["bundled"], "name"]) == list(SHARED)
    assert table.set_index("name").loc["gadre", "families"] == "c4_original, rpj, rw_original"


def test_unknown_name_lists_valid_names():
    with pytest.raises(DataError, match="unknown dataset 'pythia'") as info:
        datasets.load("pythia")
    for name in ROWS:
        assert name in str(info.value)
    with pytest.raises(DataError):
        datasets.citation("nope")


def test_unknown_option():
    with pytest.raises(DataError, match="epoch_subset"):
        datasets.load("chinchilla", curves=True)
    with pytest.raises(DataError, match="none"):
        datasets.load("gadre", epoch_subset=True)


def test_load_returns_a_fresh_frame():
    first = datasets.load("datablations")
    first.loc[0, "loss"] = -1.0
    assert datasets.load("datablations").loc[0, "loss"] > 0


# ---------------------------------------------------------------------------- chinchilla


def test_chinchilla_columns_and_D_from_C():
    frame = datasets.load("chinchilla")
    assert set(frame["family"]) == {"massivetext"}
    np.testing.assert_allclose(frame["D"], frame["C"] / (6 * frame["N"]), rtol=1e-12)
    np.testing.assert_array_equal(frame["U"], frame["D"])
    assert frame["N"].between(5e7, 1.7e10).all()
    assert frame["epoch_excluded"].dtype == bool and frame["epoch_excluded"].sum() == 5


def test_chinchilla_epoch_subset_drops_the_five_highest_losses():
    full = datasets.load("chinchilla")
    subset = datasets.load("chinchilla", epoch_subset=True)
    assert len(subset) == 240
    dropped = full[full["epoch_excluded"]]
    assert subset["loss"].max() < dropped["loss"].min()
    assert dropped["loss"].min() == full["loss"].nlargest(5).min()
    assert quiet_validate(subset).n_rows == 240


# ---------------------------------------------------------------------------- datablations


def test_datablations_main_fit():
    frame = datasets.load("datablations")
    assert set(frame["family"]) == {"c4"}
    assert frame["run_name"].is_unique
    np.testing.assert_allclose(frame["epochs"], frame["D"] / frame["U"], rtol=1e-4)
    assert (frame["D"] >= frame["U"]).all()
    assert frame["epochs"].max() == 9000


def test_datablations_all_contains_main_fit():
    main = datasets.load("datablations")
    every = datasets.load("datablations_all")
    assert every["in_main_fit_182"].dtype == bool
    assert every["in_main_fit_182"].sum() == 182
    flagged = every.loc[every["in_main_fit_182"], "run_name"]
    assert set(flagged) == set(main["run_name"])
    joined = main.merge(every, on="run_name", suffixes=("", "_all"))
    np.testing.assert_array_equal(joined["loss"], joined["loss_all"])
    np.testing.assert_allclose(joined["N"], joined["N_all"], rtol=2e-6)
    seeds = every["seed"].dropna()
    assert len(seeds) == 64 and set(seeds) == {1, 2, 3, 4}


# ---------------------------------------------------------------------------- curves


def test_curves_final_runs():
    frame = datasets.load("datablations_curves")
    assert frame["final"].all() and frame["run"].is_unique
    assert frame.groupby("family")["run"].nunique().to_dict() == {"c4": 24, "oscar": 24}
    assert sorted(frame["epochs"].unique()) == [1, 2, 3, 4, 5, 7, 14, 44]
    assert sorted(frame["N"].unique()) == [2.8e9, 4.2e9, 8.7e9]
    planned = frame["N"].map({2.8e9: 55e9, 4.2e9: 84e9, 8.7e9: 178e9})
    # Every run ends near its size's token budget; two stop a little short (see notes).
    assert ((frame["D"] / planned).between(0.995, 1.0)).all()
    np.testing.assert_allclose(frame["U"] * frame["epochs"], planned, rtol=1e-9)


def test_curves_true_warns_and_returns_every_checkpoint():
    with pytest.warns(DataWarning, match="not independent"):
        frame = datasets.load("datablations_curves", curves=True)
    assert len(frame) == 9261
    assert frame["run"].nunique() == 48 and frame["final"].sum() == 48
    last = frame.groupby("run")["D"].transform("max")
    assert (frame["final"] == frame["D"].eq(last)).all()
    assert quiet_validate(frame).n_families == 2


def test_curves_flag_the_copied_oscar_curves():
    frame = datasets.load("datablations_curves")
    copies = frame.loc[frame["identical_curve"], "run"]
    assert set(copies) == {"oscar-2.8B-3ep", "oscar-2.8B-4ep"}


def test_curves_pooling_warns_about_validation_sets():
    with pytest.warns(DataWarning, match="valset"):
        validate(datasets.load("datablations_curves"))


# ---------------------------------------------------------------------------- gadre


def test_gadre_families_and_metadata():
    frame = datasets.load("gadre")
    assert frame["family"].value_counts().to_dict() == {
        "rpj": 35,
        "rw_original": 35,
        "c4_original": 34,
    }
    assert set(frame["valset"]) == {"c4_val"} and frame["tokenizer"].nunique() == 1
    np.testing.assert_allclose(frame["D"] / frame["N"], frame["tokens_per_param_M"], rtol=1e-9)
    np.testing.assert_array_equal(frame["U"], frame["D"])
    assert (frame["loss_lo95"] <= frame["loss"]).all() and (
        frame["loss"] <= frame["loss_hi95"]
    ).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validate(frame).n_families == 3


# ---------------------------------------------------------------------------- packaging


def test_bundled_files_exist_as_package_resources():
    package = resources.files("bayescale.datasets")
    for name in (
        "chinchilla.csv",
        "datablations.csv",
        "datablations_all.csv",
        "datablations_curves.csv.gz",
        "gadre.csv",
        "gemstones.csv.gz",
        "CITATIONS.md",
    ):
        assert package.joinpath(name).is_file(), name
