"""The command line: bad usage is one line on stderr and exit code 2; generate writes files."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tensorgates.cli import main


@pytest.mark.parametrize("argv, words", [
    (["sim", "nope"], ["unknown block 'nope'", "systolic_gemm"]),
    (["sim", "systolic_gemm", "--set", "foo=1"], ["unknown parameter 'foo'", "rows"]),
    (["sim", "systolic_gemm", "--set", "rows=0"], ["rows=0", "1 to 32"]),
    (["sim", "systolic_gemm", "--set", "rows=abc"], ["rows='abc'", "int from 1 to 32"]),
    (["sim", "systolic_gemm", "--set", "dataflow=diagonal"], ["dataflow='diagonal'",
                                                               "output_stationary"]),
    (["sim", "systolic_gemm", "--set", "rows"], ["key=value"]),
    (["sim", "systolic_gemm", "--simulator", "xsim"], ["invalid choice: 'xsim'", "icarus"]),
    (["synth", "systolic_gemm", "--target", "asic"], ["--target 'asic'", "ecp5"]),
    (["frobnicate"], ["invalid choice"]),
    (["sim", "systolic_gemm", "--outputs", "x.npz"], ["--outputs needs --inputs"]),
])
def test_bad_usage_is_one_line_and_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err


def test_bad_inputs_are_rejected_before_simulation(tmp_path, capsys):
    path = tmp_path / "in.npz"
    np.savez(path, a=np.zeros((3, 4), np.int8), b=np.zeros((5, 2), np.int8))
    assert main(["sim", "systolic_gemm", "--inputs", str(path)]) == 2
    assert "inner sizes differ" in capsys.readouterr().err
    np.savez(path, a=np.full((3, 4), 200, np.int16), b=np.zeros((4, 2), np.int8))
    assert main(["sim", "systolic_gemm", "--inputs", str(path)]) == 2
    assert "outside the signed 8-bit range" in capsys.readouterr().err
    np.savez(path, a=np.zeros((3, 4), np.int8))
    assert main(["sim", "systolic_gemm", "--inputs", str(path)]) == 2
    assert "lack 'b'" in capsys.readouterr().err


def test_console_script_exit_code():
    done = subprocess.run([sys.executable, "-m", "tensorgates", "sim", "systolic_gemm",
                           "--set", "rows=0"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == ("tensorgates: systolic_gemm: rows=0 is not allowed; "
                                   "expected int from 1 to 32")


def test_generate_writes_verilog_and_metadata(tmp_path):
    assert main(["generate", "systolic_gemm", "--set", "rows=2", "--set", "cols=3",
                 "-o", str(tmp_path)]) == 0
    verilog = (tmp_path / "top.v").read_text()
    assert "module top(" in verilog and "a__payload" in verilog
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["rows"], config["cols"]) == (2, 3)
    members = json.loads((tmp_path / "component.json").read_text())["interface"]["members"]
    assert members["a"]["members"]["payload"]["width"] == 2 * 8
    assert members["c"]["members"]["payload"]["width"] == 3 * 32 + 2 * 16 + 1


def test_synth_json_has_area_and_fmax(tmp_path):
    out = tmp_path / "out.json"
    assert main(["synth", "systolic_gemm", "--set", "rows=2", "--set", "cols=2",
                 "--target", "ecp5", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["fits"] is True and record["device"] == "LFE5U-85F"
    # The PEs multiply with registered LUT shift-add trees, not DSPs: the ECP5's DSP row sat
    # nanoseconds of wire away from the PEs (docs/systolic_gemm.md).
    assert record["dsps"] == 0
    assert record["luts"] > 0 and record["ffs"] > 0 and record["brams"] is not None
    assert 10 < record["fmax_mhz"] < 500
