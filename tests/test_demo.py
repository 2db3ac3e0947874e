"""`gptstore demo` (what `make demo` runs), end to end in a temporary library."""

from __future__ import annotations

import re

import pytest

from gptstore.errors import DemoFailed, UsageError


@pytest.mark.slow
def test_demo_end_to_end(run_cli, gptstore_home, tmp_path):
    from gptstore import verify
    from gptstore.library import Library

    result = run_cli("demo", "--workdir", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    out = result.output
    steps = re.findall(r"^==> \[(\d+)\] (.+)$", out, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, 11))
    summary = out[out.index("\nSummary\n"):]
    assert all(title in summary for _, title in steps) and re.search(r"total\s+\d+\.\ds", summary)
    # the fine-tune is clearly better than its base on held-out topic text
    base, tuned, ratio = map(float, re.search(
        r"held-out perplexity\s+base ([\d.]+) -> fine-tuned ([\d.]+) \(ratio ([\d.]+)\)", summary).groups())
    assert tuned < base and ratio == pytest.approx(tuned / base, abs=2e-3) and ratio < 0.8
    # pulled from the store, verified (signed by the demo key), claim re-measured
    assert re.search(r"fine-tuned\s+demo/cli-docs:1.0.0 sha256:[0-9a-f]{12} \(signed by [0-9a-f]{16}, pulled", summary)
    assert re.search(r"verified\s+integrity, authenticity, safety ok", summary)
    assert re.search(r"claim check\s+holds", summary)
    library = Library()
    pulled = library.get("demo/cli-docs:1.0.0")
    assert verify(pulled, library=library, full=True).ok
    assert pulled.manifest.pricing.model == "per_1k_tokens" and pulled.manifest.metrics
    assert (tmp_path / "demo" / "store" / "refs" / "demo" / "cli-docs" / "1.0.0").is_file()
    # all three strategies produced text
    for strategy in ("greedy", "beam", "sample"):
        text = re.search(rf"^    {strategy}\s+-> '(.*)'$", out, re.M).group(1)
        assert text.strip(), strategy


def test_demo_fails_loudly_when_the_fine_tune_does_not_learn(gptstore_home, tmp_path, monkeypatch):
    import gptstore.demo as demo

    monkeypatch.setattr(demo, "MAX_RATIO", 0.0)  # no fine-tune is that good
    lines: list[str] = []
    with pytest.raises(DemoFailed, match=r"the fine-tune is not clearly better than its base .* needs < 0"):
        demo.run_demo(tmp_path / "demo", echo=lines.append, base_steps=5, finetune_steps=1)
    assert any("fine-tuned perplexity" in line for line in lines)


def test_demo_keeps_out_of_directories_it_did_not_make(tmp_path):
    from gptstore.demo import run_demo

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="holds notes.txt, which the demo did not write"):
        run_demo(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
