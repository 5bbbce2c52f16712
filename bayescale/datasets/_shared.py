"""Ladders read from the shared data folder (their licenses do not allow bundling).

Each reader turns one source CSV of ``shared/data/<folder>`` into the canonical columns with
values unchanged (``C = 6 N D`` recomputed; the source's own compute kept beside it), then the
entry's ``select`` applies the options. :data:`REFUSED` holds the shared folders that are not
(N, D) ladders in nats/token, with the one-line reason :func:`bayescale.datasets.load` raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data import DataError, DataWarning

from ._core import Dataset, read_source

_NO_LICENSE = "none stated"

_BECK = (
    "Beck, M., Schweighofer, K., Böck, S., Lehner, S., Hochreiter, S. (2025). xLSTM Scaling "
    "Laws: Competitive Performance with Linear Time-Complexity. arXiv:2510.02228 (ICLR 2026)."
)
_LLAMA3 = (
    "Llama Team, AI @ Meta (Grattafiori, A., Dubey, A., Jauhri, A., Pandey, A., et al.) (2024). "
    "The Llama 3 Herd of Models. arXiv:2407.21783. Figure 2 digitized by E. Czech "
    "(github.com/eric-czech/llama3_isoflop_extraction)."
)
_STEPLAW = (
    "Li, H., Zheng, W., Wang, Q., Zhang, H., Wang, Z., Xuyang, S., Fan, Y., Zhou, S., Zhang, X., "
    "Jiang, D. (2025). Predictable Scale: Part I -- Optimal Hyperparameter Scaling Law in Large "
    "Language Model Pretraining. arXiv:2503.04715."
)


def _canonical(raw: pd.DataFrame, family: Any, extras: Mapping[str, Any]) -> pd.DataFrame:
    """N, D, U = D, loss, family, C = 6ND (float64), then ``extras`` in order."""
    N = raw["N"].to_numpy(dtype=np.float64)
    D = raw["D"].to_numpy(dtype=np.float64)
    columns = {"N": N, "D": D, "U": D, "loss": raw["loss"], "family": family, "C": 6.0 * N * D}
    return pd.DataFrame({**columns, **extras})


# ---------------------------------------------------------------------------- xlstm

_XLSTM_FILE = "xlstm_runs_flat.csv"
_XLSTM_KEEP = (
    "split", "in_paper_dataset", "arch", "context_length", "run_set", "experiment_set",
    "isoflop_budget", "train_loss", "final_val_at_end", "lr", "global_batch_size",
    "num_train_steps", "last_val_step", "name", "run_tag", "run_id",
)  # fmt: skip
_SPLITS = ("train", "test", "all")


def _read_xlstm(folder: Path) -> pd.DataFrame:
    columns = ("family", "N", "D", "C", "loss", *_XLSTM_KEEP)
    raw = read_source(folder / _XLSTM_FILE, columns)
    extras = {
        "C_repo": raw["C"].to_numpy(dtype=np.float64),
        "heldout": raw["split"].eq("test").to_numpy(),
        **{column: raw[column] for column in _XLSTM_KEEP},
        "valset": "dclm_val",
        "tokenizer": "EleutherAI/gpt-neox-20b",
    }
    return _canonical(raw, raw["family"], extras)


def _xlstm_select(frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    split = options["split"]
    if split not in _SPLITS:
        raise DataError(f"xlstm: split must be one of {', '.join(_SPLITS)}, got {split!r}")
    if options["paper_only"]:
        frame = frame[frame["in_paper_dataset"].astype(bool)]
    if split != "all":
        frame = frame[frame["split"] == split]
    return frame


# ---------------------------------------------------------------------------- llama3

_LLAMA3_FILE = "llama3_isoflops_flat.csv"


def _read_llama3(folder: Path) -> pd.DataFrame:
    raw = read_source(folder / _LLAMA3_FILE, ("N", "D", "C", "loss", "compute_budget"))
    extras = {
        "compute_budget": raw["compute_budget"],
        "x_page": raw.get("x_page"),
        "y_page": raw.get("y_page"),
        "valset": "llama3_heldout",
    }
    return _canonical(raw, "llama3", extras)


def _llama3_warn(frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    warnings.warn(
        "llama3_isoflops: the loss units are not stated (values 0.69-0.93, probably not "
        "nats/token) and N = C/(6D) is derived from the digitized D, not measured; use it as a "
        "relative scale only (E, A, B are not comparable with other datasets)",
        DataWarning,
        stacklevel=3,
    )
    return frame


# ---------------------------------------------------------------------------- steplaw

_STEPLAW_FILE = "steplaw_dense_best_per_ND.csv"
_STEPLAW_KEEP = (
    "D_suspect", "lr_best", "bs_best", "n_runs", "n_lr", "n_bs", "n_diverged_gt4",
    "loss_final_raw_of_best", "min_loss_final_raw", "h", "numl", "ffnh", "numh",
    "split_sldbench", "split_sldbench_v0", "source",
)  # fmt: skip


def _read_steplaw(folder: Path) -> pd.DataFrame:
    raw = read_source(folder / _STEPLAW_FILE, ("family", "N", "D", "loss", *_STEPLAW_KEEP))
    extras = {column: raw[column] for column in _STEPLAW_KEEP}
    extras["D_suspect"] = raw["D_suspect"].astype(bool).to_numpy()
    extras["valset"] = "train_smoothed"
    return _canonical(raw, raw["family"], extras)


def _steplaw_select(frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    if not options["suspect"]:
        return frame[~frame["D_suspect"]]
    warnings.warn(
        "steplaw with suspect=True: the cell N = 1.07B, D = 1e13 comes from rows SLDBench appended "
        "(not in the StepLaw repository); D = 1e13 is implausible (its loss is only 0.044 below "
        "the same model at 56.9B tokens) and was probably 1e11",
        DataWarning,
        stacklevel=3,
    )
    return frame


SHARED: dict[str, Dataset] = {
    entry.name: entry
    for entry in (
        Dataset(
            name="xlstm",
            folder="xlstm_scaling_laws",
            read=_read_xlstm,
            law="chinchilla",
            family=(
                "architecture x context length: llama_ctx2048, llama_ctx8192, llama_ctx16384, "
                "mlstm_ctx8192, mlstm_ctx16384"
            ),
            heldout=(
                "the paper holds out the mLSTM 7B run trained on 2.1T tokens (split='test', "
                "heldout=True) to test its L(N, D) fit"
            ),
            rows=407,
            description=(
                "Beck et al. 2025 (xLSTM scaling laws): 407 train runs of the paper's 5 "
                "arch x context families, N 84M-6.9B, D 1.9B-1.6T, DCLM validation loss"
            ),
            citation=_BECK,
            license=(
                f"{_NO_LICENSE}: NX-AI/xlstm_scaling_laws has no LICENSE file; results released "
                "in the paper's public repository. Not bundled: read from the shared data folder."
            ),
            source=(
                "https://github.com/NX-AI/xlstm_scaling_laws (commit "
                "604bb3062d3a7681bb33e467108cb0a6f81267fc): isoFLOP wandb pickles and saved "
                "notebook tables, flattened to shared/data/xlstm_scaling_laws/xlstm_runs_flat.csv"
            ),
            notes=(
                "Default: the paper's runs (in_paper_dataset) of its 5 families, split='train' "
                "(407 of 408); split='test' is the held-out mLSTM 7B/2.1T run, split='all' both; "
                "paper_only=False adds diverged and loss-spike runs (loss up to 10.8) and the two "
                "side sets mlstm_ctx8192_gbs256 and llama_ctx8192_iso_round1 (496 rows). N = "
                "total parameters INCLUDING the untied input embedding and output head (vocab "
                "50,304; 62% of the 84M Llama): an N-only law sees a different N than a "
                "non-embedding one, and non-embedding N is not in the table. D = tokens "
                "(global batch x context x steps), U = D (one pass over DCLM). loss = final DCLM "
                "validation cross-entropy (nats/token); each family at its own context length. "
                "C = 6ND like the other datasets; C_repo is the repository's FLOP count "
                "(linear, sequence-mixing and other FLOPs), on which the isoFLOP budgets 6e18-1e20 "
                "are defined: C_repo/6ND is 0.73-1.03 for ctx 2048 and mLSTM (below 1: N counts "
                "the embedding) and 1.13-2.08 for Llama at ctx 8192/16384 (attention), so an "
                "isoFLOP set is not iso in C. Missing: "
                "the mLSTM isoFLOP runs at ctx 2048 and 8192 (232 of the paper's 640; source "
                "files too large), so no mLSTM family has both isoFLOP and token/param runs. "
                "llama_ctx8192 mixes the isoFLOP grid (to 2.3B) and the token/param ladder (to "
                "6.9B, 0.79T tokens); its 160M model at 8.39B tokens is in both (two runs, loss "
                "3.1454 and 3.1437: a de facto replicate). Authors' ctx-8192 fits (Huber 1e-3, "
                "indicative): Llama E 1.909, A 80.78, alpha 0.2414, B 21822, beta 0.4764; mLSTM "
                "E 2.153, A 4218, alpha 0.4631, B 22440, beta 0.4837."
            ),
            options={"split": "train", "paper_only": True, "root": None},
            select=_xlstm_select,
        ),
        Dataset(
            name="llama3_isoflops",
            folder="llama3_isoflops",
            read=_read_llama3,
            law="chinchilla",
            family="one family, 'llama3'",
            heldout=(
                "none defined by the paper; natural hold-out: the 3e21 and 1e22 isoFLOP curves "
                "(12 points)"
            ),
            rows=133,
            units="not stated (0.69-0.93; probably not nats/token): a relative scale only",
            description=(
                "Llama 3 (Meta 2024) Fig. 2 isoFLOP curves, digitized: 133 runs, 10 budgets "
                "6e18-1e22, D read off, N = C/(6D); loss units NOT stated"
            ),
            citation=_LLAMA3,
            license=(
                f"{_NO_LICENSE}: eric-czech/llama3_isoflop_extraction has no LICENSE file; "
                "numbers digitized from a published figure. Not bundled: read from the shared "
                "data folder."
            ),
            source=(
                "https://github.com/eric-czech/llama3_isoflop_extraction (commit "
                "1bc1755b76e6ee55a911549c8ec52b71cb480320), isoflops_points.csv, as "
                "shared/data/llama3_isoflops/llama3_isoflops_flat.csv"
            ),
            notes=(
                "Digitized from the figure's vector SVG (x_page, y_page kept). loss = the "
                "figure's 'validation loss' (negative log-likelihood on a held-out set): its "
                "units and normalisation are NOT stated and its values (0.69-0.93) are far below "
                "nats/token for web text, so E, A and B are not comparable with other datasets "
                "(every load warns). D = training tokens read off the x axis; N = C/(6D) is "
                "derived, not measured (total vs non-embedding unknown), so the data carry only "
                "(C, D) information and every point lies exactly on its isoFLOP line; C = 6ND = "
                "compute_budget, the curve's nominal budget (Meta's FLOP accounting is not "
                "stated). Each point is a separate run. Budgets (rows): 6e18 16, 1e19 17, 3e19 "
                "16, 6e19 16, 1e20 18, 3e20 14, 6e20 12, 1e21 12, 3e21 6, 1e22 6."
            ),
            options={"root": None},
            select=_llama3_warn,
        ),
        Dataset(
            name="steplaw",
            folder="steplaw_lr_bs",
            read=_read_steplaw,
            law="chinchilla",
            family="one family, 'steplaw_dense' (dense models)",
            heldout=(
                "none defined by the paper; SLDBench's splits are kept in split_sldbench (test = "
                "only the suspect D = 1e13 cell) and split_sldbench_v0 (test = the 3 cells at "
                "D = 100B or N = 1.07B)"
            ),
            rows=17,
            description=(
                "Li et al. 2025 (StepLaw): 17 (N, D) cells, each the best of ~120 lr x batch "
                "runs, N 215M-1.07B non-embedding, D 4B-100B, smoothed training loss"
            ),
            citation=_STEPLAW,
            license=(
                f"{_NO_LICENSE}: step-law/steplaw has no LICENSE file. Not bundled: read from "
                "the shared data folder."
            ),
            source=(
                "https://github.com/step-law/steplaw (commit "
                "32a8f4cc50247695fb56cc6c9117abdf67c97763), data/dense_lr_bs_loss.csv (1,911 "
                "runs), reduced to the best run per (N, D) in "
                "shared/data/steplaw_lr_bs/steplaw_dense_best_per_ND.csv"
            ),
            notes=(
                "One row per (N, D) cell: the run with the lowest smoothed loss over a 12 lr x 10 "
                "batch grid (lr_best, bs_best; optimum interior in every cell; (429M, 40B) and "
                "(1.07B, 56.9B) have partial grids of 100 and 47 runs). loss = final value of a "
                "Gaussian-smoothed TRAINING loss curve (nats/token), not a validation loss, and "
                "the minimum over ~120 noisy runs (biased slightly low; a different noise model "
                "from single-run ladders). N = NON-embedding parameters; D = tokens; U = D; C = "
                "6ND. Each N has its own D values (5 sizes x 3-4 D, D/N 19-466). Default drops "
                "the cell N = 1.07B, D = 1e13 (D_suspect): it comes from rows SLDBench appended, "
                "not from the StepLaw repository, and 1e13 is implausible (loss only 0.044 below "
                "the same model at 56.9B tokens; likely 1e11); suspect=True keeps it, with a "
                "DataWarning. 17 runs is below the usual 20-run target."
            ),
            options={"suspect": False, "root": None},
            select=_steplaw_select,
        ),
    )
}

#: Shared folders that are not (N, D) ladders in nats/token: name -> one-line reason.
REFUSED: dict[str, str] = {
    "vocab_scaling": (
        "vocab_scaling: loss is unigram-normalised, not nats/token (it is negative, -5.3 to "
        "-0.5); D is counted in characters, not tokens; and the 1,200 rows are 20 checkpoints of "
        "each of 60 runs (Tao et al. 2024, arXiv:2407.13623; shared/data/vocab_scaling_tao2024)"
    ),
    "routing_moe": (
        "routing_moe: every run stops at ~250k steps and tokens per step are not in the data, so "
        "D does not vary: an L(N, E) set over expert counts, not an (N, D) ladder (Clark et al. "
        "2022, arXiv:2202.01169; shared/data/routing_moe_clark2022)"
    ),
}
