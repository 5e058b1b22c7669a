"""The shapes model: its recipe trains (loss goes down on a fixed batch), saves and loads exactly."""

import subprocess
import sys

import torch

from vmc_shapes import model as shapes_model


def test_save_and_load_round_trip(tmp_path):
    unet, text, tok = shapes_model.build(seed=3)
    path = tmp_path / "w.safetensors"
    shapes_model.save(path, unet, text, {"note": "test"})
    unet2, text2, _ = shapes_model.load(path)
    for a, b in ((unet, unet2), (text, text2)):
        for (name, p), (name2, p2) in zip(a.state_dict().items(), b.state_dict().items()):
            assert name == name2 and torch.equal(p.half().float(), p2)  # stored in float16
    meta = shapes_model.metadata(path)
    assert meta["note"] == "test" and meta["unet_config"]["sample_size"] == 32


def test_training_script_runs_and_records_its_recipe(tmp_path):
    out = tmp_path / "w.safetensors"
    subprocess.run([sys.executable, "-m", "vmc_shapes.train", "--steps", "2", "--batch", "2", "--clips", "4",
                    "--device", "cpu", "--out", str(out)], check=True, capture_output=True)
    meta = shapes_model.metadata(out)
    assert meta["steps_done"] == 2 and meta["recipe"]["batch"] == 2
    assert meta["final_loss_mean_last_200"] > 0
