// The outside baseline of bench_gguf.py: ggml's own CPU mul_mat of a GGUF
// weight, linked against a ggml built from its public source (not part of
// this project). Usage:
//   ggml_mul_mat TYPE K N M THREADS RUNS BLOCKS X Y
// reads the weight's blocks [N, K / elements * bytes] and x [M, K] f32, writes
// y [M, N] f32 and prints the median time of RUNS calls in seconds.
#include "ggml-cpu.h"
#include "ggml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void readFile(const char *path, void *data, size_t size) {
  FILE *f = fopen(path, "rb");
  if (!f || fread(data, 1, size, f) != size) {
    fprintf(stderr, "cannot read %zu bytes of %s\n", size, path);
    exit(1);
  }
  fclose(f);
}

static int compareDoubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: %s TYPE K N M THREADS RUNS BLOCKS X Y\n", argv[0]);
    return 1;
  }
  enum ggml_type type = (enum ggml_type)atoi(argv[1]);
  int64_t k = atoll(argv[2]), n = atoll(argv[3]), m = atoll(argv[4]);
  int threads = atoi(argv[5]), runs = atoi(argv[6]);
  size_t weightBytes = ggml_row_size(type, k) * n;
  struct ggml_init_params params = {
      .mem_size = weightBytes + (size_t)(m * k + m * n) * 4 * 2 + (256u << 20),
      .mem_buffer = NULL,
      .no_alloc = false};
  struct ggml_context *ctx = ggml_init(params);
  struct ggml_tensor *w = ggml_new_tensor_2d(ctx, type, k, n);
  struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, m);
  readFile(argv[7], w->data, weightBytes);
  readFile(argv[8], x->data, (size_t)(m * k) * 4);
  struct ggml_tensor *y = ggml_mul_mat(ctx, w, x);
  struct ggml_cgraph *graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, y);
  double *times = calloc(runs, sizeof(double));
  ggml_graph_compute_with_ctx(ctx, graph, threads); // warm-up
  for (int r = 0; r < runs; ++r) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ggml_graph_compute_with_ctx(ctx, graph, threads);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    times[r] = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  }
  qsort(times, runs, sizeof(double), compareDoubles);
  FILE *f = fopen(argv[9], "wb");
  fwrite(y->data, 4, (size_t)(m * n), f);
  fclose(f);
  printf("%.9f\n", times[runs / 2]);
  ggml_free(ctx);
  return 0;
}
