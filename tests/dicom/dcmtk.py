"""Sending DICOM the way a modality does: Part 10 files C-STOREd by dcmtk's ``storescu``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from pydicom import Dataset

from tests.dicom.dicom_factory import to_bytes

STORESCU = "/usr/bin/storescu"


def write_part10(datasets: Iterable[Dataset], directory: Path) -> list[Path]:
    """Each dataset as a Part 10 file in ``directory`` (created), in order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets, start=1):
        path = directory / f"{n:04d}-{ds.SOPInstanceUID}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths


def storescu(orthanc, files: Iterable[Path]) -> None:
    """C-STORE the files to the test Orthanc over one association; fails the test on an error."""
    done = subprocess.run(
        [STORESCU, "-aet", orthanc.scu_aet, "-aec", orthanc.aet, "127.0.0.1", str(orthanc.dicom_port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def storescu_datasets(orthanc, datasets: Iterable[Dataset], directory: Path) -> None:
    storescu(orthanc, write_part10(datasets, directory))
