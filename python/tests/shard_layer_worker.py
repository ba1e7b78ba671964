"""One MPI rank of a sharded MAX-level layer (``test_package_shard.py``), under mpirun:
``shard_layer_worker.py STRATEGY DIR``. Builds and compiles the layer of
``package_support.sharded_layer``, calls it on its shard of the arguments in DIR/in.npz
(``shard_arguments``) and writes ``out`` and its ``blocks`` to DIR/out-RANK.npz."""

import ctypes
import os
import sys

import numpy as np

from package_support import sharded_layer


def main(strategy, directory):
    # Global: OpenMPI's plugins resolve libmpi's symbols when they load.
    mpi = ctypes.CDLL("libmpi.so.40", mode=ctypes.RTLD_GLOBAL)
    assert mpi.MPI_Init(None, None) == 0
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    layer = sharded_layer(strategy)
    compiled = layer.compile(target="cpu")
    with np.load(os.path.join(directory, "in.npz")) as data:
        arguments = {name: data[name] for name in data.files}
    arguments["layer_idx"] = np.int32(arguments["layer_idx"])
    mine = layer.shard_arguments(arguments, rank)
    out = compiled.call(mine)
    np.savez(os.path.join(directory, f"out-{rank}.npz"), out=out, blocks=mine["blocks"])
    mpi.MPI_Finalize()


if __name__ == "__main__":
    main(*sys.argv[1:])
