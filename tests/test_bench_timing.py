"""bench/timing.py: the alternation order, the medians and the ratio of medians that the speed benchmarks print."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("timing", Path(__file__).resolve().parents[1] / "bench" / "timing.py")
timing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(timing)


def feed(name: str, values: list[float], calls: list[str]):
    it = iter(values)

    def run():
        calls.append(name)
        return next(it)
    return run


def test_alternate_order_medians_and_speed_up(capsys):
    calls: list[str] = []
    med = timing.alternate({"ours": feed("ours", [1.0, 9.0, 2.0], calls),
                            "alt": feed("alt", [6.0, 4.0, (5.0, "note")], calls)}, 3, baseline="alt")
    assert calls == ["ours", "alt"] * 3                       # alternating, never all of one first
    assert med == {"ours": 2.0, "alt": 5.0}
    out = capsys.readouterr().out
    assert "speed-up of ours over alt (ratio of medians): 2.50x" in out
    assert "(min 1.000, max 9.000)" in out and "note" in out and out.count("load average at") == 2


def test_alternate_rate_is_higher_is_faster(capsys):
    timing.alternate({"ours": lambda: 900.0, "plain": lambda: 1000.0}, 2, baseline="plain", rate=True, digits=0)
    assert "speed-up of ours over plain (ratio of medians): 0.90x" in capsys.readouterr().out


@pytest.mark.parametrize("repeats, baseline, word", [(0, None, "repeats"), (2, "other", "baseline")])
def test_alternate_refuses_bad_arguments(repeats, baseline, word):
    with pytest.raises(ValueError, match=word):
        timing.alternate({"ours": lambda: 1.0}, repeats, baseline=baseline)


def test_cpu_line_names_the_bf16_units_what_auto_chose_and_an_isa_cap(monkeypatch):
    import torch

    from latentatlas.training.precision import resolve_precision

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    line = timing.cpu()
    assert line.endswith("; ONEDNN_MAX_CPU_ISA=AVX2")
    assert f"train.precision auto -> {resolve_precision('auto', torch.device('cpu'))}" in line
    if Path("/proc/cpuinfo").is_file():
        flags = {"amx_bf16", "avx512_bf16"} & set(Path("/proc/cpuinfo").read_text().split())
        assert f"bf16 units: {', '.join(sorted(flags)) or 'none'}" in line
