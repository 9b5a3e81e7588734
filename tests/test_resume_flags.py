"""resume_flags.py: a resume that changes a flag shaping training is refused, or reported when allowed."""
import dataclasses

import pytest

import resume_flags
import train


def test_changed_schedule_is_refused_naming_flag_old_and_new():
    started = train.TrainConfig(init_learning_rate=1e-4, lr_decay_steps=100)
    state = {"seed": 0, "batch_size": 8, "flags": resume_flags.recorded(started)}
    resume_flags.check_resume(state, started, "ckpt-5", report=pytest.fail)  # same flags: silent
    changed = dataclasses.replace(started, init_learning_rate=1e-3, lr_decay_steps=50, max_steps=7, nb_workers=1)
    with pytest.raises(resume_flags.FlagChangeError) as caught:
        resume_flags.check_resume(state, changed, "ckpt-5", report=pytest.fail)
    assert str(caught.value) == (
        "resuming ckpt-5 with changed flags (--init_learning_rate was 0.0001, now 0.001; --lr_decay_steps was 100, "
        "now 50); rerun with --init_learning_rate=0.0001 --lr_decay_steps=100, or add --allow_flag_change to "
        "continue with the new values, or give another --checkpoint_path")
    reports = []
    resume_flags.check_resume(state, dataclasses.replace(changed, allow_flag_change=True), "ckpt-5", reports.append)
    assert reports == ["continuing ckpt-5 with changed flags (--allow_flag_change): --init_learning_rate was "
                       "0.0001, now 0.001; --lr_decay_steps was 100, now 50"]


def test_states_from_before_the_flag_record_still_check_seed_and_batch_size():
    old_state = {"seed": 3, "batch_size": 2, "model": {}}
    resume_flags.check_resume(old_state, train.TrainConfig(seed=3, batch_size=2, lr_decay_rate=0.5), "ckpt-1",
                              report=pytest.fail)
    with pytest.raises(resume_flags.FlagChangeError, match="--seed was 3, now 4"):
        resume_flags.check_resume(old_state, train.TrainConfig(seed=4, batch_size=2), "ckpt-1", report=pytest.fail)


@pytest.mark.parametrize("name, value", [("color_jitter", 0.4), ("degrade", 0.5)])
def test_a_flag_record_from_before_a_pixel_flag_means_it_was_off(name, value):
    started = train.TrainConfig()
    state = {"seed": 0, "batch_size": 8, "flags": {flag: recorded for flag, recorded in resume_flags.recorded(started).items()
                                                   if flag != name}}
    resume_flags.check_resume(state, started, "ckpt-5", report=pytest.fail)
    with pytest.raises(resume_flags.FlagChangeError, match=f"--{name} was 0.0, now {value}"):
        resume_flags.check_resume(state, dataclasses.replace(started, **{name: value}), "ckpt-5", report=pytest.fail)
