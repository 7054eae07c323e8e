"""Resuming never runs code planted in a checkpoint (DCP metadata and entries are read restricted)."""

import os
import pickle
import shutil

import pytest

from llmkit.cli import main
from llmkit.errors import LlmkitError
from llmkit.train.dcp_reader import read_dcp_metadata

BASE = ["--model", "tiny-llama", "--batch.seq_len", "16", "--batch.batch_size", "2", "--schedule.warmup_steps", "1",
        "--no-progress"]


class _Payload:
    """Unpickling this runs `touch MARKER` (what an attacker's 65-byte .metadata does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(dcp_dir, marker):
    (dcp_dir / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))


@pytest.fixture
def finished_run(prepared_data, tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(prepared_data), "--out", str(out), "--max-steps", "2",
                 "--save-every", "2", *BASE]) == 0
    return out


def test_resume_dir_with_planted_metadata_runs_nothing(finished_run, prepared_data, tmp_path, capsys):
    marker = tmp_path / "pwned"
    checkpoint = finished_run / "checkpoints" / "step-000002"
    _plant(checkpoint / "dcp", marker)
    code = main(["pretrain", "--data", str(prepared_data), "--out", str(tmp_path / "again"), "--max-steps", "3",
                 "--resume", str(checkpoint), *BASE])
    assert code == 2 and not marker.exists()
    assert "posix.system" in capsys.readouterr().err


def test_resume_auto_with_planted_step_dir_runs_nothing(finished_run, prepared_data, tmp_path):
    marker = tmp_path / "pwned"
    planted = finished_run / "checkpoints" / "step-999999"
    shutil.copytree(finished_run / "checkpoints" / "step-000002", planted)
    _plant(planted / "dcp", marker)
    code = main(["pretrain", "--data", str(prepared_data), "--out", str(finished_run), "--max-steps", "3",
                 "--resume", "auto", *BASE])
    assert code == 2 and not marker.exists()


def test_genuine_metadata_reads_and_paths_outside_are_refused(finished_run):
    data = (finished_run / "checkpoints" / "step-000002" / "dcp" / ".metadata").read_bytes()
    metadata = read_dcp_metadata(data)
    info = next(iter(metadata.storage_data.values()))
    info.relative_path = "../../../etc/passwd"
    with pytest.raises(LlmkitError, match="outside"):
        read_dcp_metadata(pickle.dumps(metadata))
