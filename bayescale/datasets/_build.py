"""Regenerate the bundled CSVs from the source copies in ``shared/data``.

Not imported by the package. Run from the repository root::

    python -m bayescale.datasets._build [--source ../shared/data]

Only columns are selected and renamed; values are copied unchanged, except the derived
quantities named below (``D = C / (6 N)`` for Chinchilla, ``C = 6 N D`` elsewhere, ``N`` parsed
from ColPret's ``"2.8B"`` strings, and a few boolean flags; Gemstones' ``family`` is its
``shape`` column and its source ``family`` becomes ``schedule``). The script checks the row
counts and the facts the notes in ``CITATIONS.md`` rely on, and stops if one fails.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.data import parse_quantity

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data"
CANONICAL = ["N", "D", "U", "loss", "family", "C"]
# gzip stores a timestamp; a fixed one keeps rebuilt files byte-identical.
GZIP = {"method": "gzip", "mtime": 0, "compresslevel": 9}


def _write(frame: pd.DataFrame, name: str, compression: dict | None = None) -> None:
    path = HERE / name
    frame.to_csv(path, index=False, compression=compression, lineterminator="\n")
    print(f"wrote {path.name}: {len(frame)} rows, {path.stat().st_size / 1024:.0f} KiB")


def _float(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64)


def chinchilla(source: Path) -> pd.DataFrame:
    """Epoch AI's 245 points digitized from Hoffmann et al. 2022, Fig. 4."""
    raw = pd.read_csv(source / "epoch_chinchilla" / "svg_extracted_data.csv")
    assert len(raw) == 245, len(raw)
    N, C = _float(raw["Model Size"]), _float(raw["Training FLOP"])
    D = C / (6.0 * N)  # the authors' convention (data_analysis.ipynb)
    # Besiroglu et al. 2024 fit on 240 points, dropping the 5 highest losses.
    excluded = np.zeros(len(raw), dtype=bool)
    order = np.argsort(-raw["loss"].to_numpy(), kind="stable")
    excluded[order[:5]] = True
    losses = raw["loss"].to_numpy()
    assert losses[order[4]] > losses[order[5]], "5th and 6th highest losses tie"
    return pd.DataFrame(
        {
            "N": N,
            "D": D,
            "U": D,
            "loss": raw["loss"],
            "family": "massivetext",
            "C": C,
            "epoch_excluded": excluded,
            "hex_color": raw["hex_color"],
        }
    )


def _datablations(raw: pd.DataFrame) -> pd.DataFrame:
    N, D = _float(raw["params_N"]), _float(raw["tokens_D"])
    return pd.DataFrame(
        {
            "N": N,
            "D": D,
            "U": _float(raw["unique_tokens_U"]),
            "loss": raw["val_loss"],
            "family": "c4",
            "C": 6.0 * N * D,
            "run_name": raw["run_name"],
            "epochs": raw["epochs_D_over_U"],
        }
    )


def datablations(source: Path) -> pd.DataFrame:
    """Muennighoff et al. 2023: the 182 runs of the paper's data-constrained fit."""
    raw = pd.read_csv(source / "datablations" / "datablations_c4_main_fit_182.csv")
    assert len(raw) == 182, len(raw)
    return _datablations(raw)


def datablations_all(source: Path) -> pd.DataFrame:
    """Muennighoff et al. 2023: all 296 C4 runs, seed replicates included."""
    raw = pd.read_csv(source / "datablations" / "datablations_c4_all_runs.csv")
    assert len(raw) == 296 and raw["in_main_fit_182"].sum() == 182
    out = _datablations(raw)
    out["seed"] = raw["seed"].astype("Int64")
    out["in_main_fit_182"] = raw["in_main_fit_182"].astype(bool)
    return out


def _run_ids(raw: pd.DataFrame) -> pd.Series:
    return raw["data"] + "-" + raw["num_params"] + "-" + raw["epochs"].astype(str) + "ep"


def datablations_curves(source: Path) -> pd.DataFrame:
    """ColPret's copy of the 48 datablations repetition runs' validation-loss curves."""
    raw = pd.read_csv(source / "colpret_hitchhiker" / "aggregated_eval" / "datablations_losses.csv")
    run = _run_ids(raw)
    assert run.nunique() == 48 and raw["model_args"].nunique() == 48
    assert (raw.groupby(run)["tokens_per_epoch"].nunique() == 1).all()
    N = raw["num_params"].map(parse_quantity).to_numpy(dtype=np.float64)
    D = _float(raw["token_num"])
    final = raw["token_num"].eq(raw.groupby(run)["token_num"].transform("max"))
    assert final.sum() == 48
    tensorboard = raw["model_args"].map(lambda text: ast.literal_eval(text)["tensorboard"])
    return pd.DataFrame(
        {
            "N": N,
            "D": raw["token_num"],
            "U": raw["tokens_per_epoch"],
            "loss": raw["loss"],
            "family": raw["data"],
            "C": 6.0 * N * D,  # the file's `flops` column is wrong
            "run": run,
            "epochs": raw["epochs"],
            "final": final.to_numpy(),
            "identical_curve": _identical_curves(raw, run).to_numpy(),
            "valset": raw["data"] + "_val",
            "tensorboard": tensorboard,
            "hf_repo": raw["checkpoint"],
            "source_row": raw["index"],
        }
    )


def _identical_curves(raw: pd.DataFrame, run: pd.Series) -> pd.Series:
    """Flag runs whose whole loss curve equals another run's (an upstream copy error)."""
    curves = {
        key: tuple(zip(g["token_num"], g["loss"], strict=True))
        for key, g in raw.groupby(run, sort=False)
    }
    seen: dict[tuple, list[str]] = {}
    for key, curve in curves.items():
        seen.setdefault(curve, []).append(key)
    copies = {key for keys in seen.values() if len(keys) > 1 for key in keys}
    assert copies == {"oscar-2.8B-3ep", "oscar-2.8B-4ep"}, copies
    return run.isin(copies)


def gadre(source: Path) -> pd.DataFrame:
    """Gadre et al. 2024: 104 open_lm models on C4, RedPajama and RefinedWeb."""
    raw = pd.read_csv(source / "gadre_overtraining" / "gadre_summary_flat.csv")
    assert len(raw) == 104
    missing = raw["loss_c4_val"].isna()
    print(f"gadre: dropping {missing.sum()} rows with missing loss_c4_val")
    raw = raw[~missing].reset_index(drop=True)
    N, D = _float(raw["params_N"]), _float(raw["tokens_D"])
    return pd.DataFrame(
        {
            "N": N,
            "D": D,
            "U": D,
            "loss": raw["loss_c4_val"],
            "family": raw["train_dataset"],
            "C": 6.0 * N * D,
            "name": raw["name"],
            "model_name": raw["model_name"],
            "tokens_per_param_M": raw["tokens_per_param_M"],
            "chinchilla_multiplier": raw["chinchilla_multiplier"],
            "params_no_embed": raw["params_no_embed"],
            "loss_lo95": raw["loss_lo95_c4_val"],
            "loss_hi95": raw["loss_hi95_c4_val"],
            "valset": "c4_val",
            "tokenizer": "EleutherAI/gpt-neox-20b",
        }
    )


_GEMSTONES_SCHEDULES = {
    "cooldown": ("cool_end", 199, 20),
    "constant_lr": ("hot_100b+", 770, 22),
    "constant_lr_half": ("lr_ablation_hot", 200, 20),
}


def gemstones(source: Path) -> pd.DataFrame:
    """McLeish et al. 2025: the three fitting tables, ``family`` = shape, ``schedule`` = table."""
    folder = source / "gemstones"
    raw = pd.read_csv(folder / "gemstones_flat.csv")
    assert len(raw) == 1169, len(raw)
    for schedule, (table, rows, shapes) in _GEMSTONES_SCHEDULES.items():
        part = raw[raw["family"] == schedule]
        assert len(part) == rows and part["shape"].nunique() == shapes, schedule
        # the flat file is the authors' jsonl table, reordered: check every value
        jsonl = pd.read_json(folder / "raw" / f"wandb_df_for_fitting_{table}.jsonl", lines=True)
        both = part.merge(jsonl, on=["run_name", "step"], validate="one_to_one")
        assert len(both) == rows, schedule
        assert (both["N"] == both["params_active_precise"]).all()
        assert (both["D"] == both["tokens"]).all()
        np.testing.assert_allclose(both["loss"], both["final_loss"], rtol=1e-15, atol=0)
    cooldown = raw[raw["family"] == "cooldown"]
    assert cooldown.groupby("shape")["N"].nunique().eq(1).all()
    assert cooldown["N"].nunique() == 20  # one N per shape (see the notes)
    assert (raw["shape"] == raw["width"].astype(str) + "x" + raw["depth"].astype(str)).all()
    N, D = _float(raw["N"]), _float(raw["D"])  # int64 in the file: 6ND overflows int64
    np.testing.assert_allclose(6.0 * N * D, raw["C_6ND"], rtol=1e-15)
    return pd.DataFrame(
        {
            "N": raw["N"],
            "D": raw["D"],
            "U": raw["D"],
            "loss": raw["loss"],
            "family": raw["shape"],
            "C": 6.0 * N * D,
            "schedule": raw["family"],
            "width": raw["width"],
            "depth": raw["depth"],
            "N_nonembed": raw["N_nonembed"],
            "step": raw["step"],
            "cooldown_start_step": raw["cooldown_start_step"].astype("Int64"),
            "D_cooldown_start": raw["D_cooldown_start"].astype("Int64"),
            "run_name": raw["run_name"],
            "valset": "dolma_val",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    source = parser.parse_args().source
    _write(chinchilla(source), "chinchilla.csv")
    _write(datablations(source), "datablations.csv")
    _write(datablations_all(source), "datablations_all.csv")
    _write(datablations_curves(source), "datablations_curves.csv.gz", GZIP)
    _write(gadre(source), "gadre.csv")
    _write(gemstones(source), "gemstones.csv.gz", GZIP)


if __name__ == "__main__":
    main()
