"""``qrnn-tn simulate``: outputs checked against the dense reference, errors by their messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compiler.unroll import compile_program
from qrnn_tn.cli import main
from qrnn_tn.model import init_params
from tests.reference import dense_run

SPEC = """\
[cell]
io = 2
workspace = 2
stages = 1
[neuron]
degree = 2
order = 2
"""
DICT = {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2, "order": 2}}


@pytest.fixture
def spec_path(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return str(path)


def _run(capsys, *argv):
    code = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _seeded(words, seed=0):
    program = compile_program(DICT, steps=len(words) - 1)
    params = init_params(program, program.spec, torch.Generator().manual_seed(seed))
    return program, params.numpy()


def test_json_matches_the_reference(spec_path, capsys):
    report = _json(capsys, spec_path, "--words", "3,1,0,2", "--seed", "5")
    program, params = _seeded([3, 1, 0, 2], seed=5)
    expect = dense_run(program.dag, params, [3, 1, 0, 2])
    probs = np.array(report["probs"])
    assert report["backend"] == "statevector" and report["words"] == [3, 1, 0, 2]
    np.testing.assert_allclose(probs, expect, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(report["target_prob"], expect[[0, 1, 2], [1, 0, 2]], atol=1e-12)
    assert report["log_likelihood"] == pytest.approx(np.log(report["target_prob"]).sum())


def test_params_file_as_array_or_object(spec_path, tmp_path, capsys):
    program, params = _seeded([0, 1, 2], seed=1)
    as_list, as_dict = tmp_path / "list.json", tmp_path / "dict.json"
    as_list.write_text(json.dumps(params.tolist()))
    by_name = dict(zip([slot.name for slot in program.slots], params.tolist(), strict=True))
    as_dict.write_text(json.dumps(by_name))
    seeded = _json(capsys, spec_path, "--words", "0,1,2", "--seed", "1")
    for path in (as_list, as_dict):
        report = _json(capsys, spec_path, "--words", "0,1,2", "--params", str(path))
        np.testing.assert_allclose(report["probs"], seeded["probs"], rtol=0, atol=1e-15)


def test_words_file_runs_a_batch(spec_path, tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("# two sequences\n3 1 0\n\n0,2 , 1\n")
    report = _json(capsys, spec_path, "--words", str(words), "--dtype", "complex128")
    assert report["words"] == [[3, 1, 0], [0, 2, 1]]
    probs = np.array(report["probs"])
    assert probs.shape == (2, 2, 4)
    for b, seq in enumerate(report["words"]):
        program, params = _seeded(seq)
        np.testing.assert_allclose(probs[b], dense_run(program.dag, params, seq), atol=1e-12)


def test_text_output_lists_every_step(spec_path, capsys):
    code, out, _ = _run(capsys, spec_path, "--words", "3,1,0,2", "--dtype", "float32")
    assert code == 0
    assert "sequence 0: 3 1 0 2" in out and "log-likelihood" in out
    rows = [line.split() for line in out.splitlines() if " -> " in line][1:]
    assert [row[:4] for row in rows] == [
        ["1", "3", "->", "1"],
        ["2", "1", "->", "0"],
        ["3", "0", "->", "2"],
    ]


@pytest.mark.parametrize(
    "words, message",
    [
        ("3,1,4", "position 2: token 4 does not fit in io = 2 bits"),
        ("3", "a sequence needs at least 2"),
        ("3,x", "neither a file nor comma-separated integers"),
        ("1,,2", "position 1: '' is not an integer"),
        ("=-1,2", "position 0: token -1 does not fit"),
    ],
)
def test_bad_words_exit_2(spec_path, capsys, words, message):
    argv = ["--words" + words] if words.startswith("=") else ["--words", words]
    code, out, err = _run(capsys, spec_path, *argv)
    assert code == 2 and out == ""
    assert message in err


def test_bad_words_file_exit_2(spec_path, tmp_path, capsys):
    ragged, empty = tmp_path / "ragged.txt", tmp_path / "empty.txt"
    ragged.write_text("1 2 3\n1 2\n")
    empty.write_text("# nothing\n\n")
    code, _, err = _run(capsys, spec_path, "--words", str(ragged))
    assert code == 2 and "sequence 1: 2 tokens, but sequence 0 has 3" in err
    code, _, err = _run(capsys, spec_path, "--words", str(empty))
    assert code == 2 and "holds no sequences" in err


def test_bad_params_exit_2(spec_path, tmp_path, capsys):
    program, params = _seeded([0, 1])
    names = [slot.name for slot in program.slots]
    cases = {
        "short.json": (params[:-1].tolist(), f"but this program has {len(names)} parameters"),
        "unknown.json": ({**dict.fromkeys(names, 0.0), "in.h9.[]": 1.0}, "unknown slot names"),
        "missing.json": (dict.fromkeys(names[1:], 0.0), f"no value for slots {names[0]}"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(data))
        code, _, err = _run(capsys, spec_path, "--words", "0,1", "--params", str(path))
        assert code == 2 and message in err, err


def test_bad_spec_and_backend_exit_2(spec_path, tmp_path, capsys):
    code, _, err = _run(capsys, str(tmp_path / "none.toml"), "--words", "0,1")
    assert code == 2 and "does not exist" in err
    code, _, err = _run(capsys, spec_path, "--words", "0,1", "--backend", "nope")
    assert code == 2 and "unknown backend" in err


def test_backend_options_reach_the_backend(spec_path, capsys):
    """``max_bond=1`` makes the MPS truncate (its discarded weight is reported); a bond as
    large as the exact one reproduces the dense reference; a misspelt option exits 2."""
    words = ["--words", "3,1,0,2", "--seed", "5", "--backend", "mps"]
    program, params = _seeded([3, 1, 0, 2], seed=5)
    expect = dense_run(program.dag, params, [3, 1, 0, 2])
    exact = _json(capsys, spec_path, *words, "--backend-option", "max_bond=4")
    np.testing.assert_allclose(exact["probs"], expect, rtol=0, atol=1e-10)
    assert max(exact["discarded"]) < 1e-20
    capped = _json(capsys, spec_path, *words, "--backend-option", "max_bond=1")
    assert max(capped["discarded"]) > 1e-8
    code, _, err = _run(capsys, spec_path, *words, "--backend-option", "max_bnd=1")
    assert code == 2 and "unknown backend option(s) max_bnd; accepted: mps: max_bond" in err


@pytest.mark.parametrize(
    ("name", "content", "flag", "message"),
    [
        ("p.json", b"\xff[0]", "--params", "not UTF-8"),
        ("p.json", b"[" * 100_000, "--params", "nested too deeply"),
        ("p.json", b"[" + b"1" * 5000 + b"]", "--params", "too many digits"),
        ("p.json", b"[" + b"1" * 400 + b"]" * 1, "--params", "values"),
        ("w.txt", b"0,1\xfe,1\n", "--words", "not UTF-8"),
    ],
)
def test_hostile_params_and_words_files(tmp_path, spec_path, capsys, name, content, flag, message):
    path = tmp_path / name
    path.write_bytes(content)
    argv = [spec_path, "--words", "0,1,2"] if flag == "--params" else [spec_path]
    code, _, err = _run(capsys, *argv, flag, str(path))
    assert code == 2
    assert message in err and str(path) in err


def test_huge_integer_parameters_are_refused(tmp_path, spec_path, capsys):
    program = compile_program(DICT, steps=2)
    path = tmp_path / "p.json"
    path.write_text("[" + ", ".join(["10" + "0" * 400] * len(program.slots)) + "]")
    code, _, err = _run(capsys, spec_path, "--words", "0,1,2", "--params", str(path))
    assert code == 2 and "expected a finite number" in err


@pytest.mark.parametrize("seed", ["9223372036854775808", "-1", "x"])
def test_seeds_outside_int64_are_usage_errors(spec_path, capsys, seed):
    with pytest.raises(SystemExit) as info:
        main(["simulate", spec_path, "--words", "0,1,2", "--seed", seed])
    assert info.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_parameters_that_overflow_the_simulation_are_refused(tmp_path, spec_path, capsys):
    program = compile_program(DICT, steps=2)
    path = tmp_path / "p.json"
    path.write_text(json.dumps([1e308] * len(program.slots)))
    code, out, err = _run(capsys, spec_path, "--words", "0,1,2", "--params", str(path))
    assert code == 2 and "non-finite probabilities" in err and out == ""


def test_simulate_warns_about_an_input_bit_no_readout_sees(tmp_path, spec_path, capsys):
    path = tmp_path / "chain.toml"
    path.write_text("[cell]\nio = 2\nworkspace = 2\n[neuron]\ntopology = { local = 1 }\n")
    code, out, err = _run(capsys, str(path), "--words", "3,1,0", "--seed", "0")
    assert code == 0 and "step" in out.lower()
    (line,) = err.splitlines()
    assert line.startswith("qrnn-tn simulate: warning: input bit 0 (o0, most significant)")
    _, _, err = _run(capsys, spec_path, "--words", "3,1,0", "--seed", "0")
    assert err == ""
