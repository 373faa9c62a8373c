"""The digits CNN of `examples/train_digits` in JAX, to time one training epoch.

conv 3x3 (1 -> 8 channels, padding 1) -> relu -> max pool 2x2 -> flatten -> dense
128 -> 10 -> softmax cross-entropy, Adam with learning rate 0.01, batches of 32,
float32 on the CPU. The training step is compiled once with `jax.jit`; the script
reports the median wall time of an epoch over the epochs after the first.

Usage: python3 scripts/jax_digits.py [--epochs 10]
"""

import argparse
import gzip
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "digits.csv.gz"


def load():
    rows = np.loadtxt(gzip.open(DATA, "rt"), delimiter=",", dtype=np.float32)
    images = rows[:, :64].reshape(-1, 1, 8, 8) / 16.0
    labels = rows[:, 64].astype(np.int32)
    return images, labels


def init(key):
    k1, k2 = jax.random.split(key)
    return {
        "conv_weight": jax.random.normal(k1, (8, 1, 3, 3), jnp.float32) * np.sqrt(2.0 / 9.0),
        "conv_bias": jnp.full((8,), 0.01, jnp.float32),
        "dense_weight": jax.random.normal(k2, (128, 10), jnp.float32) * np.sqrt(2.0 / 128.0),
        "dense_bias": jnp.full((10,), 0.01, jnp.float32),
    }


def loss(params, images, labels):
    features = jax.lax.conv_general_dilated(
        images, params["conv_weight"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
    ) + params["conv_bias"][None, :, None, None]
    activated = jax.nn.relu(features)
    pooled = jax.lax.reduce_window(activated, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    logits = pooled.reshape(pooled.shape[0], -1) @ params["dense_weight"] + params["dense_bias"]
    log_probabilities = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probabilities, labels[:, None], axis=1))


@jax.jit
def step(params, moments, count, images, labels):
    value, grads = jax.value_and_grad(loss)(params, images, labels)
    first, second = moments
    count = count + 1
    first = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, first, grads)
    second = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, second, grads)
    scale1 = 1.0 / (1.0 - 0.9**count)
    scale2 = 1.0 / (1.0 - 0.999**count)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - 0.01 * (m * scale1) / (jnp.sqrt(v * scale2) + 1e-8), params, first, second
    )
    return params, (first, second), count, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    images, labels = load()
    rng = np.random.default_rng(42)
    order = rng.permutation(len(labels))
    train = order[: int(0.8 * len(labels))]
    test = order[int(0.8 * len(labels)) :]

    params = init(jax.random.PRNGKey(42))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    moments = (zeros, zeros)
    count = jnp.float32(0.0)
    seconds = []
    for epoch in range(args.epochs):
        permutation = rng.permutation(train)
        started = time.perf_counter()
        for start in range(0, len(permutation), 32):
            batch = permutation[start : start + 32]
            params, moments, count, value = step(params, moments, count, images[batch], labels[batch])
        value.block_until_ready()
        seconds.append(time.perf_counter() - started)
    logits_fn = jax.jit(lambda p, x: jnp.argmax(
        jax.lax.reduce_window(
            jax.nn.relu(jax.lax.conv_general_dilated(x, p["conv_weight"], (1, 1), ((1, 1), (1, 1)),
                                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
                        + p["conv_bias"][None, :, None, None]),
            -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID").reshape(x.shape[0], -1)
        @ p["dense_weight"] + p["dense_bias"], axis=1))
    accuracy = float(np.mean(np.asarray(logits_fn(params, images[test])) == labels[test]))
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    print(f"test accuracy {accuracy:.4f}")
    print(f"first epoch (with compilation) {seconds[0] * 1e3:.1f} ms")
    print(f"median epoch after the first {statistics.median(seconds[1:]) * 1e3:.2f} ms over {len(seconds) - 1} epochs")


if __name__ == "__main__":
    main()
