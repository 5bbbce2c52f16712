"""Tests of the ladders added from shared/data: gemstones (bundled), xlstm, llama3_isoflops and
steplaw (read from the shared data folder), and the refused folders.

Tests that need the real shared folder skip when it cannot be found (a clean checkout has none);
the bundled dataset and the folder lookup are tested without it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import datasets
from bayescale.data import DataError, DataWarning, validate
from bayescale.datasets import _core

SHARED = {"xlstm": "xlstm_scaling_laws", "llama3_isoflops": "llama3_isoflops",
          "steplaw": "steplaw_lr_bs"}  # fmt: skip
ATTRS = ("name", "citation", "license", "source", "notes", "law", "family", "heldout", "units")


def _shared_base():
    """The real shared/data folder, or None (then the tests that need it skip)."""
    try:
        return _core.shared_folder("xlstm", SHARED["xlstm"]).parent
    except DataError:
        return None


BASE = _shared_base()
needs_shared = pytest.mark.skipif(
    BASE is None,
    reason="shared/data not found (set BAYESCALE_SHARED_DATA to run the shared-ladder tests)",
)


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert text and "\n" not in text
    return text


def _load_quiet(name: str, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return datasets.load(name, **options)


def _check_contract(frame: pd.DataFrame, name: str) -> None:
    assert list(frame.columns[:6]) == ["N", "D", "U", "loss", "family", "C"]
    for column in ("N", "D", "U", "loss", "C"):
        assert frame[column].dtype == np.float64
    np.testing.assert_allclose(frame["C"], 6 * frame["N"] * frame["D"], rtol=1e-12)
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    for key in ATTRS:
        assert isinstance(frame.attrs[key], str) and frame.attrs[key], key
    assert frame.attrs["name"] == name
    assert frame.attrs["law"] in bs.law_names()
    assert frame.attrs["bundled"] is (name not in SHARED)


# ---------------------------------------------------------------------------- gemstones


def test_gemstones_default_is_the_199_cooldown_runs_of_20_shapes(monkeypatch, tmp_path):
    # bundled: needs no shared folder
    monkeypatch.setenv(_core.ENV_VAR, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = datasets.load("gemstones")
        data = validate(frame)
    _check_contract(frame, "gemstones")
    assert len(frame) == 199 and data.n_families == 20
    assert set(frame["schedule"]) == {"cooldown"}
    per_shape = frame["family"].value_counts()
    assert per_shape.drop("3072x12").eq(10).all() and per_shape["3072x12"] == 9
    assert (frame["family"] == frame["width"].astype(str) + "x" + frame["depth"].astype(str)).all()
    # one N per shape, so only D varies within a family (see notes)
    assert frame.groupby("family")["N"].nunique().eq(1).all() and frame["N"].nunique() == 20
    # units: Dolma validation loss in nats/token
    assert frame["loss"].between(2.5, 3.52).all() and frame.attrs["units"] == "nats/token"
    assert frame["N"].between(4.8e7, 2.01e9).all() and frame["D"].between(1.09e10, 1.1e11).all()
    np.testing.assert_allclose(frame["D"] / frame["D_cooldown_start"], 1.1, rtol=1e-3)
    np.testing.assert_array_equal(frame["U"], frame["D"])
    assert (frame["N_nonembed"] < frame["N"]).all()
    assert "MIT" in frame.attrs["license"] and "embedding" in frame.attrs["notes"]


@pytest.mark.parametrize(("schedule", "rows", "shapes"), [("constant_lr", 770, 22),
                                                          ("constant_lr_half", 200, 20)])  # fmt: skip
def test_gemstones_checkpoints_only_on_request_with_a_warning(schedule, rows, shapes):
    with pytest.warns(DataWarning, match="checkpoints of one"):
        frame = datasets.load("gemstones", schedule=schedule)
    assert len(frame) == rows and frame["family"].nunique() == shapes
    assert set(frame["schedule"]) == {schedule} and frame["cooldown_start_step"].isna().all()
    assert frame["loss"].between(2.4, 3.7).all()


def test_gemstones_cooldown_sits_below_the_constant_lr_checkpoint():
    cooled = datasets.load("gemstones")
    hot = _load_quiet("gemstones", schedule="constant_lr")
    start = cooled[cooled["family"] == "256x23"].iloc[0]
    trunk = hot[(hot["family"] == "256x23") & (hot["D"] == start["D_cooldown_start"])]
    assert len(trunk) == 1 and start["loss"] < trunk["loss"].iloc[0]


def test_gemstones_bad_schedule():
    with pytest.raises(DataError, match="schedule must be one of") as info:
        datasets.load("gemstones", schedule="all")
    _one_line(info)


# ---------------------------------------------------------------------------- missing folder


@pytest.mark.parametrize(("name", "folder"), SHARED.items())
def test_missing_shared_folder_says_what_to_set(name, folder, tmp_path):
    with pytest.raises(DataError) as info:
        datasets.load(name, root=tmp_path)
    text = _one_line(info)
    assert f"'{name}' is not bundled" in text and f"{folder}/ was not found" in text
    assert _core.ENV_VAR in text and "root=" in text and str(tmp_path) in text


def test_environment_variable_is_used_and_nothing_else(monkeypatch, tmp_path):
    monkeypatch.setenv(_core.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match=_core.ENV_VAR) as info:
        datasets.load("xlstm")
    _one_line(info)
    table = datasets.describe()  # does not fail: shared rows are marked unavailable
    shared = table.set_index("name").loc[list(SHARED)]
    assert not shared["available"].any() and not shared["bundled"].any()
    assert shared["rows"].to_dict() == {"xlstm": 407, "llama3_isoflops": 133, "steplaw": 17}
    assert table.loc[table["bundled"], "available"].all()


def _fake_steplaw(folder):
    """A two-cell stand-in for steplaw_dense_best_per_ND.csv (lookup tests need no real data)."""
    folder.mkdir(parents=True)
    keep = dict.fromkeys(("lr_best", "bs_best", "n_runs", "n_lr", "n_bs", "n_diverged_gt4",
                          "loss_final_raw_of_best", "min_loss_final_raw", "h", "numl", "ffnh",
                          "numh"), 1.0)  # fmt: skip
    pd.DataFrame(
        {"family": "steplaw_dense", "N": [2e8, 1e9], "D": [4e9, 1e13], "loss": [2.6, 2.1],
         "D_suspect": [False, True], **keep, "split_sldbench": "train",
         "split_sldbench_v0": "train", "source": "steplaw"}
    ).to_csv(folder / "steplaw_dense_best_per_ND.csv", index=False)  # fmt: skip


def test_lookup_walks_up_from_the_current_directory(monkeypatch, tmp_path):
    _fake_steplaw(tmp_path / "shared" / "data" / "steplaw_lr_bs")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv(_core.ENV_VAR, raising=False)
    monkeypatch.setattr(_core, "_REPO_ROOT", tmp_path / "elsewhere")
    monkeypatch.chdir(deep)
    frame = datasets.load("steplaw")
    found = Path(frame.attrs["location"]).resolve()
    assert len(frame) == 1 and found == (tmp_path / "shared/data/steplaw_lr_bs").resolve()
    # root may name shared/data or the ladder's folder itself
    for root in (tmp_path / "shared" / "data", tmp_path / "shared" / "data" / "steplaw_lr_bs"):
        assert len(datasets.load("steplaw", root=root)) == 1


def test_a_source_file_without_its_columns_is_a_data_error(tmp_path):
    folder = tmp_path / "steplaw_lr_bs"
    folder.mkdir()
    pd.DataFrame({"N": [1.0], "D": [2.0]}).to_csv(folder / "steplaw_dense_best_per_ND.csv")
    with pytest.raises(DataError, match="lacks column") as info:
        datasets.load("steplaw", root=tmp_path)
    _one_line(info)


def test_shared_options_are_checked():
    with pytest.raises(DataError, match="options: split, paper_only, root"):
        datasets.load("xlstm", curves=True)
    with pytest.raises(DataError, match="no option root"):
        datasets.load("gemstones", root=".")


# ---------------------------------------------------------------------------- refused


@pytest.mark.parametrize(("name", "why"), [("vocab_scaling", "unigram-normalised, not nats/token"),
                                           ("routing_moe", "not an \\(N, D\\) ladder")])  # fmt: skip
def test_refused_folders_say_why_in_one_line(name, why):
    with pytest.raises(DataError, match=why) as info:
        datasets.load(name)
    assert _one_line(info).startswith(f"{name}: ")
    with pytest.raises(DataError, match=why):
        datasets.citation(name)
    assert name in datasets.refused().index
    assert name not in datasets.names().index


def test_names_mark_bundled_and_shared():
    listed = datasets.names()
    for name, folder in SHARED.items():
        assert listed[name].endswith(f"[not bundled: needs shared/data/{folder}/]")
    assert listed["gemstones"].endswith("[bundled]")


# ---------------------------------------------------------------------------- xlstm


@needs_shared
def test_xlstm_default_is_407_train_runs_in_5_families():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = datasets.load("xlstm")
        data = validate(frame)
    _check_contract(frame, "xlstm")
    assert len(frame) == 407 and data.n_families == 5
    assert frame["family"].value_counts().to_dict() == {
        "llama_ctx8192": 138, "llama_ctx2048": 84, "mlstm_ctx16384": 81,
        "llama_ctx16384": 70, "mlstm_ctx8192": 34,
    }  # fmt: skip
    assert frame["in_paper_dataset"].all() and not frame["heldout"].any()
    assert set(frame["split"]) == {"train"}
    # units: DCLM validation loss, nats/token
    assert frame["loss"].between(2.1, 3.6).all() and frame.attrs["units"] == "nats/token"
    assert frame["N"].between(8.3e7, 6.9e9).all() and frame["D"].between(1.8e9, 1.6e12).all()
    # canonical C is 6ND; the repository's FLOPs differ a lot (attention, embeddings)
    ratio = frame["C_repo"] / frame["C"]
    assert ratio.min() < 0.75 and ratio.max() > 2.0
    assert "embedding" in frame.attrs["notes"] and "C_repo" in frame.attrs["notes"]
    assert "7B" in frame.attrs["heldout"] and frame.attrs["bundled"] is False


@needs_shared
def test_xlstm_splits_and_paper_only():
    test = datasets.load("xlstm", split="test")
    assert len(test) == 1 and test["heldout"].all()
    row = test.iloc[0]
    assert row["family"] == "mlstm_ctx8192" and row["D"] == 2.097152e12
    assert row["N"] == pytest.approx(6.87e9, rel=1e-3)
    assert len(datasets.load("xlstm", split="all")) == 408
    every = datasets.load("xlstm", split="all", paper_only=False)
    assert len(every) == 496 and every["family"].nunique() == 7
    assert every["loss"].max() > 10  # the diverged runs the paper drops
    with pytest.raises(DataError, match="split must be one of"):
        datasets.load("xlstm", split="heldout")


@needs_shared
def test_xlstm_root_and_environment_variable(monkeypatch):
    monkeypatch.setenv(_core.ENV_VAR, str(BASE))
    assert len(datasets.load("xlstm")) == 407
    monkeypatch.delenv(_core.ENV_VAR)
    assert len(datasets.load("xlstm", root=BASE / "xlstm_scaling_laws")) == 407


# ---------------------------------------------------------------------------- llama3, steplaw


@needs_shared
def test_llama3_warns_about_units_every_time():
    with pytest.warns(DataWarning, match="units are not stated"):
        frame = datasets.load("llama3_isoflops")
    _check_contract(frame, "llama3_isoflops")
    assert len(frame) == 133 and set(frame["family"]) == {"llama3"}
    assert "not stated" in frame.attrs["units"]
    assert frame["loss"].between(0.69, 0.94).all()  # not a nats/token range for web text
    np.testing.assert_allclose(frame["C"], frame["compute_budget"], rtol=1e-9)
    assert frame["compute_budget"].nunique() == 10
    with pytest.warns(DataWarning):
        datasets.load("llama3_isoflops")


@needs_shared
def test_steplaw_drops_the_suspect_cell_by_default():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = datasets.load("steplaw")
        validate(frame)
    _check_contract(frame, "steplaw")
    assert len(frame) == 17 and set(frame["family"]) == {"steplaw_dense"}
    assert not frame["D_suspect"].any() and frame["D"].max() == 1e11
    assert frame["N"].nunique() == 5 and frame["loss"].between(2.1, 2.63).all()
    with pytest.warns(DataWarning, match="1e13"):
        every = datasets.load("steplaw", suspect=True)
    assert len(every) == 18 and every.loc[every["D_suspect"], "D"].tolist() == [1e13]


@needs_shared
def test_steplaw_cells_are_the_best_of_the_raw_runs():
    raw = pd.read_csv(BASE / "steplaw_lr_bs" / "dense_lr_bs_loss.csv")
    best = raw.groupby(["N", "D"])["smooth loss"].min().rename("best").reset_index()
    joined = datasets.load("steplaw").merge(best, on=["N", "D"], validate="one_to_one")
    assert len(joined) == 17
    np.testing.assert_array_equal(joined["loss"], joined["best"])
