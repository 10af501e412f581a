"""``qrnn_tn.simulation``: run a cell on token sequences with any backend, in one call.

Also the canonical parameter initialiser (QRNN.md §5), shared with the model and the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compiler.spec import CellSpec, load_spec
from compiler.unroll import Program, compile_program
from qrnn_tn.backends import (
    BackendChoice,
    BackendError,
    BackendOptions,
    Plan,
    RunResult,
    check_backend_options,
    choose,
    get_backend,
)
from qrnn_tn.backends.options import OptionsInput
from qrnn_tn.dtypes import parse_dtype
from qrnn_tn.model import init_params

__all__ = [
    "simulate",
    "load_program",
    "make_plan",
    "as_words",
]

_MODES = ("teacher", "sample")


@lru_cache(maxsize=16)
def _compiled(spec: CellSpec, steps: int) -> Program:
    return compile_program(spec, steps)


def load_program(
    spec_or_program: Program | CellSpec | dict | str | Path, steps: int | None
) -> Program:
    """Return the program for a spec (compiled for ``steps``, cached) or a given program."""
    if isinstance(spec_or_program, Program):
        if steps is not None and steps != spec_or_program.steps:
            raise BackendError(
                f"the program has {spec_or_program.steps} steps but steps={steps} was asked"
            )
        return spec_or_program
    if steps is None:
        raise BackendError("steps is needed to compile a spec (or give words to infer it)")
    return _compiled(load_spec(spec_or_program), steps)


def as_words(words: Any, io: int) -> torch.Tensor:
    """Token sequences as an int64 tensor ``[batch, L]`` (a flat sequence is a batch of one).

    Raises :class:`BackendError` for empty or ragged input, non-integers and tokens outside
    ``0 … 2^io - 1``.
    """
    try:
        array = np.asarray(words.cpu() if isinstance(words, torch.Tensor) else words)
    except ValueError as err:
        raise BackendError(f"words must be a sequence or a rectangular batch: {err}") from None
    if array.dtype == object:
        raise BackendError("words must be a sequence or a rectangular batch of integer tokens")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise BackendError(f"words must be [L] or [batch, L] with L >= 1; got {list(array.shape)}")
    if not np.issubdtype(array.dtype, np.integer):
        raise BackendError(f"words must be integer tokens; got {array.dtype}")
    bad = (array < 0) | (array >= 2**io)
    if bad.any():
        b, t = (int(i[0]) for i in np.nonzero(bad))
        raise BackendError(
            f"token {int(array[b, t])} at sequence {b}, position {t} is out of range; a cell "
            f"with io={io} reads words 0 … {2**io - 1}"
        )
    return torch.as_tensor(array, dtype=torch.int64)


def make_plan(
    program: Program,
    backend: str = "auto",
    dtype: str | torch.dtype = torch.float64,
    batch: int = 1,
    memory_budget: int | None = None,
    backend_options: OptionsInput = None,
) -> tuple[Plan, BackendChoice]:
    """Prepare ``program`` on ``backend`` with ``backend_options``.

    ``"auto"`` picks the backend with :func:`qrnn_tn.backends.choose`; the options are described in
    :mod:`qrnn_tn.backends.options`. Returns the plan and the
    :class:`~qrnn_tn.backends.BackendChoice` (which backend runs it and why).
    """
    options = BackendOptions(
        dtype=parse_dtype(dtype),
        memory_budget=memory_budget,
        batch_size=batch,
        backend_options=check_backend_options(backend_options, backend),
    )
    if backend == "auto":
        return choose(program, options)
    plan = get_backend(backend)(program, options)
    return plan, BackendChoice(
        backend, f"backend {backend} (chosen by the caller)", plan.cost, "caller"
    )


def _spec_of(spec_or_program: Program | CellSpec | dict | str | Path) -> CellSpec:
    if isinstance(spec_or_program, Program):
        return spec_or_program.spec
    return load_spec(spec_or_program)


def simulate(
    spec_or_program: Program | CellSpec | dict | str | Path,
    params: torch.Tensor | Sequence[float] | np.ndarray | None,
    words: Any,
    *,
    backend: str = "auto",
    steps: int | None = None,
    dtype: str | torch.dtype = torch.float64,
    mode: str = "teacher",
    seed: int | None = None,
    memory_budget: int | None = None,
    backend_options: OptionsInput = None,
) -> RunResult:
    """Simulate a QRNN cell on token sequences.

    Parameters
    ----------
    spec_or_program
        A compiled :class:`Program`, a :class:`CellSpec`, a spec dict or a spec file path.
    params
        Flat parameters in canonical slot order (QRNN.md §5), or ``None`` to draw them with
        the spec's initialisation from ``seed``.
    words
        Tokens ``[L]`` or ``[batch, L]`` (list, array or tensor). In ``"teacher"`` mode each
        sequence is ``steps + 1`` tokens (for a program compiled with ``separate_targets``:
        its ``2 steps + 1`` tokens, the inputs then the targets); in ``"sample"`` mode only
        ``words[:, 0]`` is read.
    backend
        A registered backend name, or ``"auto"`` for the cheapest exact one that fits.
    steps
        Number of steps; by default ``L - 1`` (required in ``"sample"`` mode with a spec).
    dtype
        ``float32``, ``float64``, ``complex64`` or ``complex128`` (name or torch dtype).
    mode
        ``"teacher"`` (project on the given next token) or ``"sample"`` (draw it from ``p_t``).
    seed
        Seeds the parameter draw (when ``params`` is ``None``) and the sampling.
    memory_budget
        Bytes a run may use (default: the memory available).
    backend_options
        Backend-specific options: a mapping such as ``{"max_bond": 32}`` or typed objects
        such as ``MPSOptions(max_bond=32)`` (:mod:`qrnn_tn.backends.options`).

    Returns
    -------
    RunResult
        ``probs [batch, steps, 2^io]``, ``target_prob [batch, steps]``, ``log_norm [batch]``,
        ``words [batch, steps + 1]`` — always with the batch axis.
    """
    if mode not in _MODES:
        raise BackendError(f"mode {mode!r} is not supported; accepted: {', '.join(_MODES)}")
    backend_options = check_backend_options(backend_options, backend)
    spec = _spec_of(spec_or_program)
    tokens = as_words(words, spec.io)
    if mode == "teacher" and tokens.shape[1] < 2:
        raise BackendError(
            f"a sequence needs at least 2 tokens (one step) in teacher mode; got {tokens.shape[1]}"
        )
    if steps is None and not isinstance(spec_or_program, Program):
        if mode == "sample" and tokens.shape[1] == 1:
            raise BackendError("sample mode needs steps (how many tokens to generate)")
        steps = tokens.shape[1] - 1
    program = load_program(spec_or_program if isinstance(spec_or_program, Program) else spec, steps)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if params is None:
        params = init_params(program, spec, generator)
    plan, _ = make_plan(program, backend, dtype, tokens.shape[0], memory_budget, backend_options)
    if not isinstance(params, torch.Tensor):
        params = torch.as_tensor(np.asarray(params, dtype=np.float64))
    return plan.run(params, tokens, mode=mode, generator=generator)
