"""Each block's formal harness: the generic properties of :mod:`gateware.formal` plus the
block's own (jobs and ``last``, error flags). The registry's ``formal`` names these.

The block-specific conditions (what a malformed descriptor or group is) are written here again
from the specification, not imported from the RTL, so a proof compares two statements of it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, ResetSignal, Signal, Value

from hdl.attention.config import AttentionConfig
from hdl.pim.config import PimConfig
from hdl.quant.config import KiviQuantConfig, MXDequantConfig, MXQuantConfig
from hdl.quant.formats import INPUTS
from hdl.sparse.config import NMSparseGemmConfig, NMSparseMacConfig
from hdl.systolic.config import SystolicGemmConfig

from .formal import Checks, Harness, Scenario, block_harness, transfer

__all__ = ["attention", "kivi_quant", "mx_dequant", "mx_quant", "nm_sparse_gemm",
           "nm_sparse_mac", "pim", "systolic_gemm"]


def _counter_step(checks: Checks, name: str) -> Value:
    counter = getattr(checks.dut.counters, name)
    return (counter - checks.past(counter, name=f"{name}_before"))[:len(counter)]


def _not_increasing(indices) -> Value:
    """An N:M group breaks the format: its indices are not strictly increasing."""
    return Cat(*(indices[t] <= indices[t - 1] for t in range(1, len(indices))), Const(0))\
        .any()


def _descriptor_rules(checks: Checks, bad_now, bad_later=0) -> Value:
    """(4) A malformed descriptor raises ``desc_error`` (sticky until reset) and nothing else
    does. ``bad_now`` is flagged the cycle after the descriptor is taken, ``bad_later`` some
    cycles on. Returns "a good descriptor is taken" for the job ledger."""
    desc, flag = checks.dut.desc, checks.dut.counters.desc_error
    taken = transfer(desc)
    bad_taken = checks.past(taken & bad_now, name="bad_desc_taken")
    seen = Signal(name="bad_desc_seen")
    checks.m.d.sync += seen.eq(seen | (taken & (bad_now | bad_later)))
    flag_before = checks.past(flag, name="desc_error_before")
    checks.prove("desc_error_raised", ~checks.stepped | ~bad_taken | flag, group="errors",
                 cover=checks.stepped & bad_taken,
                 text="a malformed descriptor (a zero size, a size above the limit) sets "
                      "`desc_error` in the next cycle")
    checks.prove("desc_error_sticky", ~checks.stepped | ~flag_before | flag, group="errors",
                 cover=checks.stepped & flag_before,
                 text="`desc_error` stays high until reset")
    checks.prove("desc_error_has_cause", ~flag | seen, group="errors", local=False,
                 cover=flag & seen,
                 text="`desc_error` rises only after a malformed descriptor was taken")
    return taken & ~(bad_now | bad_later)


def _job_rules(checks: Checks, good_job, out_name: str) -> None:
    """(2) Every output beat, its ``last`` included, belongs to a job a good descriptor asked
    for and whose ``last`` has not yet left: no result for a malformed descriptor, one
    ``last`` per job."""
    out = getattr(checks.dut, out_name)
    ledger = checks.ledger("jobs", good_job, transfer(out) & out.payload.last)
    checks.prove(f"{out_name}_needs_job", ~transfer(out) | (ledger.pending != 0),
                 group="jobs", local=False,
                 cover=transfer(out) & out.payload.last & (ledger.pending == 1),
                 text=f"every `{out_name}` transfer belongs to a job asked for by a good "
                      f"descriptor whose `last` has not left yet (at most one `last` per job, "
                      f"none for a malformed descriptor)")


#: Largest runtime size the environment asks for: small jobs keep the solver's search short
#: (a job's control walks the same states at any size; sizes of zero stay allowed).
MAX_SIZE = 2


def _small_sizes(checks: Checks, *fields: str) -> None:
    desc = checks.dut.desc
    checks.assume("small_jobs", ~desc.valid | Cat(*(getattr(desc.payload, f) <= MAX_SIZE
                                                    for f in fields)).all(),
                  f"descriptor sizes {', '.join(fields)} at most {MAX_SIZE}")


def _gemm_descriptor(checks: Checks) -> Value:
    desc = checks.dut.desc.payload
    _small_sizes(checks, "m", "k", "n")
    return _descriptor_rules(checks, (desc.m == 0) | (desc.k == 0) | (desc.n == 0))


def _gemm_scenarios() -> tuple[Scenario, ...]:
    """2×1×2 jobs against a `c` that is never ready, for the cover that needs the array to
    wait for room in its output queue (more than five results queued)."""
    return (Scenario("full_queue", 40, _jobs({"m": 2, "k": 1, "n": 2}, held="c"),
                     ("stall_out_cycles_counts_up",)),)


def systolic_gemm(config: SystolicGemmConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        _job_rules(checks, _gemm_descriptor(checks), "c")
    return block_harness(config, jobs, scenarios=_gemm_scenarios())


def nm_sparse_gemm(config: NMSparseGemmConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        good = _gemm_descriptor(checks)
        _job_rules(checks, good, "c")
        dense = Signal(name="job_dense")
        with checks.m.If(good):
            checks.m.d.sync += dense.eq(checks.dut.desc.payload.dense)
        b = checks.dut.b
        malformed = ~dense & Cat(*(_not_increasing(b.payload[j].indices)
                                   for j in range(config.cols))).any()
        counted = checks.past(transfer(b) & malformed, name="b_malformed")
        checks.prove("operand_errors_flagged",
                     ~checks.stepped | (_counter_step(checks, "operand_errors") == counted),
                     group="errors", cover=checks.stepped & counted,
                     text="`operand_errors` adds one exactly for each `b` beat of a sparse job "
                          "with a group whose indices are not strictly increasing (N:M broken)")
    return block_harness(config, jobs, scenarios=_gemm_scenarios())


def nm_sparse_mac(config: NMSparseMacConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        i, o = checks.dut.i, checks.dut.o
        beat = transfer(i)
        malformed = ~i.payload.dense & _not_increasing(i.payload.group.indices)
        broken = Signal(name="dot_broken")          # a malformed group so far in this one
        with checks.m.If(beat):
            checks.m.d.sync += broken.eq(~i.payload.last & (broken | malformed))
        ledger = checks.ledger("dots", beat & i.payload.last, transfer(o), broken | malformed)
        checks.prove("o_needs_job", ~transfer(o) | (ledger.pending != 0), group="jobs",
                     local=False, cover=transfer(o) & (ledger.pending == 1),
                     text="every `o` transfer answers a dot product whose `last` group came "
                          "in and which has no result yet (one result per dot product)")
        checks.prove("o_error_flag", ~transfer(o) | (o.payload.error == ledger.head),
                     group="errors", local=False, cover=transfer(o) & o.payload.error,
                     text="`o.error` is high exactly for a dot product with a group whose "
                          "indices are not strictly increasing (N:M broken)")
        counted = checks.past(beat & malformed, name="i_malformed")
        checks.prove("operand_errors_flagged",
                     ~checks.stepped | (_counter_step(checks, "operand_errors") == counted),
                     group="errors", cover=checks.stepped & counted,
                     text="`operand_errors` adds one exactly for each malformed group taken")
    return block_harness(config, jobs)


def _block_ledgers(checks: Checks, beats_per_block: int, *, tag=None, block_tag=None):
    """Beats out never ahead of beats in; blocks (groups) begun on ``i`` against ``last`` on
    ``o``. ``tag`` marks the current beat's contribution to its block's one-bit tag."""
    i, o = checks.dut.i, checks.dut.o
    beat = transfer(i)
    index = Signal(range(beats_per_block), name="i_beat_index")
    with checks.m.If(beat & (index == beats_per_block - 1)):
        checks.m.d.sync += index.eq(0)
    with checks.m.Elif(beat):
        checks.m.d.sync += index.eq(index + 1)
    beats = checks.ledger("beats", beat, transfer(o))
    checks.prove("o_needs_input", ~transfer(o) | (beats.pending != 0), group="jobs",
                 local=False, cover=transfer(o) & (beats.pending == 1),
                 text="every `o` beat answers an `i` beat taken earlier (no more beats out "
                      "than in)")
    if not hasattr(o.payload, "last"):
        return None
    so_far = Signal(name="block_tag_so_far")
    ends = beat & (index == beats_per_block - 1)
    tagged = Const(0) if tag is None else (so_far | tag)
    if tag is not None:
        with checks.m.If(beat):
            checks.m.d.sync += so_far.eq(~ends & tagged)
    blocks = checks.ledger("blocks", ends, transfer(o) & o.payload.last, tagged)
    checks.prove("o_needs_block", ~transfer(o) | (blocks.pending != 0), group="jobs",
                 local=False, cover=transfer(o) & o.payload.last & (blocks.pending == 1),
                 text="every `o` beat belongs to an input block fully taken whose `last` has "
                      "not left yet (one `last` per block)")
    return blocks


def mx_quant(config: MXQuantConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        _block_ledgers(checks, config.beats_per_block)
    return block_harness(config, jobs)


def mx_dequant(config: MXDequantConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        _block_ledgers(checks, config.beats_per_block)
        i = checks.dut.i
        counted = checks.past(transfer(i) & i.payload.first & (i.payload.scale == 0xFF),
                              name="nan_scale_taken")
        checks.prove("nan_blocks_flagged",
                     ~checks.stepped | (_counter_step(checks, "nan_blocks") == counted),
                     group="errors", cover=checks.stepped & counted,
                     text="`nan_blocks` adds one exactly for each block taken with the NaN "
                          "scale (0xFF)")
    return block_harness(config, jobs, constant_counters=("stall_in_cycles",))


def kivi_quant(config: KiviQuantConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        i, o = checks.dut.i, checks.dut.o
        ebits, mbits, _bias = INPUTS[config.input]
        special = Cat(*(i.payload[lane][mbits:mbits + ebits] == 2 ** ebits - 1
                        for lane in range(config.lanes))).any()
        groups = _block_ledgers(checks, config.group // config.lanes, tag=special)
        checks.prove("o_error_flag",
                     ~transfer(o) | (groups.pending == 0) | (o.payload.error == groups.head),
                     group="errors", local=False, cover=transfer(o) & o.payload.error,
                     text="`o.error` is high exactly on the beats of a group holding a NaN or "
                          "an Inf")
        silent = (o.payload.codes.as_value() == 0) & (o.payload.minimum == 0) \
            & (o.payload.range == 0)
        checks.prove("o_error_silent", ~(o.valid & o.payload.error) | silent, group="errors",
                     cover=o.valid & o.payload.error,
                     text="a flagged group's beats carry no result: codes, minimum and range "
                          "zero")
    return block_harness(config, jobs)


def _jobs(fields: dict, *, held: str | None = None):
    """A steering property set: the descriptor ``fields`` (the rest zero) offered from the
    first clock; no reset; operands free. Taken once, then no other, with the outputs free;
    or, with ``held`` (an output stream), offered again and again while ``held`` is never
    ready (its queue fills)."""
    def steer(checks: Checks) -> None:
        desc = checks.dut.desc
        offered = desc.valid & (desc.payload.as_value()
                                == desc.payload.shape().const(fields).as_value())
        if held is None:
            taken = Signal(name="script_desc_taken")
            with checks.m.If(transfer(desc)):
                checks.m.d.sync += taken.eq(1)
            steered, text = Mux(taken, ~desc.valid, offered), "then none"
        else:
            steered = offered & ~getattr(checks.dut, held).ready
            text = f"again and again, `{held}` never ready"
        checks.assume("script", ~ResetSignal() & steered, f"descriptor {fields}, {text}")
    return steer


def attention(config: AttentionConfig) -> Harness:
    def jobs(checks: Checks) -> None:
        desc = checks.dut.desc.payload
        bad_now = ((desc.nq == 0) | (desc.nkv == 0) | (desc.head_dim == 0)
                   | (desc.head_dim > config.max_head_dim) | (desc.heads == 0)
                   | (desc.kv_heads == 0))
        if not config.causal:
            bad_now = bad_now | desc.causal
        # H not a multiple of Hkv: found while dividing, some cycles later.
        bad_later = ~bad_now & ((desc.heads % desc.kv_heads) != 0)
        _small_sizes(checks, "nq", "nkv", "heads", "kv_heads")
        _job_rules(checks, _descriptor_rules(checks, bad_now, bad_later), "o")
    # The first output beat of the smallest job leaves about 46 clocks after reset (set-up,
    # q load, a QK pass, the softmax pipeline, a PV pass, the division): the output covers
    # come from that job's run.
    smallest = {"nq": 1, "nkv": 1, "head_dim": 1, "heads": 1, "kv_heads": 1, "scale": 1}
    return block_harness(config, jobs, scenarios=(
        Scenario("one_job", 52, _jobs(smallest), ("o_stream_hold", "o_needs_job",
                                                  "softmax_busy_cycles_counts_up")),),
        unreachable={"stall_out_cycles_counts_up": (
            "counts only once the output queue's 32 credits are spent: 32 tiles waiting on "
            "`o`, over 200 clocks")})


def pim(config: PimConfig) -> Harness:
    """The generic properties; a PIM-specific set (timing safety) comes in ``extra`` of a
    harness factory of its own that the registry's ``formal`` then names."""
    return block_harness(config)
