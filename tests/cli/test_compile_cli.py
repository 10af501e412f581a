"""``qrnn-tn compile``: outputs checked by qiskit and the compiler, errors by their messages."""

import json

import numpy as np
import pytest
import torch
from qiskit import qasm3

from compiler.export import from_json, to_qasm3
from compiler.unroll import compile_program
from qrnn_tn.cli import main
from qrnn_tn.model import init_params

pytestmark = pytest.mark.filterwarnings("ignore:.*annotated.*:DeprecationWarning")

SPEC = """\
name = "tiny"
[cell]
io = 2
workspace = 2
stages = 1
[neuron]
degree = 2
order = 2
"""


@pytest.fixture
def spec_path(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return str(path)


def _run(capsys, *argv):
    code = main(["compile", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_qasm3_with_seed_loads_in_qiskit(spec_path, capsys):
    code, out, err = _run(capsys, spec_path, "--steps", "2", "--format", "qasm3", "--seed", "1")
    assert code == 0 and err == ""
    circuit = qasm3.loads(out)
    program = compile_program(spec_path, steps=2)
    params = init_params(program, program.spec, torch.Generator().manual_seed(1)).numpy()
    assert out == to_qasm3(program, params)
    assert circuit.num_qubits == program.n_lanes + 2  # order 2: two ancillas
    assert not circuit.parameters  # numeric angles
    names = [inst.operation.name for inst in circuit.data]
    assert names.count("if_else") == sum(op.kind == "wordx" for op in program.ops)


def test_qasm3_symbolic_and_with_words(spec_path, capsys):
    code, out, _ = _run(capsys, spec_path, "--format", "qasm3", "--words", "1,3,2")
    assert code == 0
    circuit = qasm3.loads(out)
    assert "if_else" not in {inst.operation.name for inst in circuit.data}
    program = compile_program(spec_path, steps=2)  # steps follow from the three words
    assert {p.name for p in circuit.parameters} == {f"theta_{s.index}" for s in program.slots}


def test_params_file_as_array_or_object(spec_path, tmp_path, capsys):
    program = compile_program(spec_path, steps=1)
    values = np.random.default_rng(0).normal(size=program.n_params)
    array, table = tmp_path / "a.json", tmp_path / "t.json"
    array.write_text(json.dumps(values.tolist()))
    table.write_text(json.dumps({s.name: float(values[s.index]) for s in program.slots}))
    outputs = []
    for path in (array, table):
        code, out, _ = _run(capsys, spec_path, "--format", "qasm3", "--params", str(path))
        assert code == 0
        outputs.append(out)
    assert outputs[0] == outputs[1] == to_qasm3(program, values)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1.0, 2.0]", "2 values, but this program has 44 parameters"),
        ('{"in.h0.[]": 0.1, "in.h9.[]": 0.2}', "unknown slot names in.h9.[]"),
        ('{"in.h0.[]": 0.1}', "no value for slots in.h0.[0], "),
        ("[" + ", ".join(["0.0"] * 43) + ', "x"]', "slot 'out.o1.[2,3]' has 'x'"),
        ("{oops", "not valid JSON"),
    ],
)
def test_bad_params_exit_2_with_a_message(spec_path, tmp_path, capsys, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    code, out, err = _run(capsys, spec_path, "--format", "qasm3", "--params", str(path))
    assert code == 2 and out == ""
    assert err.startswith("qrnn-tn compile: error: --params") and message in err
    assert "Traceback" not in err


def test_bad_spec_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.replace("io = 2", "io = 0"))
    code, _, err = _run(capsys, str(path))
    assert code == 2 and "cell.io" in err and "got 0" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--words", "0,1", "--steps", "3"], "--words gives 2 tokens; 3 steps need"),
        (["--words", "0,x"], "comma-separated integers"),
        (["--words", "0,4"], "token 4 does not fit in io = 2 bits"),
        (["--format", "dot", "--backend", "statevector"], "--backend adds a cost"),
        (["--steps", "0"], "steps must be an integer"),
    ],
)
def test_bad_arguments_exit_2(spec_path, capsys, argv, message):
    code, _, err = _run(capsys, spec_path, *argv)
    assert code == 2 and message in err


def test_unknown_format_is_an_argparse_error(spec_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", spec_path, "--format", "png"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err


def test_output_file_is_written_atomically(spec_path, tmp_path, capsys):
    target = tmp_path / "out" / "program.json"
    target.parent.mkdir()
    target.write_text("old")
    code, out, _ = _run(capsys, spec_path, "--steps", "3", "--format", "json", "-o", str(target))
    assert code == 0 and out == ""
    assert from_json(target.read_text()) == compile_program(spec_path, steps=3)
    assert [p.name for p in target.parent.iterdir()] == ["program.json"]  # no temp file left


def test_summary_dot_and_literal(spec_path, capsys):
    code, out, _ = _run(capsys, spec_path)
    assert code == 0 and "QRNN program 'tiny'" in out and "44 (" in out
    code, out, _ = _run(capsys, spec_path, "--format", "dot", "--literal")
    literal = compile_program(spec_path, steps=1, literal=True)
    assert code == 0 and out.count(" [label=") == len(literal.ops) + literal.dag.graph.size()


def test_unknown_backend_is_a_user_error(spec_path, capsys):
    code, _, err = _run(capsys, spec_path, "--backend", "no-such-backend")
    assert code == 2 and "no-such-backend" in err and "Traceback" not in err


LOCAL_CHAIN = """\
[cell]
io = 2
workspace = 3
[neuron]
topology = { local = 1%s }
"""


def test_compile_shows_what_the_readouts_see_and_warns_about_unread_bits(tmp_path, capsys):
    path = tmp_path / "chain.toml"
    path.write_text(LOCAL_CHAIN % "")
    code, out, err = _run(capsys, str(path), "--steps", "2")
    assert code == 0
    assert "What the readouts can see (2 steps" in out
    assert "Input bit 0 (o0, most significant): never read" in out
    (line,) = err.splitlines()
    assert line.startswith("qrnn-tn compile: warning: input bit 0 (o0, most significant)")
    assert 'io = "site"' in line
    path.write_text(LOCAL_CHAIN % ', io = "site"')
    code, out, err = _run(capsys, str(path), "--steps", "2")
    assert code == 0 and err == "" and "never read" not in out
