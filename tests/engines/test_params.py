"""GenerationParams: validation, contradictions and precedence (call > manifest > built-in)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gptstore.engines.params import BUILTIN_DEFAULTS, GenerationParams
from gptstore.errors import InvalidParams, UsageError
from gptstore.manifest import GenerationDefaults


def test_builtin_defaults_are_greedy():
    resolved = GenerationParams().resolve()
    assert resolved.model_dump(exclude_none=True) == {
        "strategy": "greedy", "max_new_tokens": 256, "repetition_penalty": 1.0, "stop": []}


def test_call_wins_over_manifest_wins_over_builtin():
    manifest = GenerationDefaults(strategy="sample", temperature=0.7, max_new_tokens=40, stop=["\n"])
    resolved = GenerationParams(temperature=0.3).resolve(manifest)
    assert (resolved.strategy, resolved.temperature, resolved.max_new_tokens, resolved.stop) == ("sample", 0.3, 40, ["\n"])
    assert resolved.top_k == BUILTIN_DEFAULTS["top_k"] and resolved.top_p == BUILTIN_DEFAULTS["top_p"]
    assert GenerationParams(stop=[]).resolve(manifest).stop == []  # an explicit empty list wins too


def test_sampling_knobs_imply_sample_and_beams_imply_beam():
    assert GenerationParams(top_p=0.9).resolve().strategy == "sample"
    assert GenerationParams(num_beams=3).resolve().strategy == "beam"
    assert GenerationParams(strategy="beam").resolve().num_beams == 4


def test_manifest_knobs_that_do_not_fit_the_call_strategy_are_ignored():
    manifest = GenerationDefaults(strategy="sample", temperature=0.7, top_k=10)
    resolved = GenerationParams(strategy="greedy").resolve(manifest)
    assert resolved.strategy == "greedy" and resolved.temperature is None and resolved.top_k is None
    beam = GenerationParams(strategy="beam").resolve(GenerationDefaults(num_beams=1))
    assert beam.num_beams == 4


def test_manifest_strategy_is_inferred_from_its_knobs():
    assert GenerationParams().resolve(GenerationDefaults(temperature=0.5)).strategy == "sample"
    assert GenerationParams().resolve({"num_beams": 2, "max_new_tokens": 9}).num_beams == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "greedy", "temperature": 0.7}, "temperature applies to strategy 'sample', not 'greedy'"),
    ({"strategy": "beam", "top_k": 5, "top_p": 0.5}, "top_k, top_p apply to strategy 'sample', not 'beam'"),
    ({"strategy": "beam", "num_beams": 1}, "beam search needs num_beams >= 2"),
    ({"strategy": "sample", "num_beams": 4}, "num_beams=4 needs strategy='beam'"),
    ({"strategy": "sample", "temperature": 0}, "temperature must be > 0 for sampling"),
    ({"temperature": -1}, "temperature must be > 0 for sampling"),
    ({"temperature": 0.5, "num_beams": 3}, "contradict each other"),
    ({"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
    ({"max_new_tokens": 0}, "max_new_tokens: Input should be greater than or equal to 1"),
    ({"stop": ["ok", ""]}, "stop strings must not be empty"),
    ({"strategy": "nucleus"}, "strategy: Input should be 'greedy', 'beam' or 'sample'"),
    ({"temprature": 0.5}, "unknown parameter 'temprature' (did you mean 'temperature'?)"),
])
def test_contradictions_and_bad_values_are_clear_errors(kwargs, message):
    with pytest.raises(InvalidParams) as caught:
        GenerationParams(**kwargs)
    assert message in str(caught.value)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2


def test_seed_and_num_beams_one_are_fine_with_greedy():
    resolved = GenerationParams(strategy="greedy", num_beams=1, seed=3).resolve()
    assert resolved.seed == 3 and resolved.num_beams is None


def test_coerce_merges_an_object_a_dict_and_keywords():
    base = GenerationParams(max_new_tokens=5, stop=["x"])
    merged = GenerationParams.coerce(base, max_new_tokens=7, temperature=None)
    assert merged.max_new_tokens == 7 and merged.stop == ["x"]
    assert GenerationParams.coerce({"seed": 1}).seed == 1
    with pytest.raises(InvalidParams):
        GenerationParams.coerce("greedy")


def test_every_field_has_a_description_for_the_cli_help():
    assert all(field.description for field in GenerationParams.model_fields.values())


def test_params_are_frozen():
    params = GenerationParams()
    with pytest.raises(ValidationError, match="Instance is frozen"):
        params.strategy = "beam"
    assert params.strategy is None


def test_one_strategy_vocabulary_for_manifests_and_calls():
    """``Strategy`` is defined once (manifest.py): a manifest's default and a call accept the same
    names, and each has the knobs it uses."""
    from typing import get_args

    from gptstore.engines import params
    from gptstore.manifest import Strategy

    assert params.Strategy is Strategy and set(get_args(Strategy)) == set(params.APPLIES)
    for name in get_args(Strategy):
        assert GenerationParams(strategy=name).resolve(GenerationDefaults(strategy=name)).strategy == name
    with pytest.raises(InvalidParams):
        GenerationParams(strategy="nucleus")
    with pytest.raises(ValidationError):
        GenerationDefaults(strategy="nucleus")
