"""The built wheel carries what a user needs: ``resnet train --recipe NAME`` from any folder.

The wheel is built from the checkout and unpacked into a fresh folder that comes first on the
path, so the installed copy (not the checkout) answers; its dependencies (torch, ...) are the
test environment's. The test fails if the recipes are missing from the wheel.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_recipes_and_trains_by_name(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("resnet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "resnet/recipes/fashion-mnist.yaml" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    npz = ROOT / "tests" / "engine"  # any small dataset: a generated .npz
    sys.path.insert(0, str(npz))
    from engine_helpers import make_npz

    data = make_npz(elsewhere / "bands.npz", train=64, test=32)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = (
        "import sys, resnet; from resnet.cli import main; print(resnet.__file__);"
        "sys.exit(main(sys.argv[1:]))"
    )
    args = ["train", "--recipe", "fashion-mnist", "--dataset", str(data), "--max-steps", "1",
            "--device", "cpu", "--no-progress", "--runs-dir", "runs"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=elsewhere, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.splitlines()[0].startswith(str(site))  # the wheel's copy ran
    assert (elsewhere / "runs" / "resnet9_slim-bands" / "config.yaml").is_file()
    listed = subprocess.run([sys.executable, "-c", code, "train", "--list-recipes"],
                            cwd=elsewhere, env=env, capture_output=True, text=True)  # fmt: skip
    assert "fashion-mnist" in listed.stdout and "cifar10-paper" in listed.stdout
    # Package data beside the code: ImageNet's WordNet ids, read by the installed copy.
    assert "resnet/data/imagenet_wnids.txt" in names
    read = subprocess.run(
        [sys.executable, "-c", "from resnet.data.imagenet import imagenet_wnids as w; "
         "print(len(w()), w()[0])"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert read.stdout.split() == ["1000", "n01440764"], read.stderr[-2000:]
