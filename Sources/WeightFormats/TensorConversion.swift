import Foundation

/// Turns a strided view of raw storage bytes into a contiguous row-major Float32 tensor.
///
/// Shape, strides and storage offset are honoured exactly as torch does (non-contiguous views such as
/// transposes, slices with steps and stride-0 broadcasts are gathered); every index that will be
/// touched is bounds-checked up front, so the hot loops below run without checks.
enum TensorConversion {
    /// `readValues: false` runs every check and reads nothing (the tensor returned has no values):
    /// how skipped tensors are checked, so a damaged file fails the same way whatever is skipped.
    static func materialize(name: String, ref: TensorRef, storage: UnsafeRawBufferPointer,
                            file: URL, readValues: Bool = true) throws -> WeightTensor {
        func bad(_ detail: String) -> WeightFileError {
            .malformed(file: file, detail: "tensor '\(name)': \(detail)")
        }
        let dtype = ref.storage.dtype
        let size = dtype.byteSize
        let available = storage.count / size - ref.storage.elementOffset   // elements of this (view) storage
        guard ref.storage.elementOffset >= 0, available >= 0 else {
            throw bad("storage view offset \(ref.storage.elementOffset) lies past the storage end")
        }
        let usable = min(available, ref.storage.elementCount)
        guard ref.shape.allSatisfy({ $0 >= 0 }), ref.strides.allSatisfy({ $0 >= 0 }), ref.offset >= 0 else {
            throw bad("negative size, stride or offset (shape \(ref.shape), strides \(ref.strides), offset \(ref.offset))")
        }
        // A dimension of size 1 never moves along its stride: zero it so that a huge stride from a
        // damaged file cannot overflow the index arithmetic below.
        let ref = TensorRef(storage: ref.storage, offset: ref.offset, shape: ref.shape,
                            strides: zip(ref.shape, ref.strides).map { $0 == 1 ? 0 : $1 })
        // Element count and the highest storage index touched, with overflow checks.
        var count = 1
        var last = ref.offset
        for (dim, stride) in zip(ref.shape, ref.strides) {
            let (c, o1) = count.multipliedReportingOverflow(by: dim)
            guard !o1 else { throw bad("shape \(ref.shape) is too large") }
            count = c
            if dim > 0 {
                let (span, o2) = (dim - 1).multipliedReportingOverflow(by: stride)
                let (l, o3) = last.addingReportingOverflow(span)
                guard !o2, !o3 else { throw bad("strides \(ref.strides) are too large") }
                last = l
            }
        }
        if count == 0 {
            return WeightTensor(name: name, shape: ref.shape, sourceDType: dtype, values: [])
        }
        guard last < usable else {
            throw WeightFileError.truncated(
                file: file, detail: "tensor '\(name)' (shape \(ref.shape), strides \(ref.strides), offset \(ref.offset)) "
                    + "reaches element \(last) of storage '\(ref.storage.key)' which holds \(usable) \(dtype.rawValue) elements")
        }
        // Stride-0 (broadcast) views can describe far more elements than are stored; cap them so a
        // damaged file cannot ask for terabytes.
        if count > usable && count > 1 << 28 {
            throw bad("broadcast view of shape \(ref.shape) would expand \(usable) stored elements to \(count)")
        }
        if !readValues { return WeightTensor(name: name, shape: ref.shape, sourceDType: dtype, values: []) }
        // Byte address of element 0 of this (possibly legacy-view) storage.
        let base = storage.baseAddress! + ref.storage.elementOffset * size
        // Every element is written below, so skip zero-filling the array first.
        let values = [Float](unsafeUninitializedCapacity: count) { out, initialized in
            defer { initialized = count }
            switch dtype {
            case .float32:
                if isContiguous(ref) {   // the common case: one copy
                    UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: base + ref.offset * 4, byteCount: count * 4)
                } else {
                    gather(ref, base, out) { $0.loadUnaligned(fromByteOffset: $1 * 4, as: Float.self) }
                }
            case .float16:
                gather(ref, base, out) { Float(halfBits: $0.loadUnaligned(fromByteOffset: $1 * 2, as: UInt16.self)) }
            case .bfloat16:
                gather(ref, base, out) {
                    Float(bitPattern: UInt32($0.loadUnaligned(fromByteOffset: $1 * 2, as: UInt16.self)) << 16)
                }
            case .float64:
                gather(ref, base, out) { Float($0.loadUnaligned(fromByteOffset: $1 * 8, as: Double.self)) }
            case .int64:
                gather(ref, base, out) { Float($0.loadUnaligned(fromByteOffset: $1 * 8, as: Int64.self)) }
            case .int32:
                gather(ref, base, out) { Float($0.loadUnaligned(fromByteOffset: $1 * 4, as: Int32.self)) }
            }
        }
        return WeightTensor(name: name, shape: ref.shape, sourceDType: dtype, values: values)
    }

    /// True when the strides are the row-major ones (dims of size 1 may have any stride).
    static func isContiguous(_ ref: TensorRef) -> Bool {
        var expected = 1
        for (dim, stride) in zip(ref.shape, ref.strides).reversed() where dim != 1 {
            if stride != expected { return false }
            expected *= dim
        }
        return true
    }

    /// HOT LOOP: visits the view's elements in row-major order; `load(base, elementIndex)` converts one.
    /// All indices were bounds-checked by the caller.
    @inline(__always)
    private static func gather(_ ref: TensorRef, _ base: UnsafeRawPointer, _ out: UnsafeMutableBufferPointer<Float>,
                               _ load: (UnsafeRawPointer, Int) -> Float) {
        let dst = out.baseAddress!
        let rank = ref.shape.count
        if rank == 0 {
            dst[0] = load(base, ref.offset)
            return
        }
        if isContiguous(ref) {
            for i in 0..<out.count { dst[i] = load(base, ref.offset + i) }
            return
        }
        let innerCount = ref.shape[rank - 1], innerStride = ref.strides[rank - 1]
        var index = [Int](repeating: 0, count: rank - 1)   // position in the outer dimensions
        var rowStart = ref.offset
        var o = 0
        while true {
            var s = rowStart
            for _ in 0..<innerCount {
                dst[o] = load(base, s)
                o += 1
                s += innerStride
            }
            // Odometer increment over the outer dimensions.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                rowStart += ref.strides[d]
                if index[d] < ref.shape[d] { break }
                rowStart -= ref.strides[d] * ref.shape[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }
}

extension Float {
    /// IEEE half -> single, exact (no dependency on the platform's Float16 support).
    init(halfBits h: UInt16) {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {                       // inf / NaN
            self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        } else if exponent != 0 {                   // normal
            self = Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
        } else {                                    // zero / subnormal: mantissa * 2^-24
            let magnitude = Float(mantissa) * 0x1p-24
            self = sign != 0 ? -magnitude : magnitude
        }
    }
}
