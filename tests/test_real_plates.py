"""Fine-tuning on the real plate photos of ../shared/data/plates_dev works end to end (issue 7).

Ten real photos are split 80/20 with the project's own split tool; the session's shared tiny run
(conftest.tiny_trained_run, synthetic boxes) is fine-tuned on the train part from its checkpoint (fresh
optimizer, step 0), and evaluated on held-out real photos with ICDAR scoring. Nothing here promises accuracy (a few steps at 64 px); it proves the path runs
on real files: their sizes, JPEG quirks and annotation lines.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import data_preprocessor
import eval as east_eval
import train

PHOTOS = 10
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fine_tune_on_real_plates_then_evaluate(shared_data, tiny_trained_run, tmp_path):
    plates = shared_data / "plates_dev" / "images"
    if not plates.is_dir():
        pytest.skip("plates_dev is not present")
    photos = tmp_path / "photos"
    photos.mkdir()
    for image_path in sorted(plates.glob("*.jpg"))[:PHOTOS]:
        shutil.copy2(image_path, photos / image_path.name)
        shutil.copy2(image_path.with_suffix(".txt"), photos / f"{image_path.stem}.txt")
    subprocess.run([sys.executable, "data_preprocessor.py", "split", f"--data_path={photos}",
                    f"--train_dir={tmp_path / 'train'}", f"--test_dir={tmp_path / 'test'}", "--ratio=0.8",
                    "--seed=0"], cwd=REPO_ROOT, check=True, capture_output=True)

    common = dict(training_data_path=str(tmp_path / "train"), input_size=64, batch_size=2, backbone="tiny",
                  backbone_weights="none", nb_workers=0, progress=False, annotation_format="plate")
    result = train.run_training(train.TrainConfig(checkpoint_path=str(tmp_path / "tuned"), max_steps=2,
                                                  save_checkpoint_steps=2,
                                                  pretrained_model_path=str(tiny_trained_run["run"]), **common))
    assert result["step"] == 2  # a fine-tune starts at step 0, not at the base run's step 60

    test_images = sorted((tmp_path / "test").glob("*.jpg"))
    assert len(test_images) == 2
    summary = east_eval.run_evaluation(east_eval.EvalConfig(
        test_data_path=str(tmp_path / "test"), model_path=str(tmp_path / "tuned"),
        output_dir=str(tmp_path / "out"), gt_path=str(tmp_path / "test"), annotation_format="plate",
        max_side_len=256))
    evaluation = summary["evaluation"]
    assert evaluation["images"] == 2
    assert evaluation["gt_care"] == 2  # one annotated plate per real photo
    # The figures eval.py reports are icdar.py's on the files it wrote (one scorer, not two).
    scored = subprocess.run([sys.executable, "icdar.py", "evaluate", f"--gt_path={tmp_path / 'test'}",
                             f"--pred_path={tmp_path / 'out'}", "--annotation_format=plate", "--json"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr[-2000:]
    independent = json.loads(scored.stdout.strip().splitlines()[-1])
    print("fine-tuned on real plates:", {key: evaluation[key] for key in ("precision", "recall", "hmean")})
    for key in ("precision", "recall", "hmean", "images", "images_all_correct"):
        assert evaluation[key] == pytest.approx(independent[key], abs=1e-9), key
    for image_path in test_images:
        assert (tmp_path / "out" / f"{image_path.stem}.txt").is_file()
        assert (tmp_path / "out" / image_path.name).is_file()
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["evaluation"]["images"] == 2
    # The real photos' annotations load cleanly through the same loader training used.
    report = data_preprocessor.load_dataset(tmp_path / "train", "plate", strict=True)
    assert len(report.samples) == 8
