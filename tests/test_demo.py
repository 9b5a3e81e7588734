"""demo.py: rerun rules (fast) and the whole chain of real commands at toy size (slow)."""
import dataclasses
import json
from pathlib import Path

import pytest

import demo

REPO_ROOT = Path(__file__).resolve().parents[1]


def _paths(tmp_path: Path) -> demo.DemoPaths:
    return demo.default_paths(tmp_path)


def test_foreign_files_in_data_folder_are_left_alone(tmp_path):
    paths = _paths(tmp_path)
    paths.data.mkdir(parents=True)
    (paths.data / "mine.jpg").write_bytes(b"not the demo's")
    with pytest.raises(demo.DemoError, match="did not write"):
        demo.prepare_folders(demo.PROFILES["smoke"], paths, fresh=False)
    assert (paths.data / "mine.jpg").is_file()


def test_changed_settings_regenerate_and_retrain(tmp_path):
    config = demo.PROFILES["smoke"]
    paths = _paths(tmp_path)
    demo._write_marker(config, paths, complete=True)
    paths.model.mkdir(parents=True)
    assert demo.prepare_folders(config, paths, fresh=False) == (True, True)
    assert paths.model.is_dir(), "same settings: the checkpoints are kept for train.py to resume"

    changed_training = dataclasses.replace(config, max_steps=config.max_steps + 1)
    assert demo.prepare_folders(changed_training, paths, fresh=False) == (True, False)
    assert not paths.checkpoints.exists()

    paths.model.mkdir(parents=True)
    changed_data = dataclasses.replace(config, count=config.count + 1)
    assert demo.prepare_folders(changed_data, paths, fresh=False) == (False, False)
    assert not paths.data.exists() and not paths.checkpoints.exists()


def test_a_new_scene_generator_regenerates_and_retrains(tmp_path, monkeypatch):
    config = demo.PROFILES["smoke"]
    paths = _paths(tmp_path)
    demo._write_marker(config, paths, complete=True)
    paths.model.mkdir(parents=True)
    assert demo.prepare_folders(config, paths, fresh=False) == (True, True)
    monkeypatch.setattr(demo, "PLATE_SCENES_VERSION", demo.PLATE_SCENES_VERSION + 1)
    assert demo.prepare_folders(config, paths, fresh=False) == (False, False)
    assert not paths.data.exists() and not paths.checkpoints.exists()


def test_seed_flag_sets_the_scenes_and_training_seed():
    assert demo.demo_config(demo._parse_args([])) == demo.PROFILES["full"]
    seeded = demo.demo_config(demo._parse_args(["--seed", "3"]))
    assert seeded == dataclasses.replace(demo.PROFILES["full"], seed=3)
    assert seeded.data_settings()["seed"] == 3  # new scenes: a rerun with another seed regenerates


def test_interrupted_generation_is_redone(tmp_path):
    config = demo.PROFILES["smoke"]
    paths = _paths(tmp_path)
    demo._write_marker(config, paths, complete=False)
    (paths.data / "plates").mkdir()
    assert demo.prepare_folders(config, paths, fresh=False) == (False, False)
    assert not paths.data.exists()


def test_fresh_removes_only_the_demo_folders(tmp_path):
    paths = _paths(tmp_path)
    for folder in (paths.data, paths.checkpoints, paths.outputs, tmp_path / "data" / "other"):
        folder.mkdir(parents=True, exist_ok=True)
    demo.prepare_folders(demo.PROFILES["smoke"], paths, fresh=True)
    assert not paths.data.exists() and not paths.checkpoints.exists() and not paths.outputs.exists()
    assert (tmp_path / "data" / "other").is_dir()


# --------------------------------------------------------------------------- fine-tune on the user's photos
def _write_plate_photos(folder: Path, count: int) -> None:
    """count tiny photos in the 'plate' format, one plate each (enough for stats and split)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    for index in range(count):
        image = np.full((96, 128, 3), 90, np.uint8)
        cv2.rectangle(image, (30, 40), (90, 60), (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"car{index}.jpg"), image)
        (folder / f"car{index}.txt").write_text("30 40 90 40 90 60 30 60 AB123\n")


def _listing(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_finetune_refuses_outputs_that_overlap_inputs(tmp_path):
    photos = tmp_path / "root" / "data" / "finetune" / "mine"
    paths = demo.finetune_paths(tmp_path / "root")
    with pytest.raises(demo.DemoError, match="overlap"):
        demo.check_not_inputs([paths.data], [photos])  # output holds the input
    with pytest.raises(demo.DemoError, match="overlap"):
        demo.check_not_inputs([paths.outputs], [tmp_path / "root"])  # output inside the input
    demo.check_not_inputs([paths.data, paths.outputs], [tmp_path / "photos", tmp_path / "model"])


def test_finetune_data_inside_its_own_output_is_refused_before_writing(tmp_path, capsys):
    root = tmp_path / "root"
    photos = root / "data" / "finetune" / "mine"
    _write_plate_photos(photos, 6)
    before = _listing(root)
    assert demo.main(["--profile", "smoke", "--root", str(root), "--finetune_data", str(photos),
                      "--base_model", str(tmp_path / "model")]) == 1
    assert "overlap" in capsys.readouterr().err
    assert _listing(root) == before


@pytest.mark.parametrize("case, reason", [("missing", "not a folder"), ("no annotations", "cannot detect"),
                                          ("bad lines", "no usable images"), ("no images", "image")])
def test_unusable_photos_give_one_line_and_exit_2(tmp_path, capsys, case, reason):
    photos = tmp_path / "photos"
    if case != "missing":
        _write_plate_photos(photos, 2)
    if case == "no annotations":
        for path in photos.glob("*.txt"):
            path.unlink()
    elif case == "bad lines":
        for path in photos.glob("*.txt"):
            path.write_text("30 40 30 40 30 40 30 40 AB123\n")  # zero area: every image skipped
    elif case == "no images":
        for path in photos.glob("*.jpg"):
            path.unlink()
    status = demo.main(["--profile", "smoke", "--root", str(tmp_path / "root"), "--finetune_data", str(photos),
                        "--base_model", str(tmp_path / "model")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("demo.py: your photos are not usable:"), err
    assert reason in err[0]
    assert not (tmp_path / "root").exists()


def test_too_few_photos_to_split_exit_2(tmp_path, capsys):
    photos = tmp_path / "photos"
    _write_plate_photos(photos, demo.MIN_FINETUNE_IMAGES - 1)
    (tmp_path / "model").mkdir()
    assert demo.main(["--profile", "smoke", "--root", str(tmp_path / "root"), "--finetune_data", str(photos),
                      "--base_model", str(tmp_path / "model")]) == 2
    assert "at least" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [["--finetune_data", "a", "--finetune_train", "b", "--finetune_test", "c"],
                                       ["--finetune_train", "b"], ["--base_model", "m"],
                                       ["--rehearsal_share", "0.5"], ["--finetune_data", "a", "--rehearsal_data", "s"],
                                       ["--finetune_data", "a", "--rehearsal_share", "1"]])
def test_finetune_arguments_that_do_not_fit_together(arguments):
    with pytest.raises(SystemExit) as raised:
        demo.main(arguments)
    assert raised.value.code == 2


@pytest.mark.slow
def test_smoke_demo_then_finetune_on_a_tiny_folder_then_on_a_given_split(tmp_path, capsys):
    for needed in ("train.py", "eval.py", "data_preprocessor.py"):
        if not (REPO_ROOT / needed).is_file():
            pytest.skip(f"{needed} is not there yet")
    photos = tmp_path / "photos"
    _write_plate_photos(photos, 10)
    before = _listing(photos)
    root = tmp_path / "root"
    # No demo model under root yet: the normal (smoke) demo runs first, every command of it.
    assert demo.main(["--profile", "smoke", "--root", str(root), "--finetune_data", str(photos)]) == 0
    out = capsys.readouterr().out
    demo_part = out.split("the normal demo trains it first", 1)[1]
    for command in ("$ python synthetic_data.py plates", "$ python data_preprocessor.py split",
                    "$ python train.py", "$ python eval.py"):
        assert command in demo_part
    demo_paths = _paths(root)
    summary = json.loads((demo_paths.outputs / "summary.json").read_text())
    assert summary["evaluation"]["images"] == len(list(demo_paths.test.glob("*.jpg")))
    for command in ("$ python data_preprocessor.py stats", "$ python data_preprocessor.py split",
                    "--pretrained_model_path=", "$ python eval.py"):
        assert command in out
    assert "test photos all correct" in out and "outputs/finetune" in out
    # The normal demo rerun keeps the data and the model and only evaluates again.
    assert demo.main(["--profile", "smoke", "--root", str(root)]) == 0
    second = capsys.readouterr().out
    assert "reusing the demo data" in second and "$ python eval.py" in second
    assert "test images all correct" in second and "hmean" in second
    assert "$ python synthetic_data.py" not in second
    paths = demo.finetune_paths(root)
    assert len(list(paths.train.glob("*.jpg"))) == 8 and len(list(paths.test.glob("*.jpg"))) == 2
    assert (paths.model / "latest").is_file()
    summary = json.loads((paths.outputs / "summary.json").read_text())
    assert summary["evaluation"]["images"] == 2
    assert _listing(photos) == before, "the user's folder is only read"

    # Already split data: used in place (no split), the split folder above is its input now.
    assert demo.main(["--profile", "smoke", "--root", str(tmp_path / "root2"), "--finetune_train",
                      str(paths.train), "--finetune_test", str(paths.test), "--base_model", str(paths.model)]) == 0
    out = capsys.readouterr().out
    assert "$ python data_preprocessor.py split" not in out and "$ python synthetic_data.py" not in out
    summary = json.loads((demo.finetune_paths(tmp_path / "root2").outputs / "summary.json").read_text())
    assert summary["evaluation"]["images"] == 2


def test_base_backbone_is_read_from_the_newest_checkpoint(tmp_path):
    (tmp_path / "ckpt-7").mkdir()
    (tmp_path / "ckpt-7" / "state.json").write_text(json.dumps({"model": {"backbone": "resnet50", "input_size": 512}}))
    (tmp_path / "latest").write_text("ckpt-7\n")
    assert demo.base_backbone(tmp_path) == "resnet50"
    assert demo.newest_step(tmp_path) == 0  # state.json without a step
    (tmp_path / "ckpt-7" / "state.json").write_text(json.dumps({"step": 7, "model": {"backbone": "resnet50"}}))
    assert demo.newest_step(tmp_path) == 7
    assert demo.newest_step(tmp_path / "absent") == 0
    (tmp_path / "latest").write_text("ckpt-8\n")
    with pytest.raises(demo.DemoError, match="not a finished train.py checkpoint"):
        demo.base_backbone(tmp_path)


def test_rehearsal_scenes_are_the_demos_own_or_generated_or_the_given_folder(tmp_path, monkeypatch):
    paths = _paths(tmp_path / "root")
    generated = []
    monkeypatch.setattr(demo, "generate_and_split", lambda config, where: generated.append(where) or 0.0)
    assert demo.rehearsal_scenes(None, paths, demo.PROFILES["smoke"]) == paths.train  # absent: generated
    assert generated == [paths]
    demo._write_marker(demo.PROFILES["smoke"], paths, complete=True)
    paths.train.mkdir(parents=True)
    assert demo.rehearsal_scenes(None, paths, demo.PROFILES["smoke"]) == paths.train and len(generated) == 1
    assert demo.rehearsal_scenes(tmp_path, paths, demo.PROFILES["smoke"]) == tmp_path
    with pytest.raises(demo.DemoError, match="not a folder"):
        demo.rehearsal_scenes(tmp_path / "absent", paths, demo.PROFILES["smoke"])
    (paths.data / demo.DATA_MARKER).unlink()  # data/demo/ holds what the demo did not finish
    with pytest.raises(demo.DemoError, match="no finished demo scenes"):
        demo.rehearsal_scenes(None, paths, demo.PROFILES["smoke"])
    assert len(generated) == 1, "nothing the user has is generated over"


def test_rehearsal_reaches_train_py_and_the_fine_tune_marker(tmp_path, monkeypatch):
    """The train.py command line and the marker of a fine-tune with --rehearsal_share (the whole chain
    of commands runs in the slow smoke test; train.py's mixing in test_train.py)."""
    commands = []
    monkeypatch.setattr(demo, "run_command", lambda arguments, title: commands.append(arguments) or 0.0)
    base = tmp_path / "base"
    (base / "ckpt-2").mkdir(parents=True)
    (base / "ckpt-2" / "state.json").write_text(json.dumps({"step": 2, "model": {"backbone": "tiny"}}))
    (base / "latest").write_text("ckpt-2\n")
    paths, scenes = demo.finetune_paths(tmp_path / "root"), tmp_path / "scenes"
    config = demo.FINETUNE_PROFILES["smoke"]
    demo.finetune_train(config, tmp_path / "photos", base, paths, (scenes, 0.5))
    demo.finetune_train(config, tmp_path / "photos", base, paths)
    assert f"--rehearsal_data_path={scenes}" in commands[0] and "--rehearsal_share=0.5" in commands[0]
    assert not [argument for argument in commands[1] if argument.startswith("--rehearsal")]
    assert "--color_jitter=0.4" in commands[1]  # the fine-tune does not learn one camera's colours
    source = demo.FinetuneSource(train=tmp_path / "photos", test=tmp_path / "test")
    rehearsal = demo.Rehearsal(0.5, lambda: scenes, scenes)
    demo.split_photos(source, config, paths, rehearsal)
    marker = json.loads((paths.data / demo.FINETUNE_MARKER).read_text())
    assert marker["wanted"]["rehearsal"] == {"share": 0.5, "folder": str(scenes.resolve())}
    assert demo._prepare_finetune_folders(source, config, paths, rehearsal)  # the same choice: kept
    assert not demo._prepare_finetune_folders(source, config, paths, None)  # another: started over
    assert not paths.data.exists()
