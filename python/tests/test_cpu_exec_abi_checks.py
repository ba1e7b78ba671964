"""The ABI debug mode, ``attn-compile --abi-checks`` (docs/ABI.md, "ABI checks"), on the CPU.

The layer (``ir.layer_function``: static weight shapes and static cache dims but the page count)
compiled with the checks must give the same bits as without them for good inputs, and return
status 8 (nothing written: cache bit-identical, NaN-prefilled output untouched) when an array's
shape differs from the function's type in a static size: a weight of the wrong shape, a cache of
another page size or layer count.
"""

import numpy as np
import pytest

from cpu_exec_support import Build, nan_filled, needs_attn_compile, values

from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402

pytestmark = needs_attn_compile

CFG = ir.LayerConfig(dtype="bf16")


def module_text():
    return ir.module_text(ir.layer_function("layer", CFG))


CHECKED = Build("abi-checks", module_text, flags=["--abi-checks"])
PLAIN = Build("abi-checks-off", module_text)


def inputs():
    return ir.random_layer_inputs(np.random.default_rng(1700), CFG, [5, 0], [1, 7])


def call(build, arrays):
    out = nan_filled((arrays["x"].shape[0], CFG.hidden), CFG.dtype)
    build.library().call("layer", list(arrays.values()), [out])
    return out


def test_good_inputs_as_without_checks():
    checked, plain = inputs(), inputs()
    np.testing.assert_array_equal(call(CHECKED, checked), call(PLAIN, plain))
    np.testing.assert_array_equal(checked["blocks"], plain["blocks"])


def wider_wq(arrays):
    wq = arrays["wq"]
    arrays["wq"] = np.zeros((wq.shape[0], wq.shape[1] + 8), wq.dtype)


def other_page_size(arrays):
    p, two, layers, page, heads, dim = arrays["blocks"].shape
    arrays["blocks"] = np.zeros((p * 2, two, layers, page // 2, heads, dim),
                                arrays["blocks"].dtype)


def fewer_layers(arrays):
    arrays["blocks"] = np.ascontiguousarray(arrays["blocks"][:, :, :1])


def wrong_hidden(arrays):
    arrays["x"] = np.zeros((arrays["x"].shape[0], CFG.hidden * 2), arrays["x"].dtype)


@pytest.mark.parametrize("change", [wider_wq, other_page_size, fewer_layers, wrong_hidden])
def test_size_mismatch_is_reported(change):
    arrays = inputs()
    change(arrays)
    before = arrays["blocks"].copy()
    out = nan_filled((arrays["x"].shape[0], CFG.hidden), CFG.dtype)
    with pytest.raises(rt.EntryError, match="status 8: a tensor argument's size differs") as e:
        CHECKED.library().call("layer", list(arrays.values()), [out])
    assert e.value.status == 8
    np.testing.assert_array_equal(arrays["blocks"], before)
    assert np.isnan(values(out, CFG.dtype)).all()
