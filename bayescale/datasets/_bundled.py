"""The bundled datasets: CSVs in this package, their provenance and their options.

Registry entries only; :mod:`bayescale.datasets` reads them. Each entry's ``notes`` are the caveats
``CITATIONS.md`` spells out in prose.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bayescale.data import DataError, DataWarning

from ._core import Dataset

_HOFFMANN = (
    "Hoffmann, J., Borgeaud, S., Mensch, A., et al. (2022). Training Compute-Optimal Large "
    "Language Models. arXiv:2203.15556."
)
_BESIROGLU = (
    "Besiroglu, T., Erdil, E., Barnett, M., You, J. (2024). Chinchilla Scaling: A replication "
    "attempt. arXiv:2404.10102."
)
_MUENNIGHOFF = (
    "Muennighoff, N., Rush, A. M., Barak, B., et al. (2023). Scaling Data-Constrained Language "
    "Models. NeurIPS 2023. arXiv:2305.16264."
)
_CHOSHEN = (
    "Choshen, L., Zhang, Y., Andreas, J. (2025). A Hitchhiker's Guide to Scaling Law "
    "Estimation. ICML 2025. arXiv:2410.11840."
)
_GADRE = (
    "Gadre, S. Y., Smyrnis, G., Shankar, V., et al. (2024). Language models scale reliably "
    "with over-training and on downstream tasks. arXiv:2403.08540."
)
_EPOCH_REPO = (
    "https://github.com/epoch-research/analyzing-chinchilla "
    "(commit 92258837425e1b5f2851d624287f0120583a3d0e), data/svg_extracted_data.csv"
)
_DATABLATIONS_REPO = (
    "https://github.com/huggingface/datablations "
    "(commit 13701315b163f1c54642b94ad237b2699187c3ee), utils/parametric_fit.ipynb "
    "(dict literals NAMES_TO_VAL_LOSSES, PARAMS_MAP, TOKENS_MAP, parsed as the notebook does)"
)
_COLPRET_REPO = (
    "https://github.com/IBM/ColPret (commit 16f23bbe054277ddc4afd07a972dd7cfbe3f48c3), "
    "aggregated_eval/datablations_losses.csv"
)
_GADRE_REPO = (
    "https://github.com/mlfoundations/scaling (commit a003c4913793ac2ae7ef87b28ecb562955d026d5), "
    "exp_data/models/*.json flattened to one row per model"
)


_MCLEISH = (
    "McLeish, S., Kirchenbauer, J., Miller, D. Y., Singh, S., Bhatele, A., Goldblum, M., "
    "Panda, A., Goldstein, T. (2025). Gemstones: A Model Suite for Multi-Faceted Scaling Laws. "
    "NeurIPS 2025. arXiv:2502.06857."
)
_GEMSTONES_REPO = (
    "https://github.com/mcleish7/gemstone-scaling-laws "
    "(commit 5f420478f6057b0cbb4d13405fb10ca64675bccb), wandb_dfs/wandb_df_for_fitting_"
    "{cool_end,hot_100b+,lr_ablation_hot}.jsonl (the authors' fitting tables), stacked"
)


def _chinchilla_subset(frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    if options["epoch_subset"]:
        return frame[~frame["epoch_excluded"]]
    return frame


def _curves_or_finals(frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    if not options["curves"]:
        return frame[frame["final"]]
    warnings.warn(
        "datablations_curves with curves=True: the checkpoints of one run share a training "
        "trajectory and are not independent observations; a likelihood that treats them as "
        "independent is overconfident",
        DataWarning,
        stacklevel=3,
    )
    return frame


_SCHEDULES = ("cooldown", "constant_lr", "constant_lr_half")


def _gemstones_schedule(frame: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame:
    schedule = options["schedule"]
    if schedule not in _SCHEDULES:
        raise DataError(
            f"gemstones: schedule must be one of {', '.join(_SCHEDULES)}, got {schedule!r}"
        )
    if schedule != "cooldown":
        warnings.warn(
            f"gemstones with schedule={schedule!r}: the rows of one shape are checkpoints of one "
            "constant-learning-rate run (not annealed, not independent); a likelihood that treats "
            "them as independent runs is overconfident, and their losses sit above annealed ones",
            DataWarning,
            stacklevel=3,
        )
    return frame[frame["schedule"] == schedule]


BUNDLED: dict[str, Dataset] = {
    entry.name: entry
    for entry in (
        Dataset(
            name="chinchilla",
            file="chinchilla.csv",
            law="chinchilla",
            family="one family, 'massivetext' (Chinchilla's training set)",
            heldout=(
                "none defined by the paper; Besiroglu et al. 2024 drop the 5 highest-loss runs "
                "(epoch_excluded) as outliers, which is not a hold-out"
            ),
            rows=245,
            description=(
                "Hoffmann et al. 2022 (Chinchilla) Fig. 4: 245 runs, N 57M-16B, one family, "
                "final training loss, as digitized by Epoch AI"
            ),
            citation=f"{_HOFFMANN} Data digitized by: {_BESIROGLU}",
            license=(
                "No license stated: the Epoch AI repository has no LICENSE file. The values are "
                "measurements digitized from a published figure; cite both papers."
            ),
            source=_EPOCH_REPO,
            notes=(
                "N = 'Model Size', C = 'Training FLOP', D = C/(6N) (Epoch's convention), U = D "
                "(single epoch), family 'massivetext'. loss = final training loss on MassiveText "
                "(nats/token) decoded from the figure's colour scale, so it is quantized (99 "
                "distinct values among 245 rows) and carries digitization error; hex_color is "
                "the decoded colour. epoch_excluded marks the 5 highest-loss runs (loss >= 3.447; "
                "the next is 3.406) that Besiroglu et al. 2024 drop before fitting on 240; "
                "load('chinchilla', epoch_subset=True) returns those 240. Their Huber refit: "
                "E 1.817, A 482, B 2085, alpha 0.348, beta 0.366."
            ),
            options={"epoch_subset": False},
            select=_chinchilla_subset,
        ),
        Dataset(
            name="datablations",
            file="datablations.csv",
            law="data_constrained",
            family="one family, 'c4' (the training and validation data)",
            heldout="none defined by the paper",
            rows=182,
            description=(
                "Muennighoff et al. 2023: the 182 C4 runs of the data-constrained fit, N 7M-8.7B, "
                "repeated data up to 9000 epochs, final validation loss"
            ),
            citation=_MUENNIGHOFF,
            license="Apache-2.0 (huggingface/datablations, LICENSE.md)",
            source=_DATABLATIONS_REPO,
            notes=(
                "Exactly the 182 samples of the paper's fit of R_D* = 15.4, R_N* = 5.3 (base law "
                "frozen at E 1.869, A 520.8, B 1487.7, alpha = beta = 0.3527). N = params_N, "
                "D = tokens_D (tokens seen), U = unique_tokens_U, loss = final C4 validation loss "
                "(nats/token), epochs = D/U, C = 6ND. N is the authors' PARAMS_MAP value for the "
                "run's size tag (e.g. tag '25m' maps to 35.5M). Some tiny models have losses up "
                "to 8.1."
            ),
        ),
        Dataset(
            name="datablations_all",
            file="datablations_all.csv",
            law="data_constrained",
            family="one family, 'c4' (the training and validation data)",
            heldout="none defined by the paper; in_main_fit_182 marks the runs of the paper's fit",
            rows=296,
            description=(
                "Muennighoff et al. 2023: all 296 C4 runs of the notebook, with 4-seed replicates "
                "(seed) and the flag in_main_fit_182"
            ),
            citation=_MUENNIGHOFF,
            license="Apache-2.0 (huggingface/datablations, LICENSE.md)",
            source=_DATABLATIONS_REPO,
            notes=(
                "The larger run set of the notebook's cell 1 (excludes deduplicated-C4 runs and "
                "loss == 0 entries). seed is 1-4 for replicate runs and empty otherwise; "
                "in_main_fit_182 is True for the 182 runs of the paper's fit. Here N is rounded "
                "to 6 significant digits (as printed by the notebook): up to 3824 parameters "
                "(2e-6 relative) below the 182-run file's values for the same runs. Some runs "
                "with 100M unique tokens repeated hundreds of times have losses of 8-11 nats. "
                "Seed-to-seed sd: about 0.001-0.002 nats at 2.8B, 0.006-0.026 at 4.2B."
            ),
        ),
        Dataset(
            name="datablations_curves",
            file="datablations_curves.csv.gz",
            law="data_constrained",
            family="training data (c4, oscar); each family's loss is on its own validation set",
            heldout="none defined by the source",
            rows=48,
            description=(
                "Muennighoff et al. 2023 repetition runs via ColPret: C4 and OSCAR x 3 sizes "
                "(2.8B, 4.2B, 8.7B) x 8 epoch counts; 48 final losses, or 9261 curve points"
            ),
            citation=f"{_CHOSHEN} Runs from: {_MUENNIGHOFF}",
            license=(
                "MIT (IBM/ColPret, (c) 2024 IBM); the runs are from huggingface/datablations "
                "(Apache-2.0)"
            ),
            source=_COLPRET_REPO,
            notes=(
                "family = data (c4, oscar); N parsed from num_params ('2.8B', the rounded size label: "
                "the datablations notebook uses 2.81e9, 4.2465e9, 8.67e9); D = token_num "
                "(tokens seen at the checkpoint); U = tokens_per_epoch; epochs = planned epochs; "
                "run = '<data>-<size>-<epochs>ep'; C = 6ND recomputed because the file's flops "
                "column is wrong (it equals a constant / token_num). Default: the last checkpoint "
                "of each run (final = True, 48 rows); curves=True returns all 9261 checkpoints "
                "(the source notes say 9260; the file has 9261). valset: each family's loss is "
                "on its own dataset's held-out validation split, so c4 and oscar losses are not "
                "comparable in level. Oddities: the oscar 2.8B 3-epoch and 4-epoch runs have "
                "identical curves at all 326 checkpoints despite different TensorBoard ids "
                "(identical_curve = True; likely an upstream copy error, so treat them as one "
                "run); c4 2.8B 3-epoch ends at 54.74B tokens (2.99 epochs) and c4 4.2B 44-epoch "
                "at 83.89B (43.94 epochs); all other runs end within 0.01% of 55B/84B/178B "
                "tokens. The 2.8B runs have 330-525 checkpoints each, the larger ones 60-85. "
                "hf_repo names the size x dataset repository, not the run. Final C4 losses agree with "
                "the datablations notebook's values for the same runs within 0.0083 nats."
            ),
            options={"curves": False},
            select=_curves_or_finals,
        ),
        Dataset(
            name="gadre",
            file="gadre.csv",
            law="overtrain",
            family="training set (c4_original, rpj, rw_original); loss is C4 validation for all",
            heldout=(
                "the paper fits small runs and predicts the 1.4B model at 640 tokens/param (rpj) "
                "and the 6.9B model at 20 tokens/param; no split column"
            ),
            rows=104,
            description=(
                "Gadre et al. 2024: 104 open_lm models, N 11M-6.9B, 5-640 tokens/param, trained "
                "on C4, RedPajama or RefinedWeb (3 families), C4 validation loss"
            ),
            citation=_GADRE,
            license="MIT (mlfoundations/scaling, LICENSE.txt, (c) 2024 mlfoundations)",
            source=_GADRE_REPO,
            notes=(
                "family = train_dataset (c4_original 34 runs, rpj 35, rw_original 35); N = "
                "params_N (total parameters), D = tokens_D, U = D (repetition is not recorded; "
                "runs look like at most one pass), loss = loss_c4_val, the C4 validation loss for "
                "every family (so families are comparable: valset 'c4_val'); loss_lo95 and "
                "loss_hi95 are its 95% interval over sequences. tokenizer: GPT-NeoX-20B for all "
                "runs (the data manifests are 'tokenized_..._eleutherai'). No row lacks a loss "
                "(0 dropped). The 1.4B model at 640 tokens/param exists only for rpj, and the "
                "0.411B C4 run at 640 is absent. The source's flops_6ND column exceeds int64 in "
                "47 rows; C here is 6ND in float64. Reference: a 5-run rpj fit predicts the "
                "1.4B/M=640 and 6.9B/M=20 C4 losses within 0.71% and 0.73%."
            ),
        ),
        Dataset(
            name="gemstones",
            file="gemstones.csv.gz",
            law="chinchilla",
            family="model shape, width x depth (e.g. '1024x28'); one N per shape",
            heldout=(
                "none defined by the paper; natural hold-out: the three ~2B shapes 2048x27, "
                "1536x50 and 3072x12"
            ),
            rows=199,
            description=(
                "McLeish et al. 2025 (Gemstones): 199 annealed (cooldown) runs of 20 width x depth "
                "shapes, N 48M-2.0B, D 11B-110B, Dolma validation loss"
            ),
            citation=_MCLEISH,
            license=(
                "MIT (mcleish7/gemstone-scaling-laws, LICENSE, (c) 2025 Sean McLeish, John "
                "Kirchenbauer, David Yu Miller, Siddharth Singh, Abhinav Bhatele, Micah Goldblum, "
                "Ashwinee Panda, Tom Goldstein)"
            ),
            source=_GEMSTONES_REPO,
            notes=(
                "family = shape (width x depth); within the 199 cooldown rows each shape has "
                "exactly one N (20 distinct N), so inside a family only D varies and per-family "
                "N terms are not identified: share the N exponent across families. Default "
                "schedule='cooldown': annealed points, 10 per shape (9 for 3072x12); each is a "
                "branch that leaves the shape's constant-LR run at 10, 20, ..., 90 or 99.99B "
                "tokens and decays the LR linearly to 0 over another 10% (D 11.0B-110.0B). The "
                "branches of one shape share that trunk (initialization, data order), so their "
                "errors are correlated within a shape. N = params_active_precise, total "
                "parameters including the input embedding and the untied LM head (vocab 50,304), "
                "a large share at small N (N_nonembed = blocks only); D = step x 2048 x 2048 "
                "tokens; U = D (one pass over Dolma); loss = cross-entropy on held-out Dolma "
                "(nats/token, 2.51-3.51); C = 6ND (the paper also uses a GQA-aware FLOP count, "
                "not given here). schedule='constant_lr' (770 rows: 22 shapes x 35 checkpoints to "
                "350B tokens) and 'constant_lr_half' (200 rows, LR halved, to 100B) are "
                "checkpoints of one un-annealed run per shape, not independent runs: a "
                "DataWarning says so; never pool them with cooldown rows. Shapes of similar N "
                "differ in loss: shallow-wide shapes (768x3, 2560x8, 1792x7) sit above an N-only "
                "law. Authors' cooldown fit (approach 3, Huber delta 1e-3, N with embeddings): "
                "E 2.075, A 225.8, alpha 0.300, B 2.72e5, beta 0.580."
            ),
            options={"schedule": "cooldown"},
            select=_gemstones_schedule,
        ),
    )
}
