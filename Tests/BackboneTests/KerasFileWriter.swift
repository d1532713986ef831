import CHDF5
import Foundation
import XCTest

/// Writes Keras 3 `.weights.h5` files with libhdf5, laid out as Keras 3.15 `model.save_weights`
/// writes them (checked against files Keras wrote: tools/goldens/experiment.py keras --weights-dir):
/// `layers/<class>[_n]/vars/<i>` datasets, the layer's name as the string attribute `name` of each
/// `vars` group, a root `vars` group. Lets the tests read real files of any size without Python
/// and without committing them.
enum KerasFileWriter {
    /// Variable order per Keras 3 layer class (as Keras 3.15 numbers them).
    static let variables: [String: [String]] = [
        "conv2d": ["kernel", "bias"],
        "depthwise_conv2d": ["depthwise_kernel", "bias"],
        "dense": ["kernel", "bias"],
        "batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"],
        "normalization": ["mean", "variance", "count"],
    ]

    /// Keras 3 paths for canonical Keras keys (`layer/weight`): layers are given class groups
    /// numbered in sorted layer order (Keras numbers them in creation order; the mapping must not
    /// depend on it). Returns key -> dataset path, and `vars` group path -> layer name.
    static func keras3Paths(_ shapes: [String: [Int]]) throws -> (paths: [String: String], layerNames: [String: String]) {
        var weightsOf: [String: Set<String>] = [:]
        for key in shapes.keys {
            let slash = key.lastIndex(of: "/")!
            weightsOf[String(key[..<slash]), default: []].insert(String(key[key.index(after: slash)...]))
        }
        var counters: [String: Int] = [:]
        var paths: [String: String] = [:], layerNames: [String: String] = [:]
        for layer in weightsOf.keys.sorted() {
            let w = weightsOf[layer]!
            let cls: String
            if w.contains("depthwise_kernel") { cls = "depthwise_conv2d" }
            else if w.contains("gamma") { cls = "batch_normalization" }
            else if w.contains("mean") { cls = "normalization" }
            else if let k = shapes["\(layer)/kernel"] { cls = k.count == 4 ? "conv2d" : "dense" }
            else { throw XCTSkip("no Keras 3 class for layer \(layer)") }
            let n = counters[cls, default: 0]
            counters[cls] = n + 1
            let group = "layers/\(n == 0 ? cls : "\(cls)_\(n)")/vars"
            layerNames[group] = layer
            for (i, weight) in variables[cls]!.enumerated() where w.contains(weight) || weight == "count" {
                paths["\(layer)/\(weight)"] = "\(group)/\(i)"
            }
        }
        return (paths, layerNames)
    }

    /// Writes the deterministic weights of the parity tests (`GeneratedWeights`) for the canonical
    /// Keras keys `shapes` as a Keras 3 `.weights.h5` file at `url`. Returns key -> dataset path.
    @discardableResult
    static func writeGenerated(_ shapes: [String: [Int]], to url: URL) throws -> [String: String] {
        let (paths, layerNames) = try keras3Paths(shapes)
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for (key, shape) in shapes {
            tensors[paths[key]!] = (shape, try GeneratedWeights.values(key, shape: shape, in: shapes, keras: true))
        }
        if let countPath = paths["normalization/count"] { tensors[countPath] = ([], [0]) }
        try write(url, tensors: tensors, layerNames: layerNames)
        return paths
    }

    /// Writes `tensors` (dataset path -> (shape, values)) and the `name` attributes to `url`.
    static func write(_ url: URL, tensors: [String: (shape: [Int], values: [Float])], layerNames: [String: String]) throws {
        let file = H5Fcreate(url.path, 2 /* H5F_ACC_TRUNC */, chdf5_default(), chdf5_default())
        guard file >= 0 else { throw XCTSkip("libhdf5 cannot create \(url.path)") }
        defer { H5Fclose(file) }
        let lcpl = H5Pcreate(H5P_CLS_LINK_CREATE_ID_g)
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        var groups = Set<String>()
        func group(_ path: String) -> hid_t {
            if groups.contains(path) { return H5Gopen2(file, path, chdf5_default()) }
            groups.insert(path)
            return H5Gcreate2(file, path, lcpl, chdf5_default(), chdf5_default())
        }
        H5Gclose(group("vars"))
        for (path, layer) in layerNames.sorted(by: { $0.key < $1.key }) {
            let g = group(path)
            XCTAssertGreaterThanOrEqual(g, 0, path)
            try stringAttribute(g, "name", layer)
            H5Gclose(g)
        }
        for (path, t) in tensors.sorted(by: { $0.key < $1.key }) {
            let dims = t.shape.map { hsize_t($0) }
            let space = dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, nil)
            let set = H5Dcreate2(file, path, chdf5_native_float(), space, lcpl, chdf5_default(), chdf5_default())
            guard set >= 0 else { throw XCTSkip("libhdf5 cannot create dataset \(path)") }
            let status = t.values.withUnsafeBytes { H5Dwrite(set, chdf5_native_float(), chdf5_all(), chdf5_all(), chdf5_default(), $0.baseAddress) }
            XCTAssertGreaterThanOrEqual(status, 0, path)
            H5Dclose(set)
            H5Sclose(space)
        }
    }

    /// A scalar variable-length UTF-8 string attribute, as h5py writes Python strings.
    static func stringAttribute(_ obj: hid_t, _ name: String, _ value: String) throws {
        let type = H5Tcopy(chdf5_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, chdf5_variable())
        H5Tset_cset(type, H5T_CSET_UTF8)
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let attr = H5Acreate2(obj, name, type, space, chdf5_default(), chdf5_default())
        guard attr >= 0 else { throw XCTSkip("libhdf5 cannot create attribute \(name)") }
        defer { H5Aclose(attr) }
        try value.withCString { s in
            var pointer: UnsafePointer<CChar>? = s
            guard H5Awrite(attr, type, &pointer) >= 0 else { throw XCTSkip("libhdf5 cannot write attribute \(name)") }
        }
    }
}
