#!/usr/bin/env python3
"""Writes the small ONNX models the parser fuzz test mutates (needs the onnx package)."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(3)


def save(name, nodes, inits, inputs, outputs, opset=13):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="dipviz corpus", opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, f"{name}.onnx"))


def f(name, *shape):
    return numpy_helper.from_array(rng.uniform(-1, 1, size=shape).astype(np.float32), name)


x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])
save("conv_relu_pool",
     [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
      helper.make_node("Relu", ["c"], ["r"]),
      helper.make_node("LRN", ["r"], ["n"], size=3),
      helper.make_node("MaxPool", ["n"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
     [f("w", 3, 2, 3, 3), f("b", 3)], [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3, 3])])

save("flatten_gemm_softmax",
     [helper.make_node("Shape", ["x"], ["s"]),
      helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
      helper.make_node("Unsqueeze", ["n", "axes"], ["nu"]),
      helper.make_node("Concat", ["nu", "minus1"], ["shape"], axis=0),
      helper.make_node("Reshape", ["x", "shape"], ["flat"]),
      helper.make_node("Gemm", ["flat", "w", "b"], ["g"], transB=1),
      helper.make_node("Dropout", ["g"], ["d"]),
      helper.make_node("Softmax", ["d"], ["y"], axis=1)],
     [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
      numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
      numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"),
      f("w", 4, 72), f("b", 4)],
     [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])

w_q = numpy_helper.from_array(rng.integers(-100, 100, size=(3, 2, 3, 3)).astype(np.int8), "w_q")
save("qdq_conv",
     [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
      helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
      helper.make_node("DequantizeLinear", ["w_q", "ws", "wz"], ["w"]),
      helper.make_node("Conv", ["xd", "w"], ["c"], kernel_shape=[3, 3]),
      helper.make_node("BatchNormalization", ["c", "g", "bb", "m", "v"], ["bn"]),
      helper.make_node("Pad", ["bn", "pads"], ["y"], mode="reflect")],
     [numpy_helper.from_array(np.array(0.02, dtype=np.float32), "xs"),
      numpy_helper.from_array(np.array(128, dtype=np.uint8), "xz"), w_q,
      numpy_helper.from_array(np.array(0.01, dtype=np.float32), "ws"),
      numpy_helper.from_array(np.array(0, dtype=np.int8), "wz"),
      f("g", 3), f("bb", 3), f("m", 3), numpy_helper.from_array(np.array([1, 2, 0.5], dtype=np.float32), "v"),
      numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")],
     [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 6, 6])])
print("corpus written")

# A model whose weights live in an external file beside it.
ext = helper.make_model(helper.make_graph(
    [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1])], "external",
    [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 6, 6])],
    initializer=[numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2, 1, 1) / 10, "w"),
                 numpy_helper.from_array(np.array([1, 2, 3], dtype=np.float32), "b")]),
    producer_name="dipviz corpus", opset_imports=[helper.make_opsetid("", 13)])
# onnx appends to an existing data file: start from none.
if os.path.exists(os.path.join(HERE, "External", "external.weights")):
    os.remove(os.path.join(HERE, "External", "external.weights"))
onnx.save(ext, os.path.join(HERE, "External", "external.onnx"), save_as_external_data=True,
          all_tensors_to_one_file=True, location="external.weights", size_threshold=0)
print("external-data model written")

# Hostile models (Hostile/): each must be refused with a typed error. The checker is not run on
# them, since most are invalid on purpose.
HOSTILE = os.path.join(HERE, "Hostile")
os.makedirs(HOSTILE, exist_ok=True)


def hostile(name, nodes, inits, inputs=None, outputs=None):
    graph = helper.make_graph(nodes, name, inputs if inputs is not None else [x],
                              outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, producer_name="dipviz corpus", opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, os.path.join(HOSTILE, f"{name}.onnx"))


def external(name, dims, entries):
    """A float initializer 'w' whose data is external, with the given external_data entries."""
    t = TensorProto()
    t.name = "w"
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


add_w = [helper.make_node("Add", ["x", "w"], ["y"])]
# 24 bytes of weights (six floats), next to the models that point into them.
np.arange(6, dtype=np.float32).tofile(os.path.join(HOSTILE, "weights.bin"))
hostile("external_negative_offset", add_w, [external("w", [6], [("location", "weights.bin"), ("offset", "-8"), ("length", "24")])])
hostile("external_offset_not_a_number", add_w, [external("w", [6], [("location", "weights.bin"), ("offset", "eight")])])
hostile("external_length_past_end", add_w, [external("w", [6], [("location", "weights.bin"), ("offset", "16"), ("length", "24")])])
hostile("external_length_disagrees", add_w, [external("w", [4], [("location", "weights.bin"), ("length", "24")])])
hostile("external_huge_shape", add_w, [external("w", [1 << 40, 1 << 20], [("location", "weights.bin")])])
hostile("external_offset_past_end", add_w, [external("w", [6], [("location", "weights.bin"), ("offset", "9000000000000000000"), ("length", "24")])])
hostile("external_link", add_w, [external("w", [6], [("location", "link.bin"), ("length", "24")])])


def raw(name, dims, data=b""):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.raw_data = data
    return t


hostile("initializer_dims_overflow", add_w, [raw("w", [1 << 62, 1 << 62])])
hostile("initializer_negative_dims", add_w, [raw("w", [-3, 2])])
hostile("initializer_zero_then_overflow", [helper.make_node("Flatten", ["w"], ["y"], axis=1)], [raw("w", [0, 1 << 40, 1 << 40])])
tensor_attribute = helper.make_attribute("value", 1.0)
tensor_attribute.type = onnx.AttributeProto.TENSOR
tensor_attribute.ClearField("f")
node = helper.make_node("Constant", [], ["y"])
node.attribute.append(tensor_attribute)
hostile("tensor_attribute_without_tensor", [node], [])
print("hostile models written")
