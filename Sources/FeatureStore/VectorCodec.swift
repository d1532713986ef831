import Foundation

/// The byte layout of stored vectors: little-endian f32, or little-endian f16 (Swift `Float16`).
///
/// This is the one place that knows it; both the insert and load hot loops call into it.
public enum VectorCodec {
    /// Encodes `values` as `dtype` bytes.
    public static func encode(_ values: [Float], as dtype: FeatureDType = .f32) -> Data {
        var data = Data(count: values.count * dtype.bytesPerValue)
        data.withUnsafeMutableBytes { out in
            values.withUnsafeBufferPointer { encode($0, as: dtype, into: out) }
        }
        return data
    }

    /// Decodes bytes written by `encode`. Throws nothing: a size that is not a multiple of the
    /// value size is truncated, so callers that care must check `count` first (the store does).
    public static func decode(_ data: Data, as dtype: FeatureDType = .f32) -> [Float] {
        let count = data.count / dtype.bytesPerValue
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            data.withUnsafeBytes { decode($0, as: dtype, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count])) }
            initialized = count
        }
    }

    /// Hot loop (insert): writes `values` into `out` (which must hold `values.count * bytes`).
    @inline(__always)
    static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: FeatureDType, into out: UnsafeMutableRawBufferPointer) {
        switch dtype {
        case .f32:
            #if _endian(little)
            out.copyMemory(from: UnsafeRawBufferPointer(values))
            #else
            for (i, v) in values.enumerated() { out.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
            #endif
        case .f16:
            let halves = out.bindMemory(to: UInt16.self)
            for i in 0..<values.count { halves[i] = Float16(values[i]).bitPattern.littleEndian }
        }
    }

    /// Hot loop (load): widens `raw` (exactly `out.count` values) into `out`.
    @inline(__always)
    static func decode(_ raw: UnsafeRawBufferPointer, as dtype: FeatureDType, into out: UnsafeMutableBufferPointer<Float>) {
        guard out.count > 0, let base = raw.baseAddress else { return }
        switch dtype {
        case .f32:
            #if _endian(little)
            UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(start: base, count: out.count * 4))
            #else
            for i in 0..<out.count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.load(fromByteOffset: i * 4, as: UInt32.self))) }
            #endif
        case .f16:
            for i in 0..<out.count {
                let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                out[i] = halfToFloat(bits)
            }
        }
    }

    /// Float16 bits -> Float, exactly like `Float(Float16(bitPattern:))` but branch-free so the
    /// load loop vectorizes (the generic conversion is a per-value library call on baseline x86-64).
    /// Shifting the exponent+mantissa into float position and scaling by 2^112 rebias the
    /// exponent and also handles subnormals; infinities and NaNs get the all-ones exponent.
    @inline(__always)
    static func halfToFloat(_ bits: UInt16) -> Float {
        let h = UInt32(bits)
        let sign = (h & 0x8000) << 16
        let magnitude = h & 0x7fff
        let scaled = Float(bitPattern: magnitude << 13) * Float(bitPattern: 0x7780_0000) // 2^112
        let special = Float(bitPattern: 0x7f80_0000 | ((magnitude & 0x3ff) << 13))
        let value = magnitude >= 0x7c00 ? special : scaled
        return Float(bitPattern: value.bitPattern | sign)
    }
}
