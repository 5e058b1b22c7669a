"""The shapes model: saved in the diffusers layout and loaded back exactly (float16 storage);
the training script records its recipe, and a v-prediction target is what it learns."""

import subprocess
import sys

import torch

from vmc_shapes import model as shapes_model


def test_save_and_load_round_trip(tmp_path):
    unet, text, tok = shapes_model.build(seed=3)
    folder = tmp_path / "weights"
    shapes_model.save_pretrained(folder, unet, text, {"note": "test"})
    unet2, text2, tok2 = shapes_model.load(folder)
    for a, b in ((unet, unet2), (text, text2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        for name in sa:
            assert torch.equal(sa[name].half().float(), sb[name]), name  # stored in float16
    assert shapes_model.training_record(folder) == {"note": "test"}
    assert unet2.config.sample_size == shapes_model.SIZE
    assert torch.equal(tok2(["a red circle is moving"]), tok(["a red circle is moving"]))
    assert not (tmp_path / "weights.tmp").exists()


def test_training_script_runs_and_records_its_recipe(tmp_path):
    out = tmp_path / "w"
    subprocess.run([sys.executable, "-m", "vmc_shapes.train", "--steps", "2", "--batch", "2", "--clips", "4",
                    "--device", "cpu", "--out", str(out)], check=True, capture_output=True)
    record = shapes_model.training_record(out)
    assert record["steps_done"] == 2 and record["recipe"]["batch"] == 2 and record["finished"] is True
    assert record["final_loss_mean_last_200"] > 0
    assert shapes_model.load(out)[0].config.sample_size == shapes_model.SIZE


def test_the_schedule_is_v_prediction():
    # The backend converts v to epsilon; a schedule saying otherwise would be converted wrongly.
    assert shapes_model.SCHEDULER["prediction_type"] == "v_prediction"
