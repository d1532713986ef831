import Foundation

/// A JSON value with exactly one text form, the bytes hashed into identities (extraction settings keys,
/// augmentation policy hashes, sweep and trial keys). Written here, not by Foundation, so an update of
/// Foundation cannot change a key and stop a store from resuming. The form:
/// - no whitespace; object keys sorted by their UTF-8 bytes;
/// - integers as decimal digits; a double that is a whole number below 2^53 without ".0" (`2`), any
///   other in Swift's shortest round-trip form (`0.1`, `1e-05`, `1e+16`); NaN and infinities as null;
/// - strings with RFC 8259's minimal escaping: `"` `\` and U+0000-U+001F (`\b \f \n \r \t`, the
///   rest as `\u00xx`); "/" and everything else as UTF-8.
///
/// For every value the workbench hashes, these are the bytes Foundation's JSONSerialization wrote with
/// `.sortedKeys` and `.withoutEscapingSlashes` (checked against Tests/IdentityTests/Fixtures/identity.json);
/// it sorted keys differently only when they differ in case, digit runs or non-ASCII letters.
public enum CanonicalJSON: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    /// The canonical text.
    public var text: String {
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// SHA-256 (lowercase hex) of the canonical text.
    public var sha256: String { Digest.hex(text) }

    private func write(to out: inout [UInt8]) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .int(let i): out += Array(String(i).utf8)
        case .uint(let u): out += Array(String(u).utf8)
        case .double(let d): out += Array(Self.number(d).utf8)
        case .string(let s): Self.write(string: s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (i, key) in fields.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.write(string: key, to: &out)
                out.append(UInt8(ascii: ":"))
                fields[key]!.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Swift's shortest round-trip form, whole numbers without ".0" (Swift writes those below 2^53
    /// as "N.0" and larger ones with an exponent).
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        let s = d.description
        return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func write(string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

// MARK: Building values

extension CanonicalJSON {
    /// The value of anything `Encodable` (JSONEncoder only carries the values across; the text is
    /// written here). Throws if the value does not encode.
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        self = try CanonicalJSON(parsing: String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

// MARK: Parsing

extension CanonicalJSON {
    public struct ParseError: Error, CustomStringConvertible {
        public let offset: Int
        public let reason: String
        public var description: String { "not valid JSON at byte \(offset): \(reason)" }
    }

    /// Parses JSON text (RFC 8259; any value at the top). A number with a fraction or exponent is a
    /// double, any other an integer (a double if it does not fit 64 bits).
    public init(parsing text: String) throws {
        var parser = Parser(bytes: Array(text.utf8))
        self = try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0

        func fail(_ reason: String) -> ParseError { ParseError(offset: at, reason: reason) }

        mutating func document() throws -> CanonicalJSON {
            let value = try self.value()
            skipSpace()
            if at < bytes.count { throw fail("unexpected text after the value") }
            return value
        }

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        mutating func literal(_ word: String, _ value: CanonicalJSON) throws -> CanonicalJSON {
            let w = Array(word.utf8)
            guard at + w.count <= bytes.count, Array(bytes[at..<(at + w.count)]) == w else { throw fail("expected \(word)") }
            at += w.count
            return value
        }

        mutating func value() throws -> CanonicalJSON {
            skipSpace()
            guard at < bytes.count else { throw fail("unexpected end") }
            switch bytes[at] {
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                at += 1
                var items: [CanonicalJSON] = []
                while try nextMember(close: "]", first: items.isEmpty) { items.append(try value()) }
                return .array(items)
            case UInt8(ascii: "{"):
                at += 1
                var fields: [String: CanonicalJSON] = [:]
                while try nextMember(close: "}", first: fields.isEmpty) {
                    skipSpace()
                    guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("expected a key in quotes") }
                    let key = try string()
                    skipSpace()
                    guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw fail("expected :") }
                    at += 1
                    fields[key] = try value()
                }
                return .object(fields)
            default: return try number()
            }
        }

        /// Steps through an array or object: true when a member follows (the first one, or one after
        /// a comma), false after the closing bracket.
        mutating func nextMember(close: Unicode.Scalar, first: Bool) throws -> Bool {
            skipSpace()
            guard at < bytes.count else { throw fail("unterminated \(close == "]" ? "array" : "object")") }
            if bytes[at] == UInt8(ascii: close) { at += 1; return false }
            if first { return true }
            guard bytes[at] == UInt8(ascii: ",") else { throw fail("expected , or \(close)") }
            at += 1
            return true
        }

        mutating func number() throws -> CanonicalJSON {
            let start = at
            func digits() -> Int {
                let from = at
                while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                return at - from
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
            let intStart = at
            let intDigits = digits()
            guard intDigits > 0 else { throw fail("expected a value") }
            if intDigits > 1 && bytes[intStart] == UInt8(ascii: "0") { throw fail("a number has a leading zero") }
            var isInteger = true
            if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
                at += 1
                isInteger = false
                guard digits() > 0 else { throw fail("expected digits after the decimal point") }
            }
            if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
                at += 1
                isInteger = false
                if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw fail("expected digits in the exponent") }
            }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            if isInteger {
                if let i = Int64(text) { return .int(i) }
                if let u = UInt64(text) { return .uint(u) }
            }
            guard let d = Double(text) else { throw fail("unreadable number \(text)") }
            return .double(d)
        }

        mutating func hex4() throws -> UInt32 {
            guard at + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[at..<(at + 4)], as: UTF8.self), radix: 16) else {
                throw fail("expected 4 hex digits after \\u")
            }
            at += 4
            return v
        }

        mutating func string() throws -> String {
            at += 1  // opening quote
            var out: [UInt8] = []
            while true {
                guard at < bytes.count else { throw fail("unterminated string") }
                let b = bytes[at]
                at += 1
                switch b {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case 0..<0x20: at -= 1; throw fail("a control character in a string must be escaped")
                case UInt8(ascii: "\\"):
                    guard at < bytes.count else { throw fail("unterminated escape") }
                    let e = bytes[at]
                    at += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            guard at + 2 <= bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                                throw fail("a high surrogate without its low half")
                            }
                            at += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("a high surrogate without its low half") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail("\\u escape of a lone surrogate") }
                        out += Array(String(Character(scalar)).utf8)
                    default: at -= 1; throw fail("unknown escape")
                    }
                default: out.append(b)
                }
            }
        }
    }
}
