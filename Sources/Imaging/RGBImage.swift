/// An 8-bit RGB image, row-major HWC (pixels.count == width * height * 3, no row padding).
public struct RGBImage: Hashable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "RGBImage: pixels.count must be width * height * 3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A black image.
    public init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3))
    }

    /// The (r, g, b) value at column x, row y.
    public func pixel(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// Mean absolute difference per channel value against another image of the same size
    /// (the parity measure used against the cv2 reference outputs).
    public func meanAbsoluteDifference(_ other: RGBImage) -> Double {
        precondition(width == other.width && height == other.height, "sizes differ")
        var total = 0
        for i in 0..<pixels.count { total += abs(Int(pixels[i]) - Int(other.pixels[i])) }
        return Double(total) / Double(pixels.count)
    }
}
