import CHDF5
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads Keras HDF5 weight files through libhdf5, in both layouts Keras writes.
///
/// **Keras 2 layout** (keras.applications downloads such as `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`,
/// `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`, `efficientnetb0_notop.h5`; tf.keras / tf_keras
/// `model.save_weights("x.h5")`; Keras 3's legacy h5 writer). Recognized by the string-list attribute
/// `layer_names` on the root group, or on a `model_weights` group (a whole model saved with
/// `model.save("x.h5")`). Each listed layer is a group whose attribute `weight_names` lists its weights;
/// weight `w` of layer `L` is the dataset at `L/w`. Tensor names are **`<layer name>/<weight name>`,
/// verbatim from the two attributes**, e.g.
/// - Keras 2 (tf.keras 2.x): `stem_conv/stem_conv/kernel:0`, `block1a_dwconv/block1a_dwconv/depthwise_kernel:0`,
///   `stem_bn/stem_bn/moving_variance:0`, `normalization/normalization/count:0`;
/// - Keras 3 legacy writer: `stem_conv/stem_conv/kernel` (no `:0`);
/// - files written by Keras 1 may hold names like `block1_conv1/block1_conv1_W_1:0`.
/// A `model_weights/` prefix is never part of a name. File order is `layer_names` order, then
/// `weight_names` order. Attributes split by Keras into `layer_names0`, `layer_names1`, ... (done for
/// attributes over 64 KB) are joined; fixed-length and variable-length strings are both accepted. A
/// `top_level_model_weights` group (Keras 3) that is not a listed layer contributes
/// `top_level_model_weights/<weight name>` when its `weight_names` is not empty.
///
/// **Keras 3 layout** (`model.save_weights("x.weights.h5")`): no `layer_names`; every dataset in the
/// file except those under the top-level `optimizer` group is a tensor, named by its **HDF5 path
/// without the leading slash**, e.g. `layers/conv2d/vars/0`, `layers/batch_normalization/vars/3`,
/// `layers/functional/layers/dense/vars/1` (nested model). Keras 3 names these groups after the layer
/// *class* (snake case, `_1`, `_2`... for repeats), not after the layer's name; recent Keras 3 versions
/// (3.15 does) store the layer's own name as a string attribute `name` on the `vars` group: it is
/// reported in `StateDict.kerasLayerNames` (`"layers/conv2d/vars": "stem_conv"`), which is how the
/// backbones map these files to their layers. Variables
/// are numbered in the layer's `weights` order (Conv2D: 0 kernel, 1 bias; BatchNormalization:
/// 0 gamma, 1 beta, 2 moving_mean, 3 moving_variance). HDF5 keeps no creation order in these files,
/// so file order is depth first with each group's members in natural order, numbers compared by
/// value (`conv2d`, `conv2d_1`, `conv2d_2`, ..., `conv2d_10`; `vars/2` before `vars/10`).
///
/// Shapes are as stored (Keras convention, not PyTorch): convolution kernels HWIO `[kh, kw, in, out]`,
/// depthwise kernels `[kh, kw, in, multiplier]`, dense kernels `[in, out]`, a scalar is `[]`. Float16/32/64
/// and int32/64 datasets are converted to Float32 by libhdf5.
///
/// Safety: damaged files are reported, not crashed on. A file shorter than its superblock says is
/// reported as truncated before libhdf5 opens it; global heap collections and the string
/// descriptors of the name attributes, which libhdf5 1.10 trusts blindly, are checked by hand first
/// (HDF5Guards.swift); every extent and size is checked before allocating; soft and external links
/// are never followed; datasets with external or virtual storage are refused. Errors name the file
/// and the tensor, with libhdf5's own explanation when it has one. libhdf5 still parses the rest of
/// the metadata in C: after these guards, 64,000 fuzzed loads of the three test fixtures (1-4 random
/// byte changes each) gave errors or loads and no crash, which is evidence, not proof.
public enum KerasHDF5 {
    public static func load(_ url: URL) throws -> StateDict {
        try load(url, include: nil)
    }

    /// Loads the tensors for which `include(name)` is true (all when nil). The others are checked
    /// as far as their HDF5 headers go (element type, shape, storage) and listed in
    /// `StateDict.skipped`; their data is never read.
    public static func load(_ url: URL, include: ((String) -> Bool)?) throws -> StateDict {
        let (head, size) = try WeightFiles.readHead(url, count: 64)
        guard head.starts(with: WeightFiles.hdf5Signature) else {
            if !head.isEmpty, head.count < 8, WeightFiles.hdf5Signature.starts(with: head) {
                throw WeightFormatError.truncated(file: url, format: .kerasHDF5, detail: "only \(head.count) bytes")
            }
            throw WeightFormatError.unrecognizedFormat(file: url, firstBytes: Array(head.prefix(12)))
        }
        // Say "truncated" plainly (libhdf5's wording varies with where the file was cut).
        var superblock: HDF5Superblock?
        switch HDF5Superblock.parse(head) {
        case .needs(let n):
            throw WeightFormatError.truncated(file: url, format: .kerasHDF5,
                                              detail: "only \(size) bytes, the HDF5 superblock alone needs \(n)")
        case .ok(let sb):
            if let end = sb.end, UInt64(size) < end {
                throw WeightFormatError.truncated(file: url, format: .kerasHDF5,
                                                  detail: "the HDF5 superblock records \(end) bytes but the file has \(size)")
            }
            superblock = sb
        case .unknown:
            break
        }
        // The guards read the map (the heap scan reads all of it, releasing pages as it goes);
        // libhdf5 reads the file itself, only the datasets asked for.
        let mapped = try MappedFile(url)
        let guards = try superblock.map { sb in
            Guards(bytes: mapped.bytes, superblock: sb,
                   heaps: try GlobalHeaps.scan(mapped.bytes, superblock: sb, file: url, release: { mapped.release($0) }))
        }
        let reader = try Reader(url, guards: guards, include: include)
        return try withExtendedLifetime(mapped) {
            let tensors = try reader.tensors()
            return try StateDict(file: url, orderedTensors: tensors, skipped: reader.skipped,
                                 kerasLayerNames: reader.kerasLayerNames)
        }
    }

    /// Upper bounds that keep a damaged file from asking for absurd amounts of work or memory.
    static let maxElements = 1 << 31
    /// Limits on chunked tensors (see `checkChunks`).
    static let maxChunks = 1 << 16
    static let maxCompression: UInt64 = 1024
    static let maxStrings = 1 << 20
    static let maxObjects = 100_000
    static let maxDepth = 64
}

// MARK: - libhdf5 plumbing

/// An HDF5 identifier closed when this object goes away.
private final class H5Handle {
    let id: hid_t
    private let closer: (hid_t) -> herr_t
    init(_ id: hid_t, _ closer: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.closer = closer
    }
    deinit { _ = closer(id) }
}

/// What the hand-read checks of HDF5Guards.swift need while libhdf5 reads the file.
private struct Guards {
    let bytes: UnsafeRawBufferPointer
    let superblock: HDF5Superblock
    let heaps: GlobalHeaps
}

private final class Reader {
    let url: URL
    /// nil when the superblock is of an unknown version (libhdf5 then rejects the file anyway).
    let guards: Guards?
    let file: H5Handle
    /// Access property lists with `nlinks = 0`: soft and external links are never traversed (an
    /// external link would make libhdf5 open another file).
    let groupAccess: H5Handle
    let datasetAccess: H5Handle
    let linkAccess: H5Handle
    private var objectsSeen = 0
    /// Which tensors to read (nil: all); the others are only described in `skipped`.
    let include: ((String) -> Bool)?
    private(set) var skipped: [TensorInfo] = []
    /// Keras 3: the `name` attribute of each `vars` group, by the group's path.
    private(set) var kerasLayerNames: [String: String] = [:]

    init(_ url: URL, guards: Guards?, include: ((String) -> Bool)?) throws {
        self.url = url
        self.guards = guards
        self.include = include
        chdf5_quiet()
        func plist(_ cls: hid_t, _ what: String) throws -> H5Handle {
            let id = H5Pcreate(cls)
            guard id >= 0 else { throw Reader.hdf5Error(url, "cannot create a \(what) property list") }
            let h = H5Handle(id, H5Pclose)
            _ = H5Pset_nlinks(id, 0)
            return h
        }
        let fapl = H5Handle(H5Pcreate(chdf5_file_access_class()), H5Pclose)
        guard fapl.id >= 0 else { throw Reader.hdf5Error(url, "cannot create a file access property list") }
        // Closing the file closes every object still open in it.
        _ = H5Pset_fclose_degree(fapl.id, H5F_CLOSE_STRONG)
        let fid = H5Fopen(url.path, chdf5_acc_rdonly(), fapl.id)
        guard fid >= 0 else { throw Reader.hdf5Error(url, "libhdf5 cannot open it") }
        file = H5Handle(fid, H5Fclose)
        groupAccess = try plist(chdf5_group_access_class(), "group access")
        datasetAccess = try plist(chdf5_dataset_access_class(), "dataset access")
        linkAccess = try plist(chdf5_link_access_class(), "link access")
    }

    /// An error from libhdf5's error stack: "truncated file" becomes `.truncated`.
    static func hdf5Error(_ url: URL, _ what: String) -> WeightFormatError {
        var buffer = [CChar](repeating: 0, count: 1024)
        chdf5_take_error(&buffer, buffer.count)
        let message = String(cString: buffer)
        let detail = message.isEmpty ? what : "\(what): \(message)"
        if message.contains("truncated file") {
            return .truncated(file: url, format: .kerasHDF5, detail: detail)
        }
        return .malformed(file: url, format: .kerasHDF5, detail: detail)
    }

    func malformed(_ detail: String) -> WeightFormatError { .malformed(file: url, format: .kerasHDF5, detail: detail) }

    // MARK: layout

    func tensors() throws -> [WeightTensor] {
        let root = try openGroup(file.id, "/", path: "/")
        if let layers = try stringList(root.id, "layer_names", on: "/") {
            return try keras2(root, layers, prefix: "")
        }
        if linkKind(root.id, "model_weights") == .group {
            let weights = try openGroup(root.id, "model_weights", path: "model_weights")
            if let layers = try stringList(weights.id, "layer_names", on: "model_weights") {
                return try keras2(weights, layers, prefix: "model_weights/")
            }
        }
        var out: [WeightTensor] = []
        try walk(root, path: "", depth: 0, into: &out)
        if out.isEmpty && skipped.isEmpty {
            throw malformed("no weights found: neither a Keras 2 layout (root attribute 'layer_names') nor a "
                + "Keras 3 one (datasets under layers/<layer>/vars/)")
        }
        return out
    }

    /// Keras 2: `layer_names` on `group`, `weight_names` on each layer, datasets at `<layer>/<weight>`.
    private func keras2(_ group: H5Handle, _ layers: [String], prefix: String) throws -> [WeightTensor] {
        var out: [WeightTensor] = []
        var seen = Set<String>()
        var sources = layers.map { ($0, required: true) }
        if !layers.contains("top_level_model_weights"), linkKind(group.id, "top_level_model_weights") == .group {
            sources.append(("top_level_model_weights", required: false))
        }
        for (layer, required) in sources {
            guard linkKind(group.id, layer) == .group else {
                if !required { continue }
                throw malformed("layer '\(layer)' is listed in \(prefix)layer_names but \(prefix)\(layer) is not a group")
            }
            let layerGroup = try openGroup(group.id, layer, path: prefix + layer)
            guard let weights = try stringList(layerGroup.id, "weight_names", on: prefix + layer) else {
                if !required { continue }
                throw malformed("layer group '\(prefix)\(layer)' has no 'weight_names' attribute")
            }
            for weight in weights {
                let name = "\(layer)/\(weight)"
                guard seen.insert(name).inserted else { throw malformed("tensor '\(name)' is listed twice") }
                guard datasetExists(layerGroup.id, weight) else {
                    throw malformed("weight '\(weight)' is listed in the weight_names of layer '\(layer)' but "
                        + "there is no dataset \(prefix)\(name)")
                }
                if let t = try readDataset(layerGroup.id, weight, name: name) { out.append(t) }
            }
        }
        return out
    }

    /// Keras 3: every dataset below `group`, depth first, children in natural order; the top-level
    /// `optimizer` group is skipped.
    private func walk(_ group: H5Handle, path: String, depth: Int, into out: inout [WeightTensor]) throws {
        guard depth < KerasHDF5.maxDepth else { throw malformed("groups nested deeper than \(KerasHDF5.maxDepth) at '\(path)'") }
        var info = H5G_info_t()
        guard H5Gget_info(group.id, &info) >= 0 else { throw Reader.hdf5Error(url, "cannot list group '/\(path)'") }
        guard info.nlinks <= UInt64(KerasHDF5.maxObjects) else { throw malformed("group '/\(path)' has \(info.nlinks) members") }
        var names: [String] = []
        for i in 0..<Int(info.nlinks) {
            names.append(try linkName(group.id, index: i, in: path))
        }
        names.sort(by: NaturalOrder.less)
        for name in names {
            if depth == 0 && name == "optimizer" { continue }
            objectsSeen += 1
            guard objectsSeen <= KerasHDF5.maxObjects else { throw malformed("more than \(KerasHDF5.maxObjects) objects") }
            let child = path.isEmpty ? name : "\(path)/\(name)"
            switch linkKind(group.id, name) {
            case .group:
                let g = try openGroup(group.id, name, path: child)
                if name == "vars", let layer = try stringList(g.id, "name", on: child)?.first, !layer.isEmpty {
                    kerasLayerNames[child] = layer
                }
                try walk(g, path: child, depth: depth + 1, into: &out)
            case .dataset: if let t = try readDataset(group.id, name, name: child) { out.append(t) }
            case .other, .missing: continue   // soft/external links, named datatypes
            }
        }
    }

    // MARK: objects

    private enum LinkKind { case group, dataset, other, missing }

    /// What the hard link `name` in `loc` points at; soft and external links are `.other`.
    private func linkKind(_ loc: hid_t, _ name: String) -> LinkKind {
        let type = chdf5_link_type(loc, name, linkAccess.id)
        if type < 0 {
            var sink = [CChar](repeating: 0, count: 8)
            chdf5_take_error(&sink, sink.count)
            return .missing
        }
        guard type == Int32(H5L_TYPE_HARD.rawValue) else { return .other }
        let id = H5Oopen(loc, name, linkAccess.id)
        guard id >= 0 else {
            var sink = [CChar](repeating: 0, count: 8)
            chdf5_take_error(&sink, sink.count)
            return .missing
        }
        defer { _ = H5Oclose(id) }
        switch H5Iget_type(id) {
        case H5I_GROUP: return .group
        case H5I_DATASET: return .dataset
        default: return .other
        }
    }

    /// True when `path` (relative to `loc`, possibly with `/`) reaches a dataset through hard links only.
    private func datasetExists(_ loc: hid_t, _ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !parts.isEmpty, !path.hasPrefix("/") else { return false }
        var current: H5Handle?
        for (i, part) in parts.enumerated() {
            let here = current?.id ?? loc
            let kind = linkKind(here, part)
            if i == parts.count - 1 { return kind == .dataset }
            guard kind == .group else { return false }
            let id = H5Gopen2(here, part, groupAccess.id)
            guard id >= 0 else { return false }
            current = H5Handle(id, H5Gclose)
        }
        return false
    }

    private func openGroup(_ loc: hid_t, _ name: String, path: String) throws -> H5Handle {
        let id = H5Gopen2(loc, name, groupAccess.id)
        guard id >= 0 else { throw Reader.hdf5Error(url, "cannot open group '\(path)'") }
        return H5Handle(id, H5Gclose)
    }

    private func linkName(_ group: hid_t, index: Int, in path: String) throws -> String {
        let length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), nil, 0, linkAccess.id)
        guard length >= 0, length < 1 << 16 else { throw Reader.hdf5Error(url, "cannot read member \(index) of group '/\(path)'") }
        var buffer = [CChar](repeating: 0, count: Int(length) + 1)
        let got = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), &buffer, buffer.count, linkAccess.id)
        guard got == length else { throw Reader.hdf5Error(url, "cannot read member \(index) of group '/\(path)'") }
        return String(cString: buffer)
    }

    // MARK: attributes

    /// A list-of-strings attribute; Keras splits long ones into `name0`, `name1`, ... (joined here).
    /// nil when absent. An empty list may be stored as an empty float array (h5py does that).
    func stringList(_ obj: hid_t, _ name: String, on path: String) throws -> [String]? {
        if H5Aexists(obj, name) > 0 {
            return try readStrings(obj, name, on: path)
        }
        var chunks: [String] = []
        var i = 0
        while H5Aexists(obj, "\(name)\(i)") > 0 {
            chunks += try readStrings(obj, "\(name)\(i)", on: path)
            guard chunks.count <= KerasHDF5.maxStrings else { throw malformed("attribute '\(name)' of '\(path)' is too long") }
            i += 1
        }
        var sink = [CChar](repeating: 0, count: 8)
        chdf5_take_error(&sink, sink.count)
        return i > 0 ? chunks : nil
    }

    private func readStrings(_ obj: hid_t, _ name: String, on path: String) throws -> [String] {
        let what = "attribute '\(name)' of '\(path)'"
        let attrId = H5Aopen(obj, name, chdf5_default())
        guard attrId >= 0 else { throw Reader.hdf5Error(url, "cannot open \(what)") }
        let attr = H5Handle(attrId, H5Aclose)
        let type = H5Handle(H5Aget_type(attr.id), H5Tclose)
        let space = H5Handle(H5Aget_space(attr.id), H5Sclose)
        guard type.id >= 0, space.id >= 0 else { throw Reader.hdf5Error(url, "cannot read \(what)") }
        let points = H5Sget_simple_extent_npoints(space.id)
        guard points >= 0, points <= Int64(KerasHDF5.maxStrings) else { throw malformed("\(what) has \(points) elements") }
        let count = Int(points)
        guard H5Tget_class(type.id) == H5T_STRING else {
            if count == 0 { return [] }
            throw malformed("\(what) is not a list of strings")
        }
        if count == 0 { return [] }
        if H5Tis_variable_str(type.id) > 0 {
            try checkDescriptors(obj, name, count: count, what: what)
            let memType = H5Handle(H5Tcopy(chdf5_c_s1()), H5Tclose)
            guard memType.id >= 0, H5Tset_size(memType.id, chdf5_variable()) >= 0,
                  H5Tset_cset(memType.id, H5Tget_cset(type.id)) >= 0
            else { throw Reader.hdf5Error(url, "cannot read \(what)") }
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            guard H5Aread(attr.id, memType.id, &pointers) >= 0 else { throw Reader.hdf5Error(url, "cannot read \(what)") }
            defer { _ = H5Dvlen_reclaim(memType.id, space.id, chdf5_default(), &pointers) }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let size = H5Tget_size(type.id)
        guard size > 0, size <= 1 << 16 else { throw malformed("\(what) has strings of \(size) bytes") }
        var bytes = [UInt8](repeating: 0, count: count * size)
        guard H5Aread(attr.id, type.id, &bytes) >= 0 else { throw Reader.hdf5Error(url, "cannot read \(what)") }
        // Fixed-length strings (older h5py): NUL-padded or NUL-terminated, possibly space-padded.
        let spacePadded = H5Tget_strpad(type.id) == H5T_STR_SPACEPAD
        return (0..<count).map { i in
            var slot = bytes[(i * size)..<((i + 1) * size)]
            if let nul = slot.firstIndex(of: 0) { slot = slot[..<nul] }
            if spacePadded { while slot.last == UInt8(ascii: " ") { slot = slot.dropLast() } }
            return String(decoding: slot, as: UTF8.self)
        }
    }

    /// Before libhdf5 reads variable-length strings from the global heap, checks that each points
    /// at an existing heap object of the announced length (see HDF5Guards.swift).
    private func checkDescriptors(_ obj: hid_t, _ name: String, count: Int, what: String) throws {
        guard let guards else { return }
        var address: haddr_t = 0
        guard chdf5_object_address(obj, &address) >= 0 else { throw Reader.hdf5Error(url, "cannot locate \(what)") }
        switch try AttributeDescriptors.find(name, headerAt: UInt64(address), in: guards.bytes, superblock: guards.superblock, file: url) {
        case .unsupported:
            return
        case .descriptors(let list):
            guard list.count == count else {
                throw malformed("\(what) holds \(list.count) strings in its header, libhdf5 reports \(count)")
            }
            for (i, d) in list.enumerated() where !guards.heaps.admits(length: d.length, collection: d.collection, index: d.index) {
                throw malformed("string \(i) of \(what) points at a missing or damaged global heap object "
                    + "(collection \(d.collection), object \(d.index), \(d.length) bytes)")
            }
        }
    }

    // MARK: datasets

    /// Reads dataset `path` (relative to `loc`) as Float32; `name` is the tensor's name in errors.
    /// Returns nil, after checking the header, for a tensor `include` leaves out (then only
    /// recorded in `skipped`).
    private func readDataset(_ loc: hid_t, _ path: String, name: String) throws -> WeightTensor? {
        let id = H5Dopen2(loc, path, datasetAccess.id)
        guard id >= 0 else { throw Reader.hdf5Error(url, "cannot open the dataset of tensor '\(name)'") }
        let dataset = H5Handle(id, H5Dclose)
        let type = H5Handle(H5Dget_type(dataset.id), H5Tclose)
        let space = H5Handle(H5Dget_space(dataset.id), H5Sclose)
        let create = H5Handle(H5Dget_create_plist(dataset.id), H5Pclose)
        guard type.id >= 0, space.id >= 0, create.id >= 0 else {
            throw Reader.hdf5Error(url, "cannot read the header of tensor '\(name)'")
        }

        let typeClass = H5Tget_class(type.id)
        let typeSize = H5Tget_size(type.id)
        let dtype: TensorDType
        switch (typeClass, typeSize) {
        case (H5T_FLOAT, 2): dtype = .float16
        case (H5T_FLOAT, 4): dtype = .float32
        case (H5T_FLOAT, 8): dtype = .float64
        case (H5T_INTEGER, 4) where H5Tget_sign(type.id) == H5T_SGN_2: dtype = .int32
        case (H5T_INTEGER, 8) where H5Tget_sign(type.id) == H5T_SGN_2: dtype = .int64
        default:
            throw WeightFormatError.unsupportedDType(file: url, format: .kerasHDF5, tensor: name,
                                                     dtype: Reader.describeType(typeClass, typeSize))
        }
        // libhdf5 converts by copying bit fields where the datatype says they are; a damaged precision,
        // offset or float field layout sends that copy out of its buffer (a SIGBUS found by FuzzTests,
        // keras-hdf5/sigbus-1.h5). Every field must lie inside the type's bytes.
        let bits = typeSize * 8, precision = H5Tget_precision(type.id), offset = H5Tget_offset(type.id)
        var fieldsInside = precision >= 1 && offset >= 0 && Int(offset) + precision <= bits
        if typeClass == H5T_FLOAT, fieldsInside {
            var spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0
            fieldsInside = H5Tget_fields(type.id, &spos, &epos, &esize, &mpos, &msize) >= 0
                && spos < precision && esize >= 1 && epos + esize <= precision && msize >= 1 && mpos + msize <= precision
        }
        guard fieldsInside else {
            throw malformed("tensor '\(name)' has a damaged \(Reader.describeType(typeClass, typeSize)) datatype "
                            + "(precision \(precision), offset \(offset))")
        }

        var shape: [Int] = []
        switch H5Sget_simple_extent_type(space.id) {
        case H5S_SCALAR: break
        case H5S_SIMPLE:
            let rank = H5Sget_simple_extent_ndims(space.id)
            guard rank >= 0, rank <= 32 else { throw malformed("tensor '\(name)' has rank \(rank)") }
            var dims = [hsize_t](repeating: 0, count: Int(rank))
            guard H5Sget_simple_extent_dims(space.id, &dims, nil) == rank else {
                throw Reader.hdf5Error(url, "cannot read the shape of tensor '\(name)'")
            }
            for d in dims {
                guard d <= UInt64(KerasHDF5.maxElements) else { throw malformed("tensor '\(name)' has shape \(dims)") }
                shape.append(Int(d))
            }
        default:
            throw malformed("tensor '\(name)' has no dataspace (an empty dataset)")
        }
        var count = 1
        for d in shape {
            let (c, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, c <= KerasHDF5.maxElements else { throw malformed("tensor '\(name)' has shape \(shape), too large") }
            count = c
        }

        // Only data stored in this file, in the layouts h5py writes (no external or virtual storage).
        let layout = H5Pget_layout(create.id)
        guard layout == H5D_CONTIGUOUS || layout == H5D_CHUNKED || layout == H5D_COMPACT else {
            throw malformed("tensor '\(name)' uses an unsupported storage layout (\(layout.rawValue))")
        }
        guard H5Pget_external_count(create.id) == 0 else {
            throw malformed("tensor '\(name)' keeps its data in external files; refusing to follow them")
        }
        let skip = include.map { !$0(name) } ?? false
        if skip { skipped.append(TensorInfo(name: name, shape: shape, sourceDType: dtype)) }
        if count == 0 { return skip ? nil : WeightTensor(name: name, shape: shape, sourceDType: dtype, values: []) }
        let stored = H5Dget_storage_size(dataset.id)
        guard stored > 0 else { throw malformed("tensor '\(name)' (shape \(shape)) has no stored data") }
        if layout == H5D_CONTIGUOUS || layout == H5D_COMPACT, stored != UInt64(count * typeSize) {
            throw malformed("tensor '\(name)' of shape \(shape) needs \(count * typeSize) bytes but \(stored) are stored")
        }
        if layout == H5D_CHUNKED { try checkChunks(create.id, shape: shape, bytes: count * typeSize, stored: stored, name: name) }
        // Everything above is metadata; a skipped tensor's data is never read.
        if skip { return nil }

        // HOT PATH: libhdf5 reads and converts to native Float32 in one call.
        var ok = true
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            ok = H5Dread(dataset.id, chdf5_native_float(), chdf5_all(), chdf5_all(), chdf5_default(), buffer.baseAddress) >= 0
            initialized = count
        }
        guard ok else { throw Reader.hdf5Error(url, "cannot read the data of tensor '\(name)' (shape \(shape))") }
        return WeightTensor(name: name, shape: shape, sourceDType: dtype, values: values)
    }

    /// A damaged chunk layout (tiny chunks over a large shape, or far more data than the file stores)
    /// has libhdf5 read chunk after missing chunk for minutes (a hang found by FuzzTests,
    /// keras-hdf5/hang-2.h5). Weight files h5py writes keep at most a few thousand chunks per tensor,
    /// compressed at most a few hundred to one.
    private func checkChunks(_ plist: hid_t, shape: [Int], bytes: Int, stored: UInt64, name: String) throws {
        var chunk = [hsize_t](repeating: 0, count: 32)
        let rank = H5Pget_chunk(plist, Int32(chunk.count), &chunk)
        guard rank == shape.count else { throw malformed("tensor '\(name)' has a damaged chunk layout (rank \(rank) for shape \(shape))") }
        var chunks = 1
        for (d, c) in zip(shape, chunk.prefix(Int(rank))) {
            guard c >= 1 else { throw malformed("tensor '\(name)' has a chunk dimension of 0") }
            let (n, overflow) = chunks.multipliedReportingOverflow(by: (d + Int(c) - 1) / Int(c))
            guard !overflow, n <= KerasHDF5.maxChunks else {
                throw malformed("tensor '\(name)' of shape \(shape) is split into more than \(KerasHDF5.maxChunks) chunks")
            }
            chunks = n
        }
        guard UInt64(bytes) <= stored.multipliedReportingOverflow(by: KerasHDF5.maxCompression).partialValue else {
            throw malformed("tensor '\(name)' of shape \(shape) needs \(bytes) bytes but only \(stored) are stored")
        }
    }

    private static func describeType(_ cls: H5T_class_t, _ size: Int) -> String {
        let kind: String
        switch cls {
        case H5T_INTEGER: kind = "integer"
        case H5T_FLOAT: kind = "float"
        case H5T_STRING: kind = "string"
        case H5T_COMPOUND: kind = "compound"
        case H5T_ENUM: kind = "enum (e.g. bool)"
        default: kind = "HDF5 class \(cls.rawValue)"
        }
        return "\(kind) of \(size) byte\(size == 1 ? "" : "s")"
    }
}

/// Orders names with digit runs compared by value: "conv2d_2" < "conv2d_10", "vars/9" < "vars/10".
enum NaturalOrder {
    static func less(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var i = 0, j = 0
        while i < x.count && j < y.count {
            if isDigit(x[i]) && isDigit(y[j]) {
                var i2 = i, j2 = j
                while i2 < x.count && isDigit(x[i2]) { i2 += 1 }
                while j2 < y.count && isDigit(y[j2]) { j2 += 1 }
                // Compare values: strip leading zeros, then longer is larger, then digit by digit.
                var si = i, sj = j
                while si < i2 - 1 && x[si] == UInt8(ascii: "0") { si += 1 }
                while sj < j2 - 1 && y[sj] == UInt8(ascii: "0") { sj += 1 }
                if i2 - si != j2 - sj { return i2 - si < j2 - sj }
                var k = 0
                while si + k < i2 {
                    if x[si + k] != y[sj + k] { return x[si + k] < y[sj + k] }
                    k += 1
                }
                if i2 - i != j2 - j { return i2 - i < j2 - j }   // "01" after "1"
                i = i2
                j = j2
            } else {
                if x[i] != y[j] { return x[i] < y[j] }
                i += 1
                j += 1
            }
        }
        return x.count - i < y.count - j
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
}
