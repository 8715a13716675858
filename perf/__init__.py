"""Speed measurements (not tests): ``python -m perf.<script>``; figures and commands in docs/perf.md.

loader_throughput, natural_jpegs, eval_throughput, step_overhead, gpu_steps, subset_cost, peak_memory.
"""
