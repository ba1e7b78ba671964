"""One MPI rank of a sharded layer: ``shard_worker.py LIBRARY DIR`` (under mpirun).

Initialises MPI (the compiled layer expects it), calls ``layer`` of LIBRARY on
DIR/in-RANK.npz (arguments in order) and writes ``out`` and the updated ``blocks`` (when
the layer has a cache) to DIR/out-RANK.npz.
"""

import ctypes
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from attn import runtime as rt  # noqa: E402


def main(library, directory):
    # Global: OpenMPI's plugins resolve libmpi's symbols when they load.
    mpi = ctypes.CDLL("libmpi.so.40", mode=ctypes.RTLD_GLOBAL)
    assert mpi.MPI_Init(None, None) == 0
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    with np.load(os.path.join(directory, f"in-{rank}.npz")) as data:
        inputs = {name: data[name] for name in data.files}
        dtype = str(data["dtype"])
    del inputs["dtype"]
    out = np.zeros((inputs["x"].shape[0], inputs["x"].shape[1]), dtype=inputs["x"].dtype)
    rt.CompiledLibrary(library).call("layer", list(inputs.values()), [out])
    updated = {"blocks": inputs["blocks"]} if "blocks" in inputs else {}
    np.savez(os.path.join(directory, f"out-{rank}.npz"), out=out, dtype=dtype, **updated)
    mpi.MPI_Finalize()


if __name__ == "__main__":
    main(*sys.argv[1:])
