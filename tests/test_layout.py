"""Project conventions that must stay true: package layout and ARCHITECTURE.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_models_importable_only_as_bayescale_models():
    # From the repository root, a top-level `models` package would duplicate bayescale.models.
    proc = subprocess.run([sys.executable, "-c", "import models"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0, "models/ must not be importable as a top-level package"
    import bayescale.models

    assert Path(bayescale.models.__file__).parent == ROOT / "models"


def test_import_does_not_start_jax():
    code = "import sys, bayescale, bayescale.data, bayescale.cli; assert 'jax' not in sys.modules, 'jax imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_architecture_module_map_lists_every_module():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    modules = [p for p in (ROOT / "bayescale").rglob("*.py") if not p.name.startswith("_")]
    modules += [p for p in (ROOT / "models").glob("*.py") if not p.name.startswith("_")]
    missing = [str(p.relative_to(ROOT)) for p in modules if str(p.relative_to(ROOT)) not in text]
    assert not missing, f"ARCHITECTURE.md does not mention {missing}"
    listed = set(re.findall(r"`((?:bayescale|models)/[\w/]+\.py)`", text))
    stale = [p for p in listed if not (ROOT / p).exists()]
    assert not stale, f"ARCHITECTURE.md lists modules that do not exist: {stale}"


def test_every_registered_law_is_one_file_in_models():
    from bayescale.models import _REGISTRY

    for name, target in _REGISTRY.items():
        module = target.split(":")[0]
        assert (ROOT / "models" / f"{module}.py").exists(), name


def test_public_functions_are_not_shadowed_by_submodules():
    # `bayescale.fit` must stay the function even after every submodule has been imported
    # (importing a submodule binds its name on the package).
    import importlib
    import pkgutil
    import types

    import bayescale

    for info in pkgutil.walk_packages(bayescale.__path__, "bayescale."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)
    for name in bayescale.__all__:
        value = getattr(bayescale, name)
        if name not in ("datasets", "plots"):  # the two public modules
            assert not isinstance(value, types.ModuleType), f"bayescale.{name} is a module, not the API object"
