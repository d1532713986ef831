#!/usr/bin/env python3
"""Write the tiny safetensors and Keras HDF5 fixtures that Tests/WeightFormatsTests read.

Run with the TensorFlow venv (tensorflow-cpu, keras 3, tf-keras, h5py, safetensors, ml_dtypes; needed
here only, never by the tests):

    /work/venv-tf/bin/pip install tensorflow-cpu keras tf-keras h5py safetensors ml_dtypes
    /work/venv-tf/bin/python tools/goldens/tiny_formats.py [OUT_DIR]

OUT_DIR defaults to Tests/WeightFormatsTests/Fixtures beside this script's repo. Files written:

  tiny.safetensors        every dtype the reader converts (F32 4-d, F16 with edge cases, BF16, F64,
                          I64 incl. a 0-dim scalar, I32), a zero-size tensor, __metadata__.
  tiny_keras2.h5          tf_keras (Keras 2) model.save_weights("x.h5"): root attribute layer_names,
                          per-layer weight_names like "stem_conv/kernel:0".
  tiny_keras3.weights.h5  Keras 3 model.save_weights("x.weights.h5"): layers/<class>/vars/<i>, plus
                          optimizer/vars/<i> (skipped by the reader).
  tiny_keras_legacy.h5    hand-written with h5py in the style of old keras.applications files and of
                          model.save("x.h5"): weights under model_weights/, fixed-length string
                          attributes, layer_names split into layer_names0/layer_names1 (as Keras
                          does for long attributes), Keras 1 weight names, a gzip-compressed chunked
                          float16 dataset and a big-endian float64 one.
  tiny_keras2.safetensors the tensors of tiny_keras2.h5 under the same names (cross-reader check).
  tiny_formats_expected.json  for each file, its tensors in the order the Swift readers return them:
                          name, shape, source dtype (TensorDType raw value), values as float32.

The same small functional model (Normalization, Conv2D, BatchNormalization, DepthwiseConv2D with
depth_multiplier 2, Dense) is built with Keras 2 and Keras 3, with weights set to multiples of 1/64
(exact in float16/bfloat16), so the expected values do not depend on the file under test.
"""
import json
import os
import re
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import h5py  # noqa: E402
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import safetensors  # noqa: E402

RNG = np.random.default_rng(20240601)
DTYPE_NAMES = {
    np.dtype("float32"): "float32",
    np.dtype("float16"): "float16",
    np.dtype("float64"): "float64",
    np.dtype("int64"): "int64",
    np.dtype("int32"): "int32",
    np.dtype(ml_dtypes.bfloat16): "bfloat16",
}


def grid(shape):
    """Values k/64, k in [-100, 100]: exact in float16 and bfloat16."""
    return (RNG.integers(-100, 101, size=shape) / 64.0).astype(np.float32)


def entry(name, array):
    array = np.asarray(array)
    dtype = DTYPE_NAMES[np.dtype(array.dtype.newbyteorder("="))]
    values = array.astype(np.float32).reshape(-1)
    return {"name": name, "shape": list(array.shape), "dtype": dtype,
            "values": [float(v) for v in values]}


def build(keras, names=True):
    """The tiny model; `names=False` leaves the last Conv2D unnamed (Keras picks "conv2d")."""
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Normalization(axis=-1, name="norm")(inp)
    x = keras.layers.Conv2D(4, 3, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.Conv2D(5, 1, use_bias=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3, name="fc")(x)
    model = keras.Model(inp, x, name="tiny")
    # Deterministic weights; the Normalization count is an int64 scalar.
    for layer in model.layers:
        new = []
        for w in layer.get_weights():
            if w.dtype == np.int64:
                new.append(np.array(1234, dtype=np.int64))
            else:
                new.append(grid(w.shape))
        layer.set_weights(new)
    # BatchNorm variances must stay positive to be realistic.
    bn = model.get_layer("stem_bn")
    g, b, m, v = bn.get_weights()
    bn.set_weights([g, b, m, np.abs(v) + 0.25])
    return model


def keras2_files(out):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras
    model = build(tf_keras)
    path = os.path.join(out, "tiny_keras2.h5")
    model.save_weights(path)
    expected = []
    tensors = {}
    for layer in model.layers:
        for w in layer.weights:
            name = f"{layer.name}/{w.name}"
            value = w.numpy()
            expected.append(entry(name, value))
            tensors[name] = value
    # Same names and values as safetensors (int64 scalar included).
    st_path = os.path.join(out, "tiny_keras2.safetensors")
    from safetensors.numpy import save_file
    save_file({k: np.array(v, order="C") for k, v in tensors.items()}, st_path)
    return {"tiny_keras2.h5": expected, "tiny_keras2.safetensors": order_like_safetensors(st_path, expected)}


def natural_key(path):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", path) if p != ""]


def keras3_file(out):
    import keras
    model = build(keras)
    # A built optimizer is saved too (under optimizer/vars/); the reader must skip it. Plain SGD keeps
    # it to two variables (iterations, learning_rate) and building it leaves the weights unchanged.
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    model.optimizer.build(model.trainable_variables)
    path = os.path.join(out, "tiny_keras3.weights.h5")
    model.save_weights(path)
    # Map each layer path (layers/<class>[_k]) to the model layer through the `name` attribute that
    # Keras 3 writes on the vars group, then take the values from the model, not the file.
    by_name = {layer.name: layer for layer in model.layers}
    expected = []
    with h5py.File(path, "r") as f:
        paths = []
        f.visititems(lambda n, o: paths.append(n) if isinstance(o, h5py.Dataset) else None)
        assert any(p.startswith("optimizer/") for p in paths), "expected optimizer variables in the file"
        for p in paths:
            if p.startswith("optimizer/"):
                continue
            m = re.fullmatch(r"(layers/[^/]+)/vars/(\d+)", p)
            assert m, f"unexpected Keras 3 layout: {p}"
            layer = by_name[f[m.group(1) + "/vars"].attrs["name"]]
            value = np.asarray(layer.weights[int(m.group(2))].numpy())
            stored = f[p][()]
            assert stored.dtype == value.dtype and np.array_equal(stored, value), p
            expected.append((p, value))
    expected.sort(key=lambda pv: natural_key(pv[0]))
    return {"tiny_keras3.weights.h5": [entry(p, v) for p, v in expected]}


def legacy_file(out):
    path = os.path.join(out, "tiny_keras_legacy.h5")
    conv_w = grid((2, 2, 3, 2))
    conv_b = grid((2,))
    dense_w = grid((2, 3)).astype(np.float16)
    dense_b = grid((3,)).astype(np.dtype(">f8"))
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = np.bytes_('{"class_name": "Sequential"}')
        g = f.create_group("model_weights")
        layers = [b"input_1", b"conv1", b"fc"]
        # Fixed-length strings (dtype S), split as Keras's save_attributes_to_hdf5_group does.
        g.attrs["layer_names0"] = np.array(layers[:2], dtype="S7")
        g.attrs["layer_names1"] = np.array(layers[2:], dtype="S7")
        g.attrs["backend"] = np.bytes_("tensorflow")
        g.attrs["keras_version"] = np.bytes_("1.2.2")
        g.create_group("input_1").attrs["weight_names"] = np.array([], dtype=np.float64)
        c = g.create_group("conv1")
        c.attrs["weight_names"] = np.array([b"conv1_W_1:0", b"conv1_b_1:0"], dtype="S11")
        c.create_dataset("conv1_W_1:0", data=conv_w)
        c.create_dataset("conv1_b_1:0", data=conv_b)
        d = g.create_group("fc")
        d.attrs["weight_names"] = np.array([b"fc/kernel:0", b"fc/bias:0"], dtype="S11")
        d.create_dataset("fc/kernel:0", data=dense_w, chunks=(1, 3), compression="gzip")
        d.create_dataset("fc/bias:0", data=dense_b)
        # Optimizer state of a model.save() file; not weights, never read.
        f.create_group("optimizer_weights").create_dataset("iterations:0", data=np.int64(5))
    expected = [entry("conv1/conv1_W_1:0", conv_w), entry("conv1/conv1_b_1:0", conv_b),
                entry("fc/fc/kernel:0", dense_w), entry("fc/fc/bias:0", dense_b)]
    return {"tiny_keras_legacy.h5": expected}


def order_like_safetensors(path, expected):
    """Reorders `expected` the way the Swift reader returns a safetensors file: by data offset."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    by_name = {e["name"]: e for e in expected}
    order = sorted(header, key=lambda k: (header[k]["data_offsets"][0], header[k]["data_offsets"][1], k))
    return [by_name[k] for k in order]


def safetensors_file(out):
    path = os.path.join(out, "tiny.safetensors")
    half_special = np.array([0.0, -0.0, 6e-8, 1e-5, -3e-5, 65504.0, -2.5], dtype=np.float16)
    arrays = {
        "conv.weight": grid((2, 3, 2, 2)),
        "half": grid((5,)).astype(np.float16),
        "half_special": half_special,
        "bf16": grid((2, 2)).astype(ml_dtypes.bfloat16),
        "double": np.array([0.1, -2.5, 1e-3], dtype=np.float64),
        "ids": np.arange(-3, 3, dtype=np.int64),
        "num_batches_tracked": np.array(7, dtype=np.int64),
        "int32": np.array([1, -2, 300000], dtype=np.int32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    specs = {}
    for k, v in arrays.items():
        v = np.array(v, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        arrays[k] = v
        specs[k] = safetensors.TensorSpec(dtype=v.dtype.name, shape=v.shape, data_ptr=v.ctypes.data, data_len=v.nbytes)
    safetensors.serialize_file(specs, path, metadata={"format": "pt", "note": "tiny fixture"})
    expected = [entry(k, v) for k, v in arrays.items()]
    return {"tiny.safetensors": order_like_safetensors(path, expected)}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "Tests", "WeightFormatsTests", "Fixtures")
    os.makedirs(out, exist_ok=True)
    files = {}
    files.update(safetensors_file(out))
    files.update(legacy_file(out))
    files.update(keras3_file(out))
    files.update(keras2_files(out))
    with open(os.path.join(out, "tiny_formats_expected.json"), "w") as f:
        # One tensor per line: readable diffs, small file.
        f.write('{"files": {\n')
        for i, (name, tensors) in enumerate(sorted(files.items())):
            f.write(f' {json.dumps(name)}: [\n')
            f.write(",\n".join("  " + json.dumps(t, separators=(",", ":")) for t in tensors))
            f.write("\n ]" + ("," if i + 1 < len(files) else "") + "\n")
        f.write("}}\n")
    for name in sorted(files) + ["tiny_formats_expected.json"]:
        os.chmod(os.path.join(out, name), 0o644)  # safetensors writes 0600 files
        print(f"{name}: {os.path.getsize(os.path.join(out, name))} bytes")


if __name__ == "__main__":
    main()
