"""Where an inference's time goes on a microcontroller, and the chip's compute peak, from
the project's firmware (``firmware/src/dut.c``).

``opprof N%`` runs N whole inferences timed as ``infer`` times them, then, operator by
operator, N inferences in which only that operator is timed (two reads of the SysTick
cycle counter around it, the others run untimed), and prints cycles:

    m-opprof-start-N  m-opprof-hz-<cycles/s>  m-opprof-probe-<N empty timed regions>
    m-opprof-total-<N whole inferences>  m-opprof-op-<i>-<TFLite op type>-<N runs of op i>
    ...  m-opprof-pass-<the profiled inferences>  m-opprof-done

``peak N%`` runs conv's inner int8 multiply-accumulate loop N times over a fixed 256-byte
buffer in flash: ``m-peak-macs-<MACs>``, ``m-peak-cycles-<cycles>``, ``m-peak-hz-<cycles/s>``.

Other firmware (the MLPerf Tiny reference among them) answers ``e-[Unknown command: ...]``:
the profile is then ``{"offered": False, "reason": ...}``. The firmware's operator list is
held against the model's (``layers``): index -> the output tensor's name, as TFLite's own
profiler names operators. Under QEMU with ``-icount`` the cycles are guest time (one
instruction = 1 ns), so the document says ``"emulated": "guest-time"``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .dut import DutError

SOURCE = "mcu-firmware"
PEAK_SOURCE = "firmware-kernel-loop"
PEAK_KERNEL = "conv's int8 multiply-accumulate loop (firmware/src/engine.c), 256-byte buffer in flash"
DEFAULT_RUNS = 10
DEFAULT_PEAK_PASSES = 1000
_OP = re.compile(r"m-opprof-op-(\d+)-([A-Z0-9_]+)-(\d+)")
_FIELD = re.compile(r"m-(opprof|peak)-(start|hz|probe|total|pass|macs|cycles)-(\d+)")


@dataclass(frozen=True)
class Layer:
    """One operator of the .tflite model, in execution order."""

    name: str       # its (first) output tensor's name
    op_type: str    # TFLite's builtin name: CONV_2D, FULLY_CONNECTED, ...
    shapes: str     # "int8[1,8,8,1] -> int8[1,8,8,8]" (first input -> first output; the host profiler's form)


def layers(path: Path | str) -> list[Layer]:
    """The model's operators as the exporter compiles them into the firmware (one
    subgraph, in order), read from the flatbuffer with the schema LiteRT ships."""
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    graph = model.subgraphs[0]
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    dtypes = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def shape(i):
        if i < 0:
            return "-"
        tensor = graph.tensors[i]
        return f"{dtypes.get(tensor.type, 'unknown')}[{','.join(str(int(d)) for d in tensor.shape)}]"

    out = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = graph.tensors[op.outputs[0]].name
        out.append(Layer(name=name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name),
                         op_type=builtin_names.get(builtin, f"BUILTIN_{builtin}"),
                         shapes=f"{shape(op.inputs[0])} -> {shape(op.outputs[0])}"))
    return out


def not_offered(reason: str) -> dict:
    return {"offered": False, "reason": reason}


def _fields(command: str, lines, kind: str) -> tuple[dict, list]:
    """The ``m-<kind>-<field>-<n>`` values and the op lines of a reply; a field given twice
    or an ``m-opprof-``/``m-peak-`` line of no known form is an error naming the command."""
    values, ops = {}, []
    for line in lines:
        m = _FIELD.fullmatch(line)
        if m and m.group(1) == kind:
            if m.group(2) in values:
                raise DutError(command, f"{line!r} given twice", lines)
            values[m.group(2)] = int(m.group(3))
            continue
        m = _OP.fullmatch(line) if kind == "opprof" else None
        if m:
            ops.append((int(m.group(1)), m.group(2), int(m.group(3))))
        elif line.startswith(f"m-{kind}-") and line != "m-opprof-done":
            raise DutError(command, f"a malformed reply line {line!r}", lines)
    return values, ops


def parse_profile(command: str, lines, runs: int, model_layers, emulated=False) -> dict:
    """The profile document from an ``opprof`` reply (lines before ``m-ready``)."""
    values, ops = _fields(command, lines, "opprof")
    missing = [f for f in ("start", "hz", "probe", "total", "pass") if f not in values]
    if missing or "m-opprof-done" not in lines:
        what = ", ".join(f"m-opprof-{f}-<n>" for f in missing) or "m-opprof-done"
        raise DutError(command, f"expected {what} in the reply", lines)
    if values["start"] != runs:
        raise DutError(command, f"the DUT ran {values['start']} inferences, {runs} were asked", lines)
    hz, total = values["hz"], values["total"]
    if hz <= 0 or total <= 0:
        raise DutError(command, "a zero clock rate or whole-inference time", lines)
    if [i for i, _, _ in ops] != list(range(len(ops))):
        raise DutError(command, "operator lines out of order or missing", lines)
    fw_types = [t for _, t, _ in ops]
    model_types = [layer.op_type for layer in model_layers]
    if fw_types != model_types:
        raise DutError(command, f"the firmware runs operators {fw_types} but the model has {model_types}: "
                       "the board holds another model", lines)
    us = 1e6 / hz / runs   # cycles over `runs` inferences -> microseconds per inference
    # each timed region holds one clock read: the probe's cost per region is taken off
    doc_ops = [{"name": layer.name, "op_type": layer.op_type, "time_us": max(cycles - values["probe"], 0) * us,
                "provider": None, "shapes": layer.shapes}
               for (_, _, cycles), layer in zip(ops, model_layers)]
    total_us = total * us
    profiled_us = values["pass"] * us / max(len(ops), 1)  # one profiled inference, on average
    return {"source": SOURCE, "unit": "us", "runs": runs, "total_us": total_us, "ops": doc_ops,
            "coverage": sum(o["time_us"] for o in doc_ops) / total_us,
            "overhead": profiled_us / total_us - 1.0 if ops else None,
            "emulated": emulated}


def parse_peak(command: str, lines, passes: int, emulated=False) -> dict:
    values, _ = _fields(command, lines, "peak")
    missing = [f for f in ("macs", "cycles", "hz") if f not in values]
    if missing:
        raise DutError(command, "expected " + ", ".join(f"m-peak-{f}-<n>" for f in missing), lines)
    if values["cycles"] <= 0 or values["hz"] <= 0 or values["macs"] <= 0:
        raise DutError(command, "zero MACs, cycles or clock rate", lines)
    seconds = values["cycles"] / values["hz"]
    return {"macs_per_s": values["macs"] / seconds, "source": PEAK_SOURCE, "kernel": PEAK_KERNEL,
            "macs": values["macs"], "passes": passes, "seconds": seconds, "clock_hz": values["hz"],
            "emulated": emulated}


def profile(dut, model_layers, runs: int = DEFAULT_RUNS, us_per_inference: float = 1e6,
            emulated=False) -> dict:
    """``opprof runs`` on the input loaded on the DUT. Its deadline: the reply timeout plus
    ten times the expected duration ((operators + 1) x runs inferences)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    command = f"opprof {runs}"
    budget = dut.timeout_s + 10 * runs * (len(model_layers) + 1) * us_per_inference / 1e6
    lines = dut.optional(command, timeout_s=budget)
    if lines is None:
        return not_offered("the firmware answers 'opprof' as an unknown command: it has no per-operator "
                           "timing (the harness's reference firmware has)")
    return parse_profile(command, lines, runs, model_layers, emulated)


def peak(dut, passes: int = DEFAULT_PEAK_PASSES, emulated=False) -> dict:
    """The compute peak in MAC/s from ``peak passes``; ``{"offered": False, ...}`` from
    firmware without the command."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    command = f"peak {passes}"
    lines = dut.optional(command)
    if lines is None:
        return not_offered("the firmware answers 'peak' as an unknown command: it has no kernel loop to "
                           "time (the harness's reference firmware has)")
    return parse_peak(command, lines, passes, emulated)
