"""One registry of sandbox patches (sandbox/patches/__init__.py): each patch declares what in moto it
overrides, and applying it changes exactly that. Checked in a fresh interpreter, since applying the
patches rewrites moto for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys

from sandbox.patches import PATCHES, patch_routes
from tests.conftest import REPO

# Snapshot every attribute of every moto module the sandbox names (and of the classes defined there),
# apply the patches one at a time, and report what each one changed or added.
PROBE = r"""
import importlib, inspect, json, pathlib, re, sys
source = "".join(p.read_text() for p in pathlib.Path("sandbox").rglob("*.py"))
for name in sorted(set(re.findall(r"\bmoto(?:\.[a-z0-9_]+)+", source))):
    while name:
        try:
            importlib.import_module(name)
            break
        except ImportError:
            name = name.rpartition(".")[0]

def snapshot():
    seen = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("moto") or module is None:
            continue
        for key, value in list(vars(module).items()):
            seen[f"{name}.{key}"] = repr(value) if isinstance(value, (int, str, bool, float)) else id(value)
            if inspect.isclass(value) and value.__module__ == name:
                for attr, member in list(vars(value).items()):
                    seen[f"{name}.{key}.{attr}"] = id(member)
    return seen

from sandbox.patches import PATCHES
changed = {}
for patch in PATCHES:
    before = snapshot()
    if patch.apply is not None:
        patch.apply()
    after = snapshot()
    changed[patch.name] = sorted(
        key for key, value in after.items()
        if (key in before and before[key] != value) or (key not in before and key.rpartition(".")[0] in before)
    )
print(json.dumps(changed))
"""


def test_each_patch_overrides_exactly_what_it_declares():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    changed = json.loads(result.stdout.strip().splitlines()[-1])
    declared = {p.name: sorted(o for o in p.overrides if o.startswith("moto.")) for p in PATCHES}
    assert changed == declared
    assert sum(map(len, changed.values())) > 30  # the probe sees the overrides at all


def test_patch_names_and_control_routes_are_unique():
    assert len({p.name for p in PATCHES}) == len(PATCHES)
    assert sum(len(p.routes) for p in PATCHES) == len(patch_routes())
    assert {"tick", "clock", "events", "fault", "attempts"} <= set(patch_routes())


def test_sandbox_patches_lists_every_patch(sandbox_home):
    from tests.conftest import run_cli

    listed = run_cli("sandbox", "patches").stdout.splitlines()
    assert [line.split()[0] for line in listed] == [p.name for p in PATCHES]
