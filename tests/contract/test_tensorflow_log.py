"""TensorFlow's C++ log lines read as records with a level, and everyone else's lines left alone."""

import logging
import subprocess
import sys

from contract.tensorflow_log import records

BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = "I0000 00:00:1796239297.650564    8505 port.cc:153] oneDNN custom operations are on."
CPU = "I0000 00:00:1796239297.699147    8505 cpu_feature_guard.cc:227] This TensorFlow binary is optimized."
CPU_MORE = "To enable the following instructions: AVX2 AVX512F, rebuild TensorFlow."
NODEDEF = "E0000 00:00:1796239281.827367    8425 node_def_util.cc:682] NodeDef mentions attribute x which is not."
CONVERTER = (
    "W0000 00:00:1796320939.784654    3063 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
    "W0000 00:00:1796320939.784660    3063 tf_tfl_flatbuffer_helpers.cc:367] Ignored drop_control_dependency.",
)
FAILED = "E0000 00:00:1796239281.827367    8425 cuda_executor.cc:12] failed call to cuInit: UNKNOWN ERROR"


def test_records_keep_their_level_and_join_known_continuations() -> None:
    found = list(records([BANNER, ONEDNN, CPU, CPU_MORE, FAILED]))
    assert found == [
        (logging.INFO, "oneDNN custom operations are on. (port.cc:153)"),
        (logging.INFO, f"This TensorFlow binary is optimized. (cpu_feature_guard.cc:227) {CPU_MORE}"),
        (logging.ERROR, "failed call to cuInit: UNKNOWN ERROR (cuda_executor.cc:12)"),
    ]


def test_notices_logged_above_their_weight_are_notices() -> None:
    found = list(records([NODEDEF, *CONVERTER]))
    assert [level for level, _ in found] == [logging.INFO] * 3
    assert [message.split(" (")[0] for _, message in found] == [
        "NodeDef mentions attribute x which is not.",
        "Ignored output_format.",
        "Ignored drop_control_dependency.",
    ]


def test_a_line_after_a_record_is_someone_elses_and_comes_through_unchanged() -> None:
    found = list(
        records([CPU, "error: no published versions under models/mnist", "Traceback (most recent call last):"])
    )
    assert found[1:] == [
        (None, "error: no published versions under models/mnist"),
        (None, "Traceback (most recent call last):"),
    ]


def test_the_live_filter_drops_records_below_the_level_and_passes_the_rest() -> None:
    program = (
        "import os, sys\n"
        "from contract.tensorflow_log import below_level_dropped\n"
        "with below_level_dropped(30):\n"
        f"    os.write(2, {(ONEDNN + chr(10) + FAILED + chr(10)).encode()!r})\n"
        "    print('ours', file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert run.stderr == "tensorflow error: failed call to cuInit: UNKNOWN ERROR (cuda_executor.cc:12)\nours\n"


def test_litert_s_own_lines_keep_their_level() -> None:
    found = list(records(["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "ERROR: failed to prepare"]))
    assert found == [
        (logging.INFO, "Created TensorFlow Lite XNNPACK delegate for CPU. (litert)"),
        (logging.ERROR, "failed to prepare (litert)"),
    ]
