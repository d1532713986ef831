import ArgumentParser
import Foundation

/// Runs a command's body: any error but ArgumentParser's own exits is printed as one line,
/// `error: <description>`, on stderr, and the program exits with 1 (no stack trace, no usage text).
public func failing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ExitCode { throw e } catch let e as CleanExit { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}
