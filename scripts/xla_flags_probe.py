"""Matmul and convolution speed of XLA:CPU under several ``XLA_FLAGS`` settings, one process each.

    python scripts/xla_flags_probe.py

XLA reads ``XLA_FLAGS`` once per process, so each setting runs in a fresh subprocess (which does
not import nstjax, whose import would add its own default flag). Prints the median GFLOP/s of a
1024x1024 matmul in bf16 and fp32 and of a 32x32x256->256 3x3 convolution in fp32 and bf16.
"""

import os
import subprocess
import sys

SETTINGS = (
    "",  # XLA's defaults: YNNPACK fusions on
    "--xla_cpu_experimental_ynn_fusion_type=",  # all YNNPACK fusions off (nstjax's default)
    "--xla_cpu_experimental_ynn_fusion_type=individual_dot",  # YNNPACK for matmuls only
)

PROBE = r"""
import time
import jax, jax.numpy as jnp

def median_s(f, *args):
    f(*args).block_until_ready()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        f(*args).block_until_ready()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]

n = 1024
out = []
for dtype in (jnp.bfloat16, jnp.float32):
    a = jax.random.normal(jax.random.key(1), (n, n)).astype(dtype)
    b = (jax.random.normal(jax.random.key(2), (n, n)) / n).astype(dtype)
    f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    out.append(f"matmul {dtype.__name__} {2 * n**3 / median_s(f, a, b) / 1e9:.0f}")
dn = ("NHWC", "HWIO", "NHWC")
x = jax.random.normal(jax.random.key(0), (1, 32, 32, 256))
k = jax.random.normal(jax.random.key(3), (3, 3, 256, 256)) / 48
for dtype in (jnp.float32, jnp.bfloat16):
    f = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
        x.astype(dtype), k.astype(dtype), (1, 1), "SAME", dimension_numbers=dn))
    out.append(f"conv {dtype.__name__} {2 * 32 * 32 * 256 * 256 * 9 / median_s(f, x, k) / 1e9:.0f}")
print(", ".join(out) + " GFLOP/s")
"""


def main() -> int:
    for flags in SETTINGS:
        env = {**os.environ, "XLA_FLAGS": flags}
        done = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, cwd="/"
        )
        result = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
        print(f"{flags or '(XLA defaults)':58s} {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
