"""Appearance-invariant prompts: subject + action, no place/background/context."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vmc_cli.method.prompts import appearance_invariant


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # The paper's two examples.
        ("A bird is flying above a lake in the forest", "A bird is flying"),
        ("a cat is roaring on the grass under the tree", "a cat is roaring"),
        # Trailing comma-separated context.
        ("a car is moving, underwater", "a car is moving"),
        ("a car is moving, in Van Gogh style", "a car is moving"),
        ("airplanes flying in the sky, cinematic lighting, 4k", "airplanes flying"),
        ("the waves are crashing, at sunset", "the waves are crashing"),
        # Nothing to drop.
        ("two sharks are moving", "two sharks are moving"),
        ("pills are falling.", "pills are falling."),
        ("a car is turning around", "a car is turning around"),
        # Place phrases after the action.
        ("a panda bear is walking on the rock", "a panda bear is walking"),
        ("a man is standing next to a car", "a man is standing"),
        ("a man is walking in front of a building", "a man is walking"),
        ("a cat is jumping onto the table", "a cat is jumping"),
        ("a car is moving underwater", "a car is moving"),
        # Time of day.
        ("a man is playing guitar in the park at night", "a man is playing guitar"),
        ("a man is playing guitar at night", "a man is playing guitar"),
        ("a dog is running in the morning", "a dog is running"),
        ("a car driving in the city during the day.", "a car driving."),
        ("At night, a man is walking on the street", "a man is walking"),
        # Leading place clause.
        ("In the forest, a bird is flying", "a bird is flying"),
        # Without an auxiliary verb.
        ("a bird flying above a lake", "a bird flying"),
        ("sharks swim in the ocean", "sharks swim"),
        ("there is a bird flying in the sky", "there is a bird flying"),
        # The subject keeps its count, adjectives and its own description.
        ("three small red balls are rolling across the floor", "three small red balls are rolling"),
        ("a man in a red shirt is dancing on the stage", "a man in a red shirt is dancing"),
        ("a dog, a cat and a bird are running in the field", "a dog, a cat and a bird are running"),
        # A trailing clause that continues the action stays, its place goes.
        ("a dog is running, wagging its tail, in the park", "a dog is running, wagging its tail"),
        # Casing, final punctuation, whitespace.
        ("A Red CAR is Driving through the desert!", "A Red CAR is Driving!"),
        ("  a   dog   is  running  ", "a dog is running"),
        ("A bird is flying above a lake in the forest.", "A bird is flying."),
    ],
)
def test_appearance_invariant(prompt: str, expected: str) -> None:
    assert appearance_invariant(prompt) == expected


@pytest.mark.parametrize("prompt", ["in the park", "at night", "underwater", ", ,", "above"])
def test_never_empty(prompt: str) -> None:
    out = appearance_invariant(prompt)
    assert out
    assert out == " ".join(prompt.split())


@pytest.mark.parametrize(
    "prompt",
    [
        "A bird is flying above a lake in the forest",
        "a man is playing guitar in the park at night",
        "two sharks are moving",
        "pills are falling.",
    ],
)
def test_idempotent_and_deterministic(prompt: str) -> None:
    once = appearance_invariant(prompt)
    assert appearance_invariant(prompt) == once
    assert appearance_invariant(once) == once


def test_output_is_a_prefix_of_kept_words() -> None:
    """Words are only dropped, never rewritten or reordered."""
    prompt = "Two Sharks are SWIMMING slowly above the coral reef at sunset"
    out = appearance_invariant(prompt)
    assert out == "Two Sharks are SWIMMING slowly"
    assert prompt.startswith(out)


def test_module_is_light() -> None:
    """The module is on the CLI's fast path: importing it must not pull in torch."""
    code = (
        "import sys; import vmc_cli.method.prompts; "
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'diffusers') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
