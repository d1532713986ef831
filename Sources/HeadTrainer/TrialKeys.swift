import ArgumentParser
import Foundation
import HeadTrainerCore

/// `train-head trial-keys` (hidden): a sweep file's identity without a store: its canonical JSON (what
/// a resumed sweep must match) and every trial's key and canonical config, with each extraction's
/// settings key replaced by `fixture:NAME`. Tests compare it with keys recorded by earlier versions
/// (tools/goldens/sweep_trial_keys.sh), so a change that would orphan stored trials fails.
struct TrialKeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trial-keys", abstract: "Print a sweep file's canonical JSON and trial keys (for tests).", shouldDisplay: false)

    @Argument(help: "Sweep file (YAML).") var config: String

    func run() throws {
        do {
            let spec = try SweepSpec.load(path: config)
            let configs = try spec.configurations()
            print("sweep \(spec.canonicalJSON)")
            for ref in spec.extractions {
                for c in configs {
                    print("\(SweepSpec.trialKey(extractionSettingsKey: "fixture:\(ref)", config: c)) \(SweepSpec.json(c))")
                }
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// `train-head head-settings` (hidden): the head settings as JSON (key, command-line option, what a
/// value must be, default, help), for tests and documentation.
struct HeadSettingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head-settings", abstract: "Print the head settings as JSON.", shouldDisplay: false)

    func run() throws {
        let rows: [[String: Any]] = HeadConfig.settings.map { s in
            var row: [String: Any] = ["key": s.key, "option": HeadOptions.option(s), "expected": s.expected, "default": s.defaultText,
                                      "help": s.help]
            switch s.kind {
            case .integer: row["kind"] = "integer"
            case .number: row["kind"] = "number"
            case .flag: row["kind"] = "flag"
            case .choice(let names): row["kind"] = "choice"; row["choices"] = names
            }
            return row
        }
        let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}
