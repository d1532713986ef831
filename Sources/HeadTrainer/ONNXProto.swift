import Foundation

/// The part of ONNX's protobuf schema (onnx/onnx.proto3, IR version 8) that `train-head export
/// --format onnx` writes, with a hand-written encoder.
///
/// Why hand-written rather than swift-protobuf: swift-protobuf needs protoc to generate code from
/// onnx.proto, and protoc is not installed here; the wire format of the twelve messages used (varints,
/// length-delimited fields, one fixed32 float) takes the 80 lines below, with nothing to regenerate.
/// Field numbers are onnx.proto's; only the fields this exporter sets are modelled.
enum ONNX {
    enum DataType: Int { case float = 1, uint8 = 2, int64 = 7 }

    struct Tensor {
        var name: String
        var dims: [Int]
        var dataType: DataType = .float
        /// Little-endian values (float32 LE for `.float`, int64 LE for `.int64`).
        var raw: Data

        init(name: String, dims: [Int], floats: [Float]) {
            precondition(dims.reduce(1, *) == floats.count, "ONNX tensor \(name): \(floats.count) values for dims \(dims)")
            self.name = name; self.dims = dims
            var d = Data(capacity: floats.count * 4)
            for v in floats { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
            raw = d
        }

        init(name: String, dims: [Int], int64s: [Int]) {
            self.name = name; self.dims = dims; dataType = .int64
            var d = Data(capacity: int64s.count * 8)
            for v in int64s { withUnsafeBytes(of: Int64(v).littleEndian) { d.append(contentsOf: $0) } }
            raw = d
        }
    }

    enum Attribute {
        case int(String, Int), float(String, Float), ints(String, [Int])
    }

    struct Node {
        var op: String, name: String, inputs: [String], outputs: [String], attributes: [Attribute] = []
    }

    /// A tensor's element type and shape; a dimension is a number or a symbolic name (the batch, `N`).
    struct ValueInfo {
        enum Dim { case value(Int), symbol(String) }
        var name: String, type: DataType, shape: [Dim]
    }

    struct Graph {
        var name: String
        var nodes: [Node] = []
        var initializers: [Tensor] = []
        var inputs: [ValueInfo] = []
        var outputs: [ValueInfo] = []
    }

    struct Model {
        var irVersion = 8
        var opset = 17
        var producer = "transfer-workbench train-head"
        var docString = ""
        var metadata: [(key: String, value: String)] = []
        var graph: Graph
    }

    // MARK: Encoding

    /// Protobuf wire format: each field is a varint key (number << 3 | wire type), then a varint
    /// (type 0), a length-prefixed byte string (type 2, also used for nested messages and packed
    /// repeated numbers) or four little-endian bytes (type 5).
    struct Writer {
        var data = Data()

        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 { data.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
            data.append(UInt8(v))
        }
        mutating func key(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }
        mutating func int(_ field: Int, _ value: Int) { key(field, 0); varint(UInt64(bitPattern: Int64(value))) }
        mutating func bytes(_ field: Int, _ value: Data) { key(field, 2); varint(UInt64(value.count)); data.append(value) }
        mutating func string(_ field: Int, _ value: String) { bytes(field, Data(value.utf8)) }
        mutating func float(_ field: Int, _ value: Float) {
            key(field, 5)
            withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        mutating func packed(_ field: Int, _ values: [Int]) {
            var inner = Writer()
            for v in values { inner.varint(UInt64(bitPattern: Int64(v))) }
            bytes(field, inner.data)
        }
        mutating func message(_ field: Int, _ build: (inout Writer) -> Void) {
            var inner = Writer()
            build(&inner)
            bytes(field, inner.data)
        }
    }

    static func encode(_ m: Model) -> Data {
        var w = Writer()
        w.int(1, m.irVersion)                                     // ModelProto.ir_version
        w.string(2, m.producer)                                   // producer_name
        if !m.docString.isEmpty { w.string(6, m.docString) }      // doc_string
        w.message(7) { encode(m.graph, into: &$0) }               // graph
        w.message(8) { $0.string(1, ""); $0.int(2, m.opset) }    // opset_import: domain "", version
        for (k, v) in m.metadata { w.message(14) { $0.string(1, k); $0.string(2, v) } }   // metadata_props
        return w.data
    }

    static func encode(_ g: Graph, into w: inout Writer) {
        for n in g.nodes { w.message(1) { encode(n, into: &$0) } }          // GraphProto.node
        w.string(2, g.name)                                                  // name
        for t in g.initializers { w.message(5) { encode(t, into: &$0) } }   // initializer
        for v in g.inputs { w.message(11) { encode(v, into: &$0) } }        // input
        for v in g.outputs { w.message(12) { encode(v, into: &$0) } }       // output
    }

    static func encode(_ n: Node, into w: inout Writer) {
        for i in n.inputs { w.string(1, i) }       // NodeProto.input
        for o in n.outputs { w.string(2, o) }      // output
        w.string(3, n.name)                        // name
        w.string(4, n.op)                          // op_type
        for a in n.attributes {                    // attribute: AttributeProto name 1, f 2, i 3, ints 8, type 20
            w.message(5) { a2 in
                switch a {
                case .float(let name, let v): a2.string(1, name); a2.float(2, v); a2.int(20, 1)
                case .int(let name, let v): a2.string(1, name); a2.int(3, v); a2.int(20, 2)
                case .ints(let name, let v): a2.string(1, name); a2.packed(8, v); a2.int(20, 7)
                }
            }
        }
    }

    static func encode(_ t: Tensor, into w: inout Writer) {
        if !t.dims.isEmpty { w.packed(1, t.dims) }   // TensorProto.dims (none: a scalar)
        w.int(2, t.dataType.rawValue)        // data_type
        w.string(8, t.name)                  // name
        w.bytes(9, t.raw)                    // raw_data
    }

    static func encode(_ v: ValueInfo, into w: inout Writer) {
        w.string(1, v.name)                  // ValueInfoProto.name
        w.message(2) { type in               // type: TypeProto.tensor_type (1)
            type.message(1) { tensor in
                tensor.int(1, v.type.rawValue)           // elem_type
                tensor.message(2) { shape in             // shape: TensorShapeProto.dim (1)
                    for d in v.shape {
                        shape.message(1) { dim in
                            switch d {
                            case .value(let n): dim.int(1, n)        // dim_value
                            case .symbol(let s): dim.string(2, s)    // dim_param
                            }
                        }
                    }
                }
            }
        }
    }
}
