"""The host adapters (gateware/host_adapters.py) without a simulator: random inputs the block
accepts, beats that fit the RTL's payloads and unpack to what the testbenches send, expected
beats equal to what the golden outputs take, decode inverting the golden beats, a corrupted
beat detected, and bad inputs refused naming the key."""
import subprocess
import sys

import numpy as np
import pytest
from sim_cli import same_values

from gateware.host_adapters import (
    ADAPTERS,
    HostAdapter,
    counter_arrays,
    payload_layouts,
    stages_of,
)
from gateware.registry import BLOCKS, load
from sim.payload import unpack

SEED = 20261127
#: Optional inputs that `sim --inputs` also reads (beside entry.input_keys).
OPTIONAL_INPUTS = {"attention": {"scale", "causal"}}


def _points() -> list[tuple[str, dict]]:
    """Every block's `make test` points and its small / demo point."""
    points = []
    for name, entry in BLOCKS.items():
        for settings in (*entry.regression, *entry.regression_verilator, entry.small,
                         entry.demo):
            if (name, settings) not in points:
                points.append((name, settings))
    return points


POINTS = _points()


def _id(point) -> str:
    name, settings = point
    return BLOCKS[name].config(settings).slug()


def _counter_names(name: str, config) -> list[str]:
    """The counters and one-bit outputs the bridge reads (every port but the streams)."""
    component = BLOCKS[name].build(config)
    component._MustUse__silence = True   # built for its signature only
    names = []
    for member_name, member in component.signature.members.items():
        if member_name in payload_layouts(name, config):
            continue
        if member.is_port:
            names.append(member_name)
        else:
            names += [path[-1] for path, _, _ in member.signature.flatten(
                getattr(component, member_name))]
    return names


def test_every_block_names_its_adapter():
    for name, entry in BLOCKS.items():
        adapter = load(entry.host)
        assert isinstance(adapter, HostAdapter), name
        assert ADAPTERS[name] is adapter, name


def test_imports_without_cocotb():
    """A host talking to a board has no cocotb: the adapters run every block without it."""
    code = ("import sys, numpy as np\n"
            "sys.modules['cocotb'] = None\n"   # any import of cocotb now fails
            "from gateware.host_adapters import ADAPTERS\n"
            "from gateware.registry import BLOCKS\n"
            "for name, a in ADAPTERS.items():\n"
            "    cfg = BLOCKS[name].config(BLOCKS[name].demo)\n"
            "    inputs = a.random_inputs(cfg, np.random.default_rng(0))\n"
            "    a.decode(cfg, inputs, a.golden_beats(cfg, inputs))\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("point", POINTS, ids=_id)
def test_round_trip(point):
    """Random inputs pass the block's check; every input beat fits its payload; the golden
    outputs' beats are as many as expected_beats says and decode back to golden exactly; a
    corrupted output stream decodes to something else (or is refused)."""
    name, settings = point
    entry, adapter = BLOCKS[name], ADAPTERS[name]
    config = entry.config(settings)
    layouts = payload_layouts(name, config)
    from amaranth.hdl import Shape
    widths = {stream: Shape.cast(layout).width for stream, layout in layouts.items()}
    seed = SEED + len(POINTS) * list(BLOCKS).index(name) + POINTS.index(point)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for _ in range(2):
        inputs = adapter.random_inputs(config, rng)
        allowed = set(entry.input_keys) | OPTIONAL_INPUTS.get(name, set())
        assert set(inputs) <= allowed, (set(inputs), entry.input_keys)
        load(entry.check_inputs)(config, inputs)
        beats = adapter.encode(config, inputs)
        for stream, values in beats.items():
            assert values and all(0 <= v < 1 << widths[stream] for v in values), stream
        staged = stages_of(adapter, config, inputs)
        for stream, values in beats.items():
            assert [v for stage, _ in staged for v in stage.get(stream, [])] == values, stream
        expected = adapter.expected_beats(config, inputs)
        assert {s: sum(e.get(s, 0) for _, e in staged) for s in expected} == expected
        golden = adapter.golden(config, inputs)
        assert set(entry.output_keys) & set(golden), (entry.output_keys, set(golden))
        out = adapter.golden_beats(config, inputs)
        assert {stream: len(values) for stream, values in out.items()} == expected
        for stream, values in out.items():
            assert all(0 <= v < 1 << widths[stream] for v in values), stream
        decoded = adapter.decode(config, inputs, out)
        assert decoded.keys() == golden.keys()
        # the npz holds outputs, their _golden twins and the counters: no name twice
        counters = counter_arrays(adapter, dict.fromkeys(_counter_names(name, config), 0))
        assert not set(counters) & {*golden, *(f"{key}_golden" for key in golden)}
        for key in golden:
            assert same_values(decoded[key], golden[key]), key
        # every bit of every output beat inverted
        corrupt = {s: [v ^ ((1 << widths[s]) - 1) for v in values] for s, values in out.items()}
        try:
            wrong = adapter.decode(config, inputs, corrupt)
        except ValueError:
            continue
        assert any(not same_values(wrong[key], golden[key]) for key in golden), "corruption unseen"


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_wrong_beat_count_refused(name):
    entry, adapter = BLOCKS[name], ADAPTERS[name]
    config = entry.config(entry.demo)
    inputs = adapter.random_inputs(config, np.random.default_rng(SEED))
    out = adapter.golden_beats(config, inputs)
    stream = next(iter(out))
    short = {**out, stream: out[stream][:-1]}
    with pytest.raises(ValueError, match=stream):
        adapter.decode(config, inputs, short)


def _unpacked(name, config, beats, stream):
    return [unpack(payload_layouts(name, config)[stream], v) for v in beats[stream]]


def test_gemm_beats_carry_the_operands():
    """systolic_gemm: the descriptor holds M, K, N; the a beats' lanes hold every element of a
    (output-stationary: tile row by tile row, K beats of R lanes)."""
    config = BLOCKS["systolic_gemm"].config({"rows": "2", "cols": "3"})
    a = np.arange(15, dtype=np.int64).reshape(3, 5) - 7
    b = np.arange(20, dtype=np.int64).reshape(5, 4) - 9
    beats = ADAPTERS["systolic_gemm"].encode(config, {"a": a, "b": b})
    assert _unpacked("systolic_gemm", config, beats, "desc") == [{"m": 3, "k": 5, "n": 4}]
    a_lanes = np.array(_unpacked("systolic_gemm", config, beats, "a"))    # [tiles·K, R]
    # tile rows 0..1 and 2..3 (row 3 padding), each once per tile column (2 of them)
    assert np.array_equal(a_lanes[:5].T, a[0:2]) and np.array_equal(a_lanes[10:15, 0], a[2])
    assert not a_lanes[10:15, 1].any()


def test_quantizer_beats_carry_the_inputs():
    """mx_quant's input beats are x's bit patterns in the input type; mx_dequant's carry every
    code and each block's scale with first / last on its first / last beat."""
    from sim.quant_data import to_input_type
    config = BLOCKS["mx_quant"].config({"format": "fp8_e4m3", "lanes": "4", "input": "bf16",
                                        "block_size": "8"})
    x = np.random.default_rng(SEED).standard_normal((2, 16)).astype(np.float32)
    beats = _unpacked("mx_quant", config, ADAPTERS["mx_quant"].encode(config, {"x": x}), "i")
    bits = np.array(beats, dtype=np.uint16).reshape(-1)
    want = to_input_type(x, "bf16").view(__import__("torch").int16).numpy().reshape(-1)
    assert np.array_equal(bits.view(np.int16), want)
    config = BLOCKS["mx_dequant"].config({"format": "fp4_e2m1", "lanes": "4", "block_size": "8"})
    scale = np.array([[120, 130], [7, 255]], dtype=np.uint8)
    codes = np.random.default_rng(SEED).integers(0, 16, (2, 16)).astype(np.uint8)
    beats = _unpacked("mx_dequant", config,
                      ADAPTERS["mx_dequant"].encode(config, {"scale": scale, "codes": codes}), "i")
    assert [b["scale"] for b in beats] == [120, 120, 130, 130, 7, 7, 255, 255]
    assert [(b["first"], b["last"]) for b in beats] == [(1, 0), (0, 1)] * 4
    assert np.array_equal(np.array([b["codes"] for b in beats]).reshape(2, 16), codes)


def test_pim_trace_and_gemv_stages():
    """pim: a raw trace is one stage, its commands in decision order (unsorted table in);
    a GEMV is two stages: W's load, then the descriptor and x."""
    from golden.pim import commands_to_table
    from sim.pim_traces import mixed_stream
    entry, adapter = BLOCKS["pim"], ADAPTERS["pim"]
    config = entry.config({"banks": "4", "rows": "16", "columns": "16", "column_bits": "128",
                           "lanes": "8"})
    import random
    table = commands_to_table(mixed_stream(config, random.Random(5), 200), config)
    table = table[np.random.default_rng(5).permutation(len(table))]
    inputs = {"commands": table}
    (stage,) = stages_of(adapter, config, inputs)
    cycles = [b["cycle"] for b in _unpacked("pim", config, stage[0], "cmd")]
    assert cycles == sorted(cycles) and len(cycles) == len(table)
    assert stage[1] == {"status": len(table)}
    golden = adapter.golden(config, inputs)
    decoded = adapter.decode(config, inputs, adapter.golden_beats(config, inputs))
    assert all(same_values(decoded[k], golden[k]) for k in golden)
    assert len(set(golden["rule"][golden["accepted"] == 0].tolist())) >= 3, golden["rule"]
    gemv = adapter.random_inputs(config, np.random.default_rng(SEED))
    load_stage, compute_stage = stages_of(adapter, config, gemv)
    assert set(load_stage[0]) == {"cmd"} and set(compute_stage[0]) == {"gemv", "x"}
    y = adapter.golden(config, gemv)["y"]
    exact = (gemv["x"].astype(np.int64) @ gemv["w"].astype(np.int64).T).astype(np.int32)
    assert np.array_equal(y, exact)


@pytest.mark.parametrize("name, change, key", [
    ("systolic_gemm", lambda i: i.pop("b"), "'b'"),
    ("systolic_gemm", lambda i: i.update(a=i["a"].astype(np.float32)), "a must hold integers"),
    ("nm_sparse_gemm", lambda i: i.update(w=i["w"][:, :-1] if i["w"].shape[1] > 1
                                          else np.zeros((1, 2), np.int64)), "K differs"),
    ("nm_sparse_mac", lambda i: i.pop("w"), "'w'"),
    ("mx_quant", lambda i: i.update(x=i["x"][:, :-1]), "block_size"),
    ("mx_dequant", lambda i: i.update(scale=i["scale"][:, :0]), "scale"),
    ("kivi_quant", lambda i: i.update(axis=np.array("heads")), "axis"),
    ("attention", lambda i: i.update(k=i["k"][..., :0]), "head dimensions differ|k"),
    ("pim", lambda i: i.update(x=i["x"][:-1] if len(i["x"]) > 1 else i["x"][:0]), "x must be"),
])
def test_bad_inputs_name_the_key(name, change, key):
    entry, adapter = BLOCKS[name], ADAPTERS[name]
    config = entry.config(entry.demo)
    inputs = adapter.random_inputs(config, np.random.default_rng(SEED))
    change(inputs)
    with pytest.raises(ValueError, match=key):
        adapter.encode(config, inputs)
