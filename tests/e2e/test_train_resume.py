"""Train resumes after its whole worker is SIGKILLed in the middle of an epoch: no clean-up
runs, the message is redelivered once the lease lapses, and the next worker carries on from the
last finished epoch's checkpoint, not from the start."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.conftest import Workers, wait_for_job, wait_until
from tests.e2e.test_worker_loss import loss_env
from tests.train.conftest import CLASSES, IMAGE_SIZE, INPUT_SIZE, SPLIT_SIZES, TINY_MODEL
from tests.train.synthetic import write_image_folders
from tigertrap.core.jobs import StageRequest, job_status, submit_job

TIMEOUT_S = 600
#: Four epochs of about a hundred batches each: long enough to be killed inside one.
TRAINING = {
    "DATA_DIR": "datasets/ds", "CLASSES": CLASSES, "MODEL": TINY_MODEL, "WEIGHTS": "none",
    "INPUT_SIZE": INPUT_SIZE, "FROZ_EPOCH": 2, "BUF": 1, "PROG_STAGE_LEN": 1,
    "PROG_TOT_EPOCH": 2, "MAGNITUDES": [0.1, 0.3], "DROPOUTS": [0.1, 0.3],
    "CLASS_SAMPLES_DEFAULT": 300, "BATCH_SIZE": 8, "SEED": 7, "WANDB_MODE": "disabled",
    "OUTPUT_PATH": "runs/killed", "SAVEFILE": "killed",
}


def test_train_killed_mid_epoch_resumes_from_its_last_checkpoint(
        redis_url: str, data_root: Path, tmp_path: Path):
    write_image_folders(data_root / "datasets" / "ds", CLASSES, SPLIT_SIZES, size=IMAGE_SIZE,
                        seed=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(loss_env(redis_url, data_root), logs)
    try:
        first = workers.start("train", pool="solo")
        job = submit_job([StageRequest(stage="train", params=TRAINING)])

        def inside_second_epoch() -> float | None:
            status = job_status(job)  # progress is (epochs done, epochs) at batch ends
            return status.updated if (status.processed, status.total) == (1, 4) else None

        first_report = wait_until(inside_second_epoch, TIMEOUT_S, "the second epoch")
        wait_until(lambda: (inside_second_epoch() or 0) > first_report, TIMEOUT_S,
                   "a later batch of the second epoch")
        workers.kill_hard(first)
        (state_file,) = (data_root / "runs" / "killed").rglob("state.json")
        at_kill = json.loads(state_file.read_text())  # whole: written atomically
        workers.start("train", pool="solo")
        status = wait_for_job(job, workers, TIMEOUT_S)
    finally:
        workers.stop_all()

    assert status.status == "succeeded", status.error or workers.logs()
    assert status.results["train"]["epochs"] == 4
    run_dir = data_root / status.results["train"]["run_dir"]
    with (run_dir / "history.csv").open(newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2", "3", "4"]
    assert at_kill["epochs_done"] == 1 and at_kill["checkpoint"]
    final = json.loads((run_dir / "state.json").read_text())
    # the same run carried on (a fresh start draws a new run id) from the epoch it had done
    assert final["run_id"] == at_kill["run_id"] and final["epochs_done"] == 4
    assert final["history"][0] == at_kill["history"][0]
    assert (data_root / "models" / "classifiers" / "killed" / "manifest.json").is_file()
