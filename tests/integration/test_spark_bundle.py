"""``make spark-bundle``: the archive EMR Serverless unpacks as ``./project`` is enough to run the job's code."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bundle_imports_the_job_and_reads_the_macro_history_without_the_repository(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    subprocess.run(["make", "-s", "spark-bundle", f"SPARK_BUNDLE={bundle}"], cwd=ROOT, check=True,
                   capture_output=True)
    assert (bundle / "spark_job.py").read_bytes() == (ROOT / "pipelines" / "engine" / "spark_job.py").read_bytes()
    assert (bundle / "spark_etl.py").read_bytes() == (ROOT / "pipelines" / "data" / "spark_etl.py").read_bytes()
    project = tmp_path / "project"
    with tarfile.open(bundle / "loanstress-project.tar.gz") as archive:
        assert not [name for name in archive.getnames() if "__pycache__" in name]
        archive.extractall(project, filter="data")
    probe = ("import pipelines.engine.batches, pipelines.engine.spark_job, pipelines.data.spark_etl; "
             "from pipelines.data.macro import load_history; from pipelines.settings import REPO_ROOT; "
             "print(REPO_ROOT, len(load_history()))")
    # Run from an empty folder with only the unpacked project on the path (as on an EMR executor).
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    root, quarters = ran.stdout.split()
    assert Path(root) == project and int(quarters) > 40
